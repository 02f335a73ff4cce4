# SPDX-License-Identifier: LGPL-2.1-only
# Helpers for functional tests: they run the INSTALLED plugin executables the
# way xapi-storage-script does (argv = [full path of the method file,
# "--json"], the parameters object on stdin without a newline, stdout = one
# JSON value) against SRs on loop devices, and clean up everything they make.
#
# Environment from run.sh: INSTALL_ROOT (a `make install DESTDIR=` tree),
# PLUGIN (ext4-ng or xfs-ng).
#
# Protocol (tests/README.md): the script exits 0 when every check passed,
# 1 when one failed or the script ended without reaching finish (set -u
# error, an early exit), 77 when skipped (skip_test REASON).
set -u
skip_test() { echo "SKIP: $*"; exit 77; }
if [ "$(id -u)" -ne 0 ]; then
	echo "SKIP: functional tests need root (loop devices, mkfs, mount)"
	exit 77
fi
: "${IMGIO:=$SRCDIR/build/ngdp-imgio}"

XSS=${INSTALL_ROOT:?}/usr/libexec/xapi-storage-script
T=$(mktemp -d /tmp/xsng-test.XXXXXX)
if [ "${XSNG_TEST_REAL_PATHS:-}" = 1 ]; then
	# the paths of a real host: /var/run is a symlink to /run there, so
	# the handles differ from what /proc/self/mountinfo says
	export XSNG_MOUNT_ROOT=/var/run/sr-mount XSNG_RUN_DIR=/var/run/xapi-storage-ng
else
	export XSNG_MOUNT_ROOT=$T/mnt XSNG_RUN_DIR=$T/run
fi
mkdir -p "$XSNG_MOUNT_ROOT" "$XSNG_RUN_DIR"
PASS=0 FAIL=0 SKIP=0
PIDS=()
TEST_NAME=$(basename "$0" .sh)${PLUGIN:+[$PLUGIN]}

FINISHED=
cleanup() {
	local rc=$? m p l
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	# coalesce jobs on our SRs (started by our calls; killing one is safe):
	# under our temp dir, or the last SR we made (real paths)
	coalesce_jobs | while read -r p m; do
		case $m in "$T"/* | "${SR:-$T/}") kill -9 "$p" 2>/dev/null ;; esac
	done
	for p in "${PIDS[@]}"; do
		while kill -0 "$p" 2>/dev/null; do sleep 0.05; done
	done
	# deepest first: everything mounted under our temp dir
	for m in $(findmnt -rn -o TARGET | grep "^$T/" | sort -r); do
		umount "$m" 2>/dev/null || umount -l "$m"
	done
	# every loop device backed by a file of ours (mk_loop runs in
	# subshells, so an array could not track them), and whatever is still
	# mounted from it elsewhere (SRs under the real /run/sr-mount)
	for l in $(losetup -l -n -O NAME,BACK-FILE | awk -v t="$T/" 'index($2, t) == 1 {print $1}'); do
		for m in $(findmnt -rn -S "$l" -o TARGET); do
			umount "$m" 2>/dev/null || umount -l "$m"
			case $m in /run/sr-mount/*) rmdir "$m" 2>/dev/null ;; esac
		done
		losetup -d "$l" 2>/dev/null
	done
	rm -rf "$T"
	if [ -z "$FINISHED" ] && [ "$rc" -ne 77 ]; then
		echo "  FAIL: $TEST_NAME ended before finish (exit $rc)"
		exit 1
	fi
	exit "$rc"
}
trap cleanup EXIT

pass() { PASS=$((PASS + 1)); echo "  ok: $*"; }
fail() { FAIL=$((FAIL + 1)); echo "  FAIL: $*"; }
skip() { SKIP=$((SKIP + 1)); echo "  skip: $*"; }
check() { # check "description" command...: counts it; returns its status
	local what=$1; shift
	if "$@"; then pass "$what"; else fail "$what"; return 1; fi
}
# finish: the last line of every test; exits 0 (all checks passed) or 1
finish() {
	FINISHED=1
	echo "$TEST_NAME: checks: $PASS ok, $FAIL failed, $SKIP skipped"
	[ "$FAIL" -eq 0 ] && exit 0
	exit 1
}

# call KIND PLUGIN METHOD JSON: sets OUT (stdout) and RC (exit status)
call() {
	local dir=$XSS/$1/$2
	[ "$1" = volume ] && dir=$XSS/volume/org.xen.xapi.storage.$2
	OUT=$(printf '%s' "$4" | "$dir/$3" --json 2>"$T/stderr")
	RC=$?
}
vcall() { call volume "$PLUGIN" "$@"; }
dcall() { call datapath ngdp "$@"; }

# The result must be valid JSON and the call must have succeeded.
expect_ok() {
	local what=$1
	if [ "$RC" -eq 0 ] && printf '%s' "$OUT" | jq -e . >/dev/null 2>&1 ||
	   { [ "$RC" -eq 0 ] && [ "$OUT" = null ]; }; then
		pass "$what"
	else
		fail "$what (rc=$RC out=$(printf '%.300s' "$OUT") err=$(tail -c 300 "$T/stderr"))"
	fi
}

# The call must fail with a well-formed error record named $2.
expect_err() {
	local what=$1 name=$2
	if [ "$RC" -ne 0 ] && printf '%s' "$OUT" | jq -e --arg n "$name" '
		(.code | type == "string") and (.params | type == "array") and
		(.params | all(type == "string")) and .params[0] == $n and
		(.backtrace.error | type == "string") and
		(.backtrace.files | type == "array") and
		(.backtrace.lines | type == "array") and
		(.backtrace.files | length) == (.backtrace.lines | length)' \
		>/dev/null 2>&1; then
		pass "$what -> $name"
	else
		fail "$what: expected error $name, got rc=$RC $(printf '%.300s' "$OUT")"
	fi
}

jqr() { printf '%s' "$OUT" | jq -r "$@"; }

# qio ARGS...: qemu-io, judged by its exit status (it exits 1 when any -c
# command fails, a "read -P" pattern mismatch included); its output is
# shown only when it failed.
qio() {
	local out rc
	out=$(qemu-io "$@" 2>&1)
	rc=$?
	[ $rc -eq 0 ] || printf '    qemu-io %s: exit %d\n%s\n' "$*" $rc "$(printf '%s\n' "$out" | head -5)"
	return $rc
}

# A sparse file on a loop device.  mk_loop SIZE [extra losetup args]
mk_loop() {
	local f dev
	f=$(mktemp "$T/disk.XXXXXX")
	truncate -s "$1" "$f"
	shift
	losetup -f --show "$@" "$f"
}

# mk_sr [extra device-config as JSON object members]: sets DEV SR SR_UUID
mk_sr() {
	local extra=${1:-}
	# run.sh runs "# per-format" tests once more with IMAGE_FORMAT=vhd|raw
	[ -z "$extra" ] && [ -n "${IMAGE_FORMAT:-}" ] &&
		extra=",\"image-format\":\"$IMAGE_FORMAT\""
	DEV=$(mk_loop 1G)
	SR_UUID=$(cat /proc/sys/kernel/random/uuid)
	vcall SR.create "{\"dbg\":\"test\",\"uuid\":\"$SR_UUID\",\"name\":\"test SR\",\"description\":\"made by $TEST_NAME\",\"configuration\":{\"device\":\"$DEV\"$extra}}"
	[ "$RC" -eq 0 ] || { echo "SR.create failed: $OUT"; return 1; }
	CONFIG=$OUT
	vcall SR.attach "{\"dbg\":\"test\",\"configuration\":$CONFIG}"
	[ "$RC" -eq 0 ] || { echo "SR.attach failed: $OUT"; return 1; }
	SR=$(jqr .)
}

# vol_create SIZE: sets KEY (and VOL, the result)
vol_create() {
	vcall Volume.create "{\"dbg\":\"test\",\"sr\":\"$SR\",\"name\":\"${2:-disk}\",\"description\":\"\",\"size\":$1,\"sharable\":false}"
	VOL=$OUT
	KEY=$(jqr .key 2>/dev/null)
}

# vol_activate DOMAIN: Datapath.attach + activate of the volume in VOL/KEY
# for DOMAIN, as xapi does for a VM; sets URI, NBD (the Nbd implementation's
# URI), ATT (attach's answer) and PID (its server, also recorded in PIDS
# for cleanup).
vol_activate() {
	URI=$(jq -r '.uri[0]' <<<"$VOL")
	dcall Datapath.attach "{\"dbg\":\"t\",\"uri\":\"$URI\",\"domain\":\"$1\"}"
	expect_ok "Datapath.attach"
	ATT=$OUT
	NBD=$(jqr '.implementations[] | select(.[0]=="Nbd") | .[1].uri')
	dcall Datapath.activate "{\"dbg\":\"t\",\"uri\":\"$URI\",\"domain\":\"$1\"}"
	expect_ok "Datapath.activate"
	PID=$(jq -r .pid "$SR/.sr/active/$KEY.json")
	PIDS+=("$PID")
}
# vol_deactivate DOMAIN: Datapath.deactivate + detach (after vol_activate)
vol_deactivate() {
	dcall Datapath.deactivate "{\"dbg\":\"t\",\"uri\":\"$URI\",\"domain\":\"$1\"}"
	expect_ok "Datapath.deactivate"
	dcall Datapath.detach "{\"dbg\":\"t\",\"uri\":\"$URI\",\"domain\":\"$1\"}"
	expect_ok "Datapath.detach"
}

# coalesce_idle: wait (bounded, 120 s) until no coalesce job of $SR runs.
# Volume.destroy, SR.attach and SR.stat may start one, which moves a
# volume to its parent image and deletes the old leaf: a test that opens
# image files by hand must not race it (xapi only reaches images through
# the datapath, under the SR lock).  The job is "<plugin> --coalesce-job
# <SR>", a process from the moment the call that started it returns.
# coalesce_jobs: "PID SR" for each running coalesce job (its SR is its
# last argument)
coalesce_jobs() {
	local f
	for f in $(grep -lsF -e --coalesce-job /proc/[0-9]*/cmdline); do
		f=${f#/proc/}
		f=${f%/cmdline}
		printf '%s %s\n' "$f" "$(tr '\0' '\n' 2>/dev/null <"/proc/$f/cmdline" | tail -n 1)"
	done
}
coalesce_idle() {
	local i
	for i in $(seq 1 600); do
		coalesce_jobs | awk -v s="$SR" '$2 == s { f = 1 } END { exit !f }' ||
			return 0
		sleep 0.2
	done
	echo "    a coalesce job of $SR still runs after 120 s"
	return 1
}

# vol_chain_len KEY: images in the volume's chain, from the records
# shellcheck source=tests/sr-records.sh
. "$(dirname "${BASH_SOURCE[0]}")/../sr-records.sh"
vol_chain_len() { sr_chain_len "$SR" "$1"; }

# The image file behind a volume (internal layout, for qemu-io/qemu-img).
vol_image() {
	local rec id fmt
	[ -n "${SR:-}" ] && coalesce_idle >&2
	rec=$SR/meta/v-$1.json
	id=$(jq -r .image "$rec")
	fmt=$(jq -r '."image-format"' "$rec")
	echo "$SR/images/$id.$fmt"
}
vol_qemu_fmt() {
	case $(jq -r '."image-format"' "$SR/meta/v-$1.json") in
	vhd) echo vpc ;; *) jq -r '."image-format"' "$SR/meta/v-$1.json" ;;
	esac
}
# Pattern I/O on a volume's image file, offline: qemu-io (qcow2, raw) or
# our ngdp-imgio ($IMGIO) for VHD, since qemu cannot read VHD differencing
# images.  Sizes as qemu-io takes them (4M, 1G).
# to_bytes SIZE: bytes of a size as qemu-io takes it (4M, 512k, 1G); fails
# on anything else
to_bytes() { numfmt --from=iec "${1^^}"; }
vol_file_write() { # vol_file_write KEY PATTERN OFFSET LEN
	local img fmt off len
	img=$(vol_image "$1"); fmt=$(vol_qemu_fmt "$1")
	if [ "$fmt" = vpc ]; then
		off=$(to_bytes "$3") && len=$(to_bytes "$4") || return 1
		"$IMGIO" --format vpc "$img" write-pattern "$off" "$len" "$2" >/dev/null
	else
		qemu-io -f "$fmt" -c "write -P $2 $3 $4" "$img" >/dev/null 2>&1
	fi
}
vol_file_reads() { # vol_file_reads KEY PATTERN OFFSET LEN: every byte has the pattern
	local img fmt off len
	img=$(vol_image "$1"); fmt=$(vol_qemu_fmt "$1")
	if [ "$fmt" = vpc ]; then
		off=$(to_bytes "$3") && len=$(to_bytes "$4") && [ "$len" -gt 0 ] || return 1
		cmp -s <("$IMGIO" --readonly --format vpc "$img" read "$off" "$len") \
		       <(head -c "$len" /dev/zero | tr '\0' "\\$(printf '%03o' "$2")")
		return
	fi
	# qemu-io exits 1 on a pattern mismatch or a failed read
	qio -r -f "$fmt" -c "read -P $2 $3 $4" "$img"
}
# alive PID: running (a zombie has exited; our PID 1 may not reap it)
alive() { local s; s=$(ps -o stat= -p "$1" 2>/dev/null) && [ -n "$s" ] && [ "${s:0:1}" != Z ]; }

# jqt FILTER [args] <<<"$json": true when the filter holds (no output)
jqt() { jq -e "$@" >/dev/null 2>&1; }
