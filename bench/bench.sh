#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-only
# bench.sh: datapath benchmark (fio limit vs qemu-dp's configuration vs ngdp).
#
# Usage: bench.sh INSTALL_ROOT
#   INSTALL_ROOT  a `make install DESTDIR=` tree (volume plugins, and the
#                 ngdp datapath plugin when it is installed)
# Environment (see bench/README.md):
#   BENCH_QUICK=1        short development run (< 5 min)
#   BENCH_TINY=1         plumbing only: tiny images, 1 s runs (check-bench)
#   BENCH_BACKING=ram|disk|DIR  where the loop files live (default ram:
#                        /dev/shm; disk: /var/tmp; or a directory)
#   BENCH_DEVICE=/dev/X  use this block device instead of loop files
#                        (IT IS REFORMATTED)
#   BENCH_FS="xfs ext4"  filesystems (first: full matrix, others: subset)
#   BENCH_RESULTS=DIR    where results.md, chart.svg, raw.tsv go
#   BENCH_REPS, BENCH_RUNTIME, BENCH_RAMP, BENCH_SIZE (MiB),
#   BENCH_LS_COUNTS, BENCH_CTL_N, BENCH_PERF=0|1, BENCH_FORCE_DIRECT=1
#   BENCH_COALESCE=1|0|only, BENCH_CO_CYCLES, BENCH_CO_REGION (MiB),
#   BENCH_CO_MERGE (MiB), BENCH_CO_LIVE (MiB)  the coalesce section
#                        (bench/coalesce.sh)
#   BENCH_CBT=1|0|only   writes with changed block tracking off and on
#   BENCH_MIRROR=1|0|only  the storage-migration mirror (bench/mirror.sh)
#   BENCH_SPEED=1|0|only   connections, first writes into new clusters,
#                        system calls per I/O (bench/speed.sh)
#   BENCH_SCALE_ONLY=1   only the volumes-at-once section (scale)
#   BENCH_RING=1|0|only    the blkif ring over shared memory against the
#                        raw file (bench/ring.sh; needs BLKIF_FRONT)
#   BENCH_NEW_SIZE, BENCH_NEW_IO (MiB)  the new-cluster writes' volume
#                        size and amount written
#   NGDP_SERVER          the ngdp-server binary for the direct-start fallback
#   NGDP_IMGIO           the ngdp-imgio binary (coalesce section)
#   NGDP_CTL             tests/server/ngdp-ctl (live coalesce row)
#   MEMCOPY              bench/memcopy (the memory copy rates)
set -u
export LC_ALL=C

HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
INSTALL_ROOT=$(cd "${1:?usage: bench.sh INSTALL_ROOT}" && pwd)
XSS=$INSTALL_ROOT/usr/libexec/xapi-storage-script
NGDP_SERVER=${NGDP_SERVER:-$TOP/build/ngdp-server}
DP=$XSS/datapath/ngdp

# ---------------------------------------------------------------- settings
if [ "${BENCH_TINY:-0}" = 1 ]; then
	MODE=tiny
	d_size=32 d_reps=1 d_rt=1 d_ramp=0 d_ls="10 20" d_ctl=2
	d_chain="1 3" d_scale="1 2" d_perf=0
	d_co_n=2 d_co_region=4 d_co_merge=8 d_co_live=32
	d_new_size=256 d_new_io=4
elif [ "${BENCH_QUICK:-0}" = 1 ]; then
	MODE=quick
	d_size=256 d_reps=1 d_rt=1 d_ramp=1 d_ls="100 1000" d_ctl=5
	d_chain="1 11 30" d_scale="1 2 4" d_perf=0
	d_co_n=4 d_co_region=16 d_co_merge=64 d_co_live=1024
	d_new_size=4096 d_new_io=32
else
	MODE=full
	d_size=1024 d_reps=3 d_rt=3 d_ramp=1 d_ls="100 1000 10000" d_ctl=20
	d_chain="1 11 30" d_scale="1 2 4" d_perf=1
	d_co_n=8 d_co_region=64 d_co_merge=512 d_co_live=2048
	d_new_size=4096 d_new_io=128
fi
SIZE_MB=${BENCH_SIZE:-$d_size}
REPS=${BENCH_REPS:-$d_reps}
RUNTIME=${BENCH_RUNTIME:-$d_rt}
RAMP=${BENCH_RAMP:-$d_ramp}
LS_COUNTS=${BENCH_LS_COUNTS:-$d_ls}
CTL_N=${BENCH_CTL_N:-$d_ctl}
CHAIN_DEPTHS=${BENCH_CHAIN:-$d_chain}
SCALE_NS=${BENCH_SCALE:-$d_scale}
PERF=${BENCH_PERF:-$d_perf}
FS_LIST=${BENCH_FS:-xfs ext4}
BACKING=${BENCH_BACKING:-ram}
COALESCE=${BENCH_COALESCE:-1}
CBT=${BENCH_CBT:-1}
MIRROR=${BENCH_MIRROR:-1}
SPEED=${BENCH_SPEED:-1}
RING=${BENCH_RING:-1}
# Where servers (and the plugin that starts them) and fio run: one CPU
# each, so every contender gets the same CPU; the speed section's
# "unpinned" part lets both float over every CPU.
SERVER_CPUS=0 FIO_CPUS=1
ALL_CPUS=$(awk '/^Cpus_allowed_list:/ { print $2 }' /proc/self/status)
CO_CYCLES=${BENCH_CO_CYCLES:-$d_co_n}
CO_REGION_MB=${BENCH_CO_REGION:-$d_co_region}
CO_MERGE_MB=${BENCH_CO_MERGE:-$d_co_merge}
CO_LIVE_MB=${BENCH_CO_LIVE:-$d_co_live}
RESULTS=${BENCH_RESULTS:-$HERE/results}
SIZE=$((SIZE_MB * 1048576))
# allocation writes: a fixed amount (not time-based), a quarter of the disk
FRESH_IO=$((SIZE / 4))
# first writes into new clusters (bench/speed.sh): a volume this large,
# this much written, one 4k write per 64 KiB cluster start
NEW_SIZE=$((${BENCH_NEW_SIZE:-$d_new_size} * 1048576))
NEW_IO=$((${BENCH_NEW_IO:-$d_new_io} * 1048576))

# Tests: name, fio options, metric (iops|mbps).  rw-fresh runs on a new
# image with a fixed I/O count; the others are time-based on filled images.
TESTS_FULL="rr-qd1 rr-qd32 rw-fresh rw-alloc seq-read seq-write"
TESTS_SUBSET="rr-qd32 rw-fresh seq-read"
test_opts() {
	case $1 in
	rr-qd1) echo "--rw=randread --bs=4k --iodepth=1" ;;
	rr-qd32) echo "--rw=randread --bs=4k --iodepth=32" ;;
	rr-qd8) echo "--rw=randread --bs=4k --iodepth=8" ;;
	rw-new) echo "--rw=randwrite --bs=4k --blockalign=64k --iodepth=32 --io_size=$NEW_IO" ;;
	rw-fresh) echo "--rw=randwrite --bs=4k --iodepth=32 --io_size=$FRESH_IO" ;;
	rw-alloc) echo "--rw=randwrite --bs=4k --iodepth=32" ;;
	seq-read) echo "--rw=read --bs=1M --iodepth=8" ;;
	seq-write) echo "--rw=write --bs=1M --iodepth=8" ;;
	esac
}
test_dir() { case $1 in rr-* | seq-read) echo read ;; *) echo write ;; esac; }
test_timed() { [ "$1" != rw-fresh ] && [ "$1" != rw-new ]; }
# the size of the raw file the limit runs on
test_size() { if [ "$1" = rw-new ]; then echo "$NEW_SIZE"; else echo "$SIZE"; fi; }

# Contenders: the limit (fio on a raw file), the NBD transport ceiling
# (nbdkit's null plugin: no I/O at all), qemu-dp's configuration
# (qemu-nbd), qemu-storage-daemon io_uring, ngdp on qcow2/raw/vhd.
CONT_FULL="limit nbd-null qemu-nbd qsd ngdp-aio ngdp-uring ngdp-raw ngdp-vhd"
CONT_SUBSET="limit qemu-nbd ngdp-aio ngdp-uring"
cont_sr() { case $1 in ngdp-raw) echo raw ;; ngdp-vhd) echo vhd ;; *) echo qcow2 ;; esac; }

# ---------------------------------------------------------------- state
mkdir -p "$TOP/bench/work"
W=$(mktemp -d "$TOP/bench/work/run.XXXXXX")
case $BACKING in
ram) BDIR=$(mktemp -d /dev/shm/xsng-bench.XXXXXX) ;;
disk) BDIR=$(mktemp -d /var/tmp/xsng-bench.XXXXXX) ;;
*) BDIR=$(mktemp -d "$BACKING/xsng-bench.XXXXXX") || exit 1 ;;
esac
export XSNG_MOUNT_ROOT=$W/mnt XSNG_RUN_DIR=$W/run
mkdir -p "$XSNG_MOUNT_ROOT" "$XSNG_RUN_DIR" "$W/fio" "$W/log"
PIDS=()          # every server we started or the plugin started for us
ACTIVE=()        # "sr key" pairs activated through the plugin
TSV=$W/raw.tsv   # fs group contender test reps... (one line per run)
CTL_TSV=$W/ctl.tsv
: >"$TSV"
: >"$CTL_TSV"
TICK=$(getconf CLK_TCK)
T_START=$(date +%s)

log() { echo "[bench $(date +%T)] $*" >&2; }
die() { log "FATAL: $*"; exit 1; }

cleanup() {
	local a l m
	set +e
	for a in "${ACTIVE[@]}"; do
		# shellcheck disable=SC2086
		dp_stop $a >/dev/null 2>&1
	done
	[ ${#PIDS[@]} -gt 0 ] && stop_pids "${PIDS[@]}"
	for m in $(findmnt -rn -o TARGET | grep "^$W/" | sort -r); do
		umount "$m" 2>/dev/null || umount -l "$m"
	done
	for l in $(losetup -l -n -O NAME,BACK-FILE |
		   awk -v t="$BDIR/" 'index($2, t) == 1 {print $1}'); do
		losetup -d "$l"
	done
	rm -rf "$BDIR"
	# keep the raw logs of a failed run for a look, drop a good one's
	if [ "${BENCH_OK:-0}" = 1 ] && [ "${BENCH_KEEP:-0}" != 1 ]; then
		rm -rf "$W"
	fi
	leftovers
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Print (and count) anything of ours still around.
leftovers() {
	local n=0 p
	for p in "${PIDS[@]}"; do
		kill -0 "$p" 2>/dev/null && { log "left: process $p"; n=$((n + 1)); }
	done
	if findmnt -rn -o TARGET | grep -q "^$W/"; then
		log "left: mounts under $W"; n=$((n + 1))
	fi
	if losetup -l -n -O BACK-FILE | grep -q "^$BDIR/"; then
		log "left: loop devices on $BDIR"; n=$((n + 1))
	fi
	[ -e "$BDIR" ] && { log "left: $BDIR"; n=$((n + 1)); }
	[ "$n" -eq 0 ] && log "clean: no processes, mounts, loop devices or files left"
	return "$n"
}

now_ns() { date +%s%N; }

# ---------------------------------------------------------------- plugins
# vcall FS METHOD JSON: run a volume plugin method as xapi-storage-script
# does; stdout is the JSON result, non-zero on failure.
vcall() {
	local dir=$XSS/volume/org.xen.xapi.storage.$1-ng
	printf '%s' "$3" | "$dir/$2" --json 2>>"$W/log/plugin.err"
}
dpcall() {
	printf '%s' "$2" | taskset -c "$SERVER_CPUS" "$DP/$1" --json 2>>"$W/log/plugin.err"
}
FORCE_DIRECT=${BENCH_FORCE_DIRECT:-0}
have_plugin() {
	[ "$FORCE_DIRECT" != 1 ] && [ -x "$DP/Datapath.activate" ]
}

# mk_sr FS FMT: a loop device (or BENCH_DEVICE), SR.create + SR.attach;
# prints the SR mount path.
mk_sr() {
	local fs=$1 fmt=$2 dev f cfg sr
	# a given device holds the qcow2 SR (and the limit file); the raw
	# and VHD SRs and the control-path SR stay on loop files
	if [ -n "${BENCH_DEVICE:-}" ] && [ "$fmt" = qcow2 ] && [ -z "${3:-}" ]; then
		dev=$BENCH_DEVICE
	else
		f=$BDIR/$fs-$fmt.img
		truncate -s "${3:-$((SIZE_MB * 12 + 2048))}M" "$f"
		dev=$(losetup -f --show --direct-io=on "$f") || return 1
	fi
	cfg=$(vcall "$fs" SR.create "{\"dbg\":\"bench\",\"uuid\":\"$(cat /proc/sys/kernel/random/uuid)\",\"name\":\"bench $fs $fmt\",\"description\":\"\",\"configuration\":{\"device\":\"$dev\",\"image-format\":\"$fmt\"}}") ||
		{ log "SR.create $fs $fmt: $cfg"; return 1; }
	sr=$(vcall "$fs" SR.attach "{\"dbg\":\"bench\",\"configuration\":$cfg}" | jq -r .) ||
		return 1
	[ -d "$sr" ] || return 1
	echo "$sr"
}

rm_sr() { # FS SR: SR.detach (unmounts), then free its loop device and file
	local dev back
	dev=$(findmnt -rn -o SOURCE --target "$2" 2>/dev/null)
	vcall "$1" SR.detach "{\"dbg\":\"bench\",\"sr\":\"$2\"}" >/dev/null
	if findmnt -rn -o TARGET | grep -qx "$2"; then umount "$2"; fi
	[ -n "$dev" ] || return 0
	back=$(losetup -l -n -O BACK-FILE "$dev" 2>/dev/null)
	case $back in "$BDIR"/*) losetup -d "$dev"; rm -f "$back" ;; esac
	return 0
}

# vol_create FS SR NAME SIZE: prints the key
vol_create() {
	vcall "$1" Volume.create "{\"dbg\":\"bench\",\"sr\":\"$2\",\"name\":\"$3\",\"description\":\"\",\"size\":$4,\"sharable\":false}" |
		jq -er .key
}
vol_destroy() {
	vcall "$1" Volume.destroy "{\"dbg\":\"bench\",\"sr\":\"$2\",\"key\":\"$3\"}" >/dev/null
}
vol_snapshot() {
	vcall "$1" Volume.snapshot "{\"dbg\":\"bench\",\"sr\":\"$2\",\"key\":\"$3\"}" >/dev/null
}
vol_image() { # SR KEY: the image file behind a volume
	local rec=$1/meta/v-$2.json
	echo "$1/images/$(jq -r .image "$rec").$(jq -r '."image-format"' "$rec")"
}
qemu_fmt() { case $1 in *.vhd) echo vpc ;; *.qcow2) echo qcow2 ;; *) echo raw ;; esac; }

# fill IMG: random data over the whole virtual disk (read tests on
# unallocated clusters would read nothing).  qemu-img is the independent
# writer; fall back to nbdcopy through our own server.
fill() {
	local img=$1 fmt
	fmt=$(qemu_fmt "$img")
	if [ "$fmt" = raw ]; then
		dd if="$BDIR/rand.raw" of="$img" bs=1M conv=notrunc,fsync \
			oflag=direct status=none && return 0
	fi
	qemu-img convert -n -t none -f raw -O "$fmt" "$BDIR/rand.raw" "$img" \
		2>>"$W/log/fill.err" && return 0
	log "qemu-img could not fill $img; filling through ngdp-server"
	start_direct fill "$img" uring || return 1
	nbdcopy "$BDIR/rand.raw" "$URI" 2>>"$W/log/fill.err"
	local r=$?
	stop_pids "${SPIDS[@]}"
	return $r
}

# ---------------------------------------------------------------- servers
# Each start_* sets URI (libnbd form) and appends the server PIDs to SPIDS.
SPIDS=()

wait_nbd() { # URI PID: until the server answers (10 s)
	local i
	for ((i = 0; i < 200; i++)); do
		nbdinfo --size "$1" >/dev/null 2>&1 && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}
wait_pidfile() {
	local i
	for ((i = 0; i < 200; i++)); do
		[ -s "$1" ] && { cat "$1"; return 0; }
		sleep 0.05
	done
	return 1
}

start_qnbd() { # NAME IMG
	local sock=$W/$1.sock pid
	rm -f "$sock" "$W/$1.pid"
	taskset -c "$SERVER_CPUS" qemu-nbd -f qcow2 --cache=none --aio=native \
		--discard=unmap -t -e 4 -k "$sock" --pid-file "$W/$1.pid" "$2" \
		</dev/null >>"$W/log/$1.log" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	SPIDS+=("$pid")
	URI="nbd+unix:///?socket=$sock"
	wait_nbd "$URI" "$pid"
}

start_qsd() { # NAME IMG
	local sock=$W/$1.sock pid
	rm -f "$sock"
	taskset -c "$SERVER_CPUS" qemu-storage-daemon \
		--blockdev "{\"driver\":\"file\",\"node-name\":\"f\",\"filename\":\"$2\",\"cache\":{\"direct\":true},\"aio\":\"io_uring\"}" \
		--blockdev '{"driver":"qcow2","node-name":"q","file":"f","discard":"unmap"}' \
		--nbd-server "addr.type=unix,addr.path=$sock" \
		--export type=nbd,id=e,node-name=q,name=d,writable=on \
		</dev/null >>"$W/log/$1.log" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	SPIDS+=("$pid")
	URI="nbd+unix:///d?socket=$sock"
	wait_nbd "$URI" "$pid"
}

start_null() { # NAME: nbdkit null plugin, the transport's ceiling
	local sock=$W/$1.sock pid
	rm -f "$sock"
	taskset -c "$SERVER_CPUS" nbdkit -f -U "$sock" null size="$SIZE" \
		</dev/null >>"$W/log/$1.log" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	SPIDS+=("$pid")
	URI="nbd+unix:///?socket=$sock"
	wait_nbd "$URI" "$pid"
}

start_direct() { # NAME IMG ENGINE [SERVER-ARGS...]: ngdp-server without the plugin
	local sock=$W/$1.sock pid
	rm -f "$sock" "$W/$1.pid"
	taskset -c "$SERVER_CPUS" "$NGDP_SERVER" --image "$2" --socket "$sock" \
		--engine "$3" --pidfile "$W/$1.pid" "${@:4}" \
		</dev/null >>"$W/log/$1.log" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	SPIDS+=("$pid")
	URI="nbd+unix:///?socket=$sock"
	wait_nbd "$URI" "$pid"
}

# Datapath plugin: attach + activate as xapi does; the Nbd implementation's
# nbd:unix:<socket>:exportname=<name> becomes libnbd's URI.
dp_args() { echo "{\"dbg\":\"bench\",\"uri\":\"ngdp://$1/$2\",\"domain\":\"0\"}"; }
start_plugin() { # SR KEY ENGINE
	local args out nbd sock name pid
	args=$(dp_args "$1" "$2")
	out=$(XSNG_DATAPATH_ENGINE=$3 dpcall Datapath.attach "$args") ||
		{ log "Datapath.attach: $out"; return 1; }
	nbd=$(jq -r '.implementations[] | select(.[0] == "Nbd") | .[1].uri' <<<"$out" | head -1)
	ACTIVE+=("$1 $2")
	out=$(XSNG_DATAPATH_ENGINE=$3 dpcall Datapath.activate "$args") ||
		{ log "Datapath.activate: $out"; DP_ERR=$(jq -r '.params[1] // .' <<<"$out" 2>/dev/null); return 1; }
	pid=$(jq -r .pid "$1/.sr/active/$2.json" 2>/dev/null)
	[[ $pid =~ ^[0-9]+$ ]] || { log "no server pid for $2"; return 1; }
	PIDS+=("$pid")
	SPIDS+=("$pid")
	sock=${nbd#nbd:unix:}
	name=${sock##*:exportname=}
	sock=${sock%:exportname=*}
	[ "$name" = "$nbd" ] && name=
	URI="nbd+unix:///$name?socket=$sock"
	wait_nbd "$URI" "$pid"
}
dp_stop() { # SR KEY
	local args
	args=$(dp_args "$1" "$2")
	dpcall Datapath.deactivate "$args" >/dev/null
	dpcall Datapath.detach "$args" >/dev/null
}

stop_pids() { # PID...: TERM, wait until gone (KILL after 10 s)
	local p i
	for p in "$@"; do kill -TERM "$p" 2>/dev/null; done
	for p in "$@"; do
		for ((i = 0; i < 200; i++)); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.05
		done
		kill -0 "$p" 2>/dev/null && { log "pid $p ignored SIGTERM"; kill -9 "$p"; }
		while kill -0 "$p" 2>/dev/null; do sleep 0.05; done
	done
	return 0
}

# start_cont CONTENDER SR KEY: serve one volume; sets URI, SPIDS (appends)
start_cont() {
	local c=$1 sr=$2 key=$3 img name
	img=$(vol_image "$sr" "$key")
	name=$c-${key:0:8}
	case $c in
	nbd-null) start_null "$name" ;;
	qemu-nbd) start_qnbd "$name" "$img" ;;
	qsd) start_qsd "$name" "$img" ;;
	ngdp-*)
		local eng=uring
		[ "$c" = ngdp-aio ] && eng=aio
		if have_plugin; then
			start_plugin "$sr" "$key" "$eng"
		else
			start_direct "$name" "$img" "$eng"
		fi
		;;
	esac
}
# stop every server in SPIDS (through the plugin for the ones it started)
stop_all() {
	local a
	for a in "${ACTIVE[@]}"; do
		# shellcheck disable=SC2086
		dp_stop $a
	done
	ACTIVE=()
	stop_pids "${SPIDS[@]}"
	SPIDS=()
}

sys_ticks() { # "busy total" clock ticks of all CPUs, from /proc/stat
	awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i
		print t - $5 - $6, t; exit }' /proc/stat
}
cpu_each() { # "busy total" clock ticks of each CPU, on one line
	awk '/^cpu[0-9]/ { t = 0; for (i = 2; i <= NF; i++) t += $i
		printf "%s%d %d", n++ ? " " : "", t - $5 - $6, t } END { print "" }' /proc/stat
}
cpu_ticks() { # PID...: utime+stime of all of them, in clock ticks
	local p s=0 t
	for p in "$@"; do
		t=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}')
		s=$((s + ${t:-0}))
	done
	echo "$s"
}

# ---------------------------------------------------------------- fio
# run_fio TAG TEST TARGET...: TARGET is file:PATH or nbd:URI (one fio job
# per target, reported as a group).  CPU of SPIDS is sampled from the end
# of the ramp to the end of the run.  Prints "iops mbps lat_us p99_us
# cpu_us_per_io fio_cpu_percent machine_busy_percent".
run_fio() {
	local tag=$1 t=$2 out=$W/fio/$1.json dir c0 c1 t0 t1 ios i=0 tgt
	shift 2
	local args=(--output-format=json --output="$out" --group_reporting
		--norandommap --randrepeat=0 --thread)
	# shellcheck disable=SC2207
	args+=($(test_opts "$t"))
	if test_timed "$t"; then
		args+=(--time_based --runtime="$RUNTIME")
		[ "$RAMP" -gt 0 ] && args+=(--ramp_time="$RAMP")
	fi
	for tgt in "$@"; do
		args+=(--name="j$i")
		case $tgt in
		file:*) args+=(--ioengine=io_uring --direct=1
			       --filename="${tgt#file:}" --size="$(test_size "$t")") ;;
		nbd:*) args+=(--ioengine=nbd --uri="${tgt#nbd:}") ;;
		esac
		i=$((i + 1))
	done
	echo "fio ${args[*]}" >>"$W/log/fio-commands.txt"
	local cpuf=$W/cpu0 eachf=$W/cpu-each0 sampler= s0 s1
	rm -f "$cpuf" "$eachf"
	# CPU of the servers and of the whole machine, from the end of the
	# ramp (only wait for our own jobs: directly started servers are
	# children of this shell too)
	if test_timed "$t" && [ "$RAMP" -gt 0 ]; then
		(sleep "$RAMP"; echo "$(cpu_ticks "${SPIDS[@]}") $(sys_ticks)" >"$cpuf"
		 cpu_each >"$eachf") &
		sampler=$!
	else
		echo "$(cpu_ticks "${SPIDS[@]}") $(sys_ticks)" >"$cpuf"
		cpu_each >"$eachf"
	fi
	if ! taskset -c "$FIO_CPUS" fio "${args[@]}" >>"$W/log/fio.err" 2>&1; then
		log "fio failed ($tag)"
		[ -n "$sampler" ] && wait "$sampler"
		return 1
	fi
	[ -n "$sampler" ] && wait "$sampler"
	# the nbd engine prints "fio: connected to NBD server" into --output
	sed -i -n '/^{/,$p' "$out"
	dir=$(test_dir "$t")
	read -r c0 s0 t0 <"$cpuf"
	read -r s1 t1 < <(sys_ticks)
	# each CPU's busy % over the same window, tab-separated (one_run
	# records it)
	paste -d' ' "$eachf" <(cpu_each) | awk '{
		n = NF / 4
		for (i = 1; i <= n; i++) {
			b = $(2 * n + 2 * i - 1) - $(2 * i - 1); a = $(2 * n + 2 * i) - $(2 * i)
			printf "%s%.1f", (i > 1) ? "\t" : "", (a > 0) ? 100 * b / a : 0
		}
		print "" }' >"$W/cpu-each.last"
	c1=
	[ ${#SPIDS[@]} -gt 0 ] && c1=$(cpu_ticks "${SPIDS[@]}")
	[ ${#SPIDS[@]} -gt 0 ] || c0=
	ios=$(jq ".jobs[0].$dir.total_ios" "$out")
	jq -r --arg c0 "${c0:-}" --arg c1 "${c1:-}" --argjson tick "$TICK" \
		--argjson sysb "$(awk -v a="$s0" -v b="$s1" -v c="$t0" -v d="$t1" \
			'BEGIN { print (d > c) ? 100 * (b - a) / (d - c) : 0 }')" \
		".jobs[0] as \$j | \$j.$dir | [.iops, .bw_bytes / 1e6, .lat_ns.mean / 1e3,
		 ((.clat_ns.percentile[\"99.000000\"] // 0) / 1e3),
		 (if \$c0 == \"\" or \$c1 == \"\" or .total_ios == 0 then \"-\"
		  else ((\$c1 | tonumber) - (\$c0 | tonumber)) * 1e6 / \$tick / .total_ios end),
		 (\$j.usr_cpu + \$j.sys_cpu), \$sysb]
		 | map(if type == \"number\" then (. * 100 | round / 100) else . end) | @tsv" "$out"
	[ "$ios" -gt 0 ] 2>/dev/null
}

# record FS GROUP CONTENDER TEST REP RESULT...
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$TSV"; }

# one_run FS GROUP CONTENDER TEST REP VOLSPEC...: VOLSPEC "sr key" per
# volume (limit: file paths).  Serves, runs fio, stops, records.  NCONN=n:
# n fio jobs (n connections) on each served volume.
one_run() {
	local fs=$1 group=$2 c=$3 t=$4 rep=$5 tag res v k targets=()
	shift 5
	tag=$fs-$group-$c-$t-$rep
	SPIDS=()
	for v in "$@"; do
		if [ "$c" = limit ]; then
			targets+=("file:$v")
			continue
		fi
		# shellcheck disable=SC2086
		start_cont "$c" $v || { log "$c did not start ($tag)"; stop_all; return 1; }
		for ((k = 0; k < ${NCONN:-1}; k++)); do targets+=("nbd:$URI"); done
	done
	# where the servers may run, as the kernel reports it (the plugin
	# starts them: their affinity is inherited, not set by us)
	local cpus=-
	[ ${#SPIDS[@]} -gt 0 ] && cpus=$(for v in "${SPIDS[@]}"; do
		awk '/^Cpus_allowed_list:/ { print $2 }' "/proc/$v/status" 2>/dev/null
	done | sort -u | paste -sd' ')
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$fs" "$group" "$c" "$t" "$rep" "${cpus:-?}" "$FIO_CPUS" >>"$W/placement.tsv"
	res=$(run_fio "$tag" "$t" "${targets[@]}")
	local rc=$?
	stop_all
	[ $rc -eq 0 ] || return 1
	record "$fs" "$group" "$c" "$t" "$rep" "$res"
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$fs" "$group" "$c" "$t" "$rep" \
		"$(cat "$W/cpu-each.last")" >>"$W/cpu-each.tsv"
	log "$tag: $res"
}

# ---------------------------------------------------------------- matrix
declare -A SRP   # fmt -> SR path (current filesystem)
declare -A MAIN  # contender sr fmt -> main (filled) volume key

setup_fs() { # FS
	local fs=$1 fmt
	for fmt in qcow2 raw vhd; do
		SRP[$fmt]=$(mk_sr "$fs" "$fmt") || die "cannot make the $fs $fmt SR"
		MAIN[$fmt]=$(vol_create "$fs" "${SRP[$fmt]}" "bench-main" "$SIZE") ||
			die "Volume.create ($fs $fmt)"
		fill "$(vol_image "${SRP[$fmt]}" "${MAIN[$fmt]}")" || die "fill $fmt"
	done
	# The plugin is the path xapi uses; if it is installed but cannot
	# serve here, say so and measure the server started directly.
	if have_plugin; then
		SPIDS=()
		DP_ERR=
		if ! start_plugin "${SRP[qcow2]}" "${MAIN[qcow2]}" uring; then
			FORCE_DIRECT=1
			DP_MODE="direct start of ngdp-server: the datapath plugin is installed but Datapath.activate failed here (${DP_ERR:-no message})"
			log "$DP_MODE"
		fi
		stop_all
	fi
	LIMIT_FILE=${SRP[qcow2]}/bench-limit.raw
	truncate -s "$SIZE" "$LIMIT_FILE"
	fill "$LIMIT_FILE" || die "fill limit file"
	qemu-img check -q -f qcow2 "$(vol_image "${SRP[qcow2]}" "${MAIN[qcow2]}")" ||
		die "the filled qcow2 image does not check"
	qemu-img compare -q -f raw -F qcow2 "$BDIR/rand.raw" \
		"$(vol_image "${SRP[qcow2]}" "${MAIN[qcow2]}")" ||
		die "the filled qcow2 image differs from its source"
}

teardown_fs() {
	local fmt
	for fmt in qcow2 raw vhd; do rm_sr "$1" "${SRP[$fmt]}"; done
}

# matrix FS CONTENDERS TESTS: contenders interleaved inside each repetition
matrix() {
	local fs=$1 conts=$2 tests=$3 rep t c sr key f
	for ((rep = 1; rep <= REPS; rep++)); do
		for t in $tests; do
			for c in $conts; do
				sr=${SRP[$(cont_sr "$c")]}
				if [ "$t" = rw-fresh ]; then
					if [ "$c" = limit ]; then
						f=${SRP[qcow2]}/bench-fresh.raw
						rm -f "$f"; truncate -s "$SIZE" "$f"
						one_run "$fs" matrix "$c" "$t" "$rep" "$f"
						rm -f "$f"
					else
						key=$(vol_create "$fs" "$sr" fresh "$SIZE") ||
							die "Volume.create fresh"
						one_run "$fs" matrix "$c" "$t" "$rep" "$sr $key"
						vol_destroy "$fs" "$sr" "$key"
					fi
				elif [ "$c" = limit ]; then
					one_run "$fs" matrix "$c" "$t" "$rep" "$LIMIT_FILE"
				else
					one_run "$fs" matrix "$c" "$t" "$rep" \
						"$sr ${MAIN[$(cont_sr "$c")]}"
				fi
			done
		done
	done
}

# scale FS: 1, 2, 4 volumes served at once (one server each), and the
# same image files read by fio directly (limit)
scale() {
	local fs=$1 sr=${SRP[qcow2]} keys=("${MAIN[qcow2]}") n rep t c i specs
	local max=0
	for n in $SCALE_NS; do [ "$n" -gt "$max" ] && max=$n; done
	for ((i = 1; i < max; i++)); do
		keys+=("$(vol_create "$fs" "$sr" "bench-scale$i" "$SIZE")") || die scale
		fill "$(vol_image "$sr" "${keys[$i]}")" || die "fill scale"
	done
	for ((rep = 1; rep <= REPS; rep++)); do
		for t in rr-qd32 seq-read; do
			for n in $SCALE_NS; do
				# limit: fio reads the same image files itself,
				# the device's own rate for n streams
				specs=()
				for ((i = 0; i < n; i++)); do specs+=("$(vol_image "$sr" "${keys[$i]}")"); done
				one_run "$fs" "scale$n" limit "$t" "$rep" "${specs[@]}"
				for c in qemu-nbd ngdp-uring; do
					specs=()
					for ((i = 0; i < n; i++)); do specs+=("$sr ${keys[$i]}"); done
					one_run "$fs" "scale$n" "$c" "$t" "$rep" "${specs[@]}"
				done
			done
		done
	done
	for ((i = 1; i < max; i++)); do vol_destroy "$fs" "$sr" "${keys[$i]}"; done
}

# chain FS: reads through backing chains of depth 1, 10, 30 (filled base,
# empty snapshots' leaves on top: Volume.snapshot as xapi calls it)
chain() {
	local fs=$1 sr=${SRP[qcow2]} d key rep t c i
	declare -A ck
	for d in $CHAIN_DEPTHS; do
		if [ "$d" -eq 1 ]; then ck[$d]=${MAIN[qcow2]}; continue; fi
		key=$(vol_create "$fs" "$sr" "bench-chain$d" "$SIZE") || die chain
		fill "$(vol_image "$sr" "$key")" || die "fill chain"
		for ((i = 1; i < d; i++)); do vol_snapshot "$fs" "$sr" "$key" || die snapshot; done
		ck[$d]=$key
	done
	for ((rep = 1; rep <= REPS; rep++)); do
		for t in rr-qd1 rr-qd32; do
			for d in $CHAIN_DEPTHS; do
				for c in qemu-nbd ngdp-uring; do
					one_run "$fs" "chain$d" "$c" "$t" "$rep" "$sr ${ck[$d]}"
				done
			done
		done
	done
}

# cbt_cost FS: what changed block tracking costs the guest's writes: one
# filled qcow2 volume served through the plugin, CBT off and on in turn
# (Volume.disable_cbt / enable_cbt between the runs)
cbt_cost() {
	local fs=$1 sr=${SRP[qcow2]} key rep t g
	have_plugin || { log "no datapath plugin: no CBT rows"; return 0; }
	key=$(vol_create "$fs" "$sr" "bench-cbt" "$SIZE") || die "cbt volume"
	fill "$(vol_image "$sr" "$key")" || die "fill cbt"
	for ((rep = 1; rep <= REPS; rep++)); do
		for t in rw-alloc seq-write; do
			for g in off on; do
				if [ "$g" = on ]; then
					vcall "$fs" Volume.enable_cbt "{\"dbg\":\"bench\",\"sr\":\"$sr\",\"key\":\"$key\"}" >/dev/null ||
						die "Volume.enable_cbt"
				else
					vcall "$fs" Volume.disable_cbt "{\"dbg\":\"bench\",\"sr\":\"$sr\",\"key\":\"$key\"}" >/dev/null ||
						die "Volume.disable_cbt"
				fi
				one_run "$fs" "cbt-$g" ngdp-uring "$t" "$rep" "$sr $key"
			done
		done
	done
	vol_destroy "$fs" "$sr" "$key"
}

# perf_profile FS: where ngdp's time goes (qcow2, io_uring)
# The server's CPU split into the kernel paths it spends it in (perf,
# inclusive of callees): perf-breakdown.tsv CONTENDER TEST PART PERCENT.
# A part counts the samples whose call chain passes through it; the parts
# can overlap (a copy is part of a receive), "ours" is the samples in the
# server's own code (its binary, not libc or the kernel).
PERF_PARTS="socket-receive:unix_stream_recvmsg socket-send:unix_stream_sendmsg
	copy-to-user:_copy_to_iter copy-from-user:_copy_from_iter
	direct-io-submit-uring:io_write direct-io-submit-aio:aio_write
	direct-io-read-uring:io_read direct-io-read-aio:aio_read
	page-pinning:bio_iov_iter_get_pages io-uring-worker:io_wq_worker
	epoll-wait:do_epoll_wait"
perf_breakdown() { # CONTENDER TEST PERF-DATA BINARY-NAME
	local p part sym v
	for p in $PERF_PARTS; do
		part=${p%%:*} sym=${p#*:}
		v=$(perf report -i "$3" --stdio --children --sort symbol -g none 2>/dev/null |
			awk -v s="$sym" '$1 ~ /%$/ && $4 == s { sub(/%/, "", $1); print $1; exit }')
		printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$part" "${v:-0}" >>"$W/perf-breakdown.tsv"
	done
	v=$(perf report -i "$3" --stdio --no-children --sort dso 2>/dev/null |
		awk -v b="$4" '$1 ~ /%$/ && $2 == b { sub(/%/, "", $1); print $1; exit }')
	printf '%s\t%s\t%s\t%s\n' "$1" "$2" ours "${v:-0}" >>"$W/perf-breakdown.tsv"
}
perf_profile() {
	local fs=$1 sr=${SRP[qcow2]} t c out bin
	command -v perf >/dev/null || { log "no perf: no profile"; return 0; }
	: >"$W/perf-breakdown.tsv"
	for c in ngdp-uring ngdp-aio nbd-null; do
		for t in rr-qd32 seq-write; do
			[ "$c" = ngdp-uring ] || [ "$t" = seq-write ] || continue
			SPIDS=()
			start_cont "$c" "$sr" "${MAIN[qcow2]}" || { stop_all; continue; }
			bin=$(basename "$(readlink "/proc/${SPIDS[0]}/exe")")
			out=$W/perf-$c-$t.data
			(sleep "$RAMP"; perf record -q -g -o "$out" -p "${SPIDS[0]}" -- sleep "$RUNTIME" \
				>/dev/null 2>&1) &
			local perf_job=$!
			run_fio "perf-$c-$t" "$t" "nbd:$URI" >/dev/null
			wait "$perf_job"
			stop_all
			perf_breakdown "$c" "$t" "$out" "$bin"
			if [ "$c" = ngdp-uring ]; then
				perf report -i "$out" --stdio --no-children --sort symbol \
					--percent-limit 1.5 2>/dev/null | grep -E '^ +[0-9.]+%' | head -25 |
					sed 's/[ -]*$//' \
					>"$W/perf-$t.txt"
			fi
			rm -f "$out"
		done
	done
}

# ---------------------------------------------------------------- control
ctl_time() { # NAME COMMAND...: time one call, record µs; output in $W/ctl.out
	local t0 t1 r
	t0=$(now_ns)
	"${@:2}" >"$W/ctl.out"
	r=$?
	t1=$(now_ns)
	[ $r -eq 0 ] || { log "control call $1 failed"; return 1; }
	printf '%s\t%s\n' "$1" "$(( (t1 - t0) / 1000 ))" >>"$CTL_TSV"
}

control_path() { # FS: run after the matrix, on a fresh qcow2 SR
	local fs=$1 sr key snap clone i n have=0 target args
	sr=$(mk_sr "$fs" qcow2 4096) || die "control SR"
	for ((i = 0; i < CTL_N; i++)); do
		ctl_time Volume.create vcall "$fs" Volume.create \
			"{\"dbg\":\"bench\",\"sr\":\"$sr\",\"name\":\"ctl\",\"description\":\"\",\"size\":$SIZE,\"sharable\":false}" ||
			die Volume.create
		key=$(jq -r .key "$W/ctl.out")
		ctl_time Volume.snapshot vcall "$fs" Volume.snapshot \
			"{\"dbg\":\"bench\",\"sr\":\"$sr\",\"key\":\"$key\"}" || die snapshot
		ctl_time Volume.clone vcall "$fs" Volume.clone \
			"{\"dbg\":\"bench\",\"sr\":\"$sr\",\"key\":\"$key\"}" || die clone
		if have_plugin; then
			args=$(dp_args "$sr" "$key")
			local t0 t1 pid
			t0=$(now_ns)
			dpcall Datapath.attach "$args" >/dev/null &&
				dpcall Datapath.activate "$args" >/dev/null
			t1=$(now_ns)
			ACTIVE+=("$sr $key")
			pid=$(jq -r .pid "$sr/.sr/active/$key.json" 2>/dev/null)
			[[ $pid =~ ^[0-9]+$ ]] && PIDS+=("$pid")
			printf '%s\t%s\n' "Datapath.attach+activate" "$(( (t1 - t0) / 1000 ))" >>"$CTL_TSV"
			ctl_time Volume.snapshot-active vcall "$fs" Volume.snapshot \
				"{\"dbg\":\"bench\",\"sr\":\"$sr\",\"key\":\"$key\"}"
			t0=$(now_ns)
			dp_stop "$sr" "$key"
			t1=$(now_ns)
			ACTIVE=()
			printf '%s\t%s\n' "Datapath.deactivate+detach" "$(( (t1 - t0) / 1000 ))" >>"$CTL_TSV"
			[[ $pid =~ ^[0-9]+$ ]] && stop_pids "$pid"
		fi
	done
	# SR.ls with N volumes: create up to each count, time 3 calls
	n=$(vcall "$fs" SR.ls "{\"dbg\":\"bench\",\"sr\":\"$sr\"}" | jq length)
	local t0 t1
	for target in $LS_COUNTS; do
		t0=$(now_ns)
		local made=0
		while [ "$n" -lt "$target" ]; do
			vcall "$fs" Volume.create "{\"dbg\":\"bench\",\"sr\":\"$sr\",\"name\":\"ls$n\",\"description\":\"\",\"size\":1048576,\"sharable\":false}" \
				>/dev/null || die "Volume.create ls$n"
			n=$((n + 1)) made=$((made + 1))
		done
		t1=$(now_ns)
		[ "$made" -gt 0 ] && printf '%s\t%s\n' "Volume.create-bulk($made)" \
			"$(( (t1 - t0) / 1000 / made ))" >>"$CTL_TSV"
		for i in 1 2 3; do
			ctl_time "SR.ls($target)" vcall "$fs" SR.ls "{\"dbg\":\"bench\",\"sr\":\"$sr\"}"
		done
		log "SR.ls with $target volumes timed"
	done
	rm_sr "$fs" "$sr"
}

# ---------------------------------------------------------------- coalesce
# shellcheck source=bench/coalesce.sh
. "$HERE/coalesce.sh"

# ---------------------------------------------------------------- mirror
# shellcheck source=bench/mirror.sh
. "$HERE/mirror.sh"
# shellcheck source=bench/speed.sh
. "$HERE/speed.sh"
# shellcheck source=bench/ring.sh
. "$HERE/ring.sh"

# ---------------------------------------------------------------- main
command -v fio >/dev/null && command -v qemu-nbd >/dev/null &&
	command -v jq >/dev/null && command -v nbdinfo >/dev/null ||
	die "missing tools: run 'make deps'"
command -v qemu-storage-daemon >/dev/null || die "no qemu-storage-daemon (qemu-system-common)"
[ -x "$XSS/volume/org.xen.xapi.storage.xfs-ng/SR.create" ] || die "no volume plugins in $XSS"
if have_plugin; then
	DP_MODE="datapath plugin (Datapath.attach + activate, XSNG_DATAPATH_ENGINE)"
else
	[ -x "$NGDP_SERVER" ] || die "no datapath plugin and no $NGDP_SERVER"
	DP_MODE="direct start of ngdp-server (datapath plugin not installed)"
fi
log "mode $MODE: ${SIZE_MB} MiB images, $REPS reps, ${RUNTIME}s + ${RAMP}s ramp, backing $BACKING${BENCH_DEVICE:+ device $BENCH_DEVICE}; ngdp via $DP_MODE"
log "work dir $W, loop files in $BDIR"
[ "$CO_REGION_MB" -le "$SIZE_MB" ] && [ "$CO_MERGE_MB" -le "$SIZE_MB" ] ||
	die "the coalesce region and merge sizes must fit in the ${SIZE_MB} MiB image"

# the machine's memory copy rate, 1 MiB copies by working set (MiB), on
# the servers' CPU: what the copies of large requests run at
if [ -x "${MEMCOPY:-}" ]; then
	taskset -c "$SERVER_CPUS" "$MEMCOPY" 1 8 32 256 >"$W/memcopy.tsv" ||
		die "memcopy failed"
else
	log "no memcopy probe (MEMCOPY): the memory copy rates are not measured"
fi
head -c "$SIZE" /dev/urandom >"$BDIR/rand.raw" || die "no room for the random source"
first=1
[ "$COALESCE" = only ] && FS_LIST_MATRIX= || FS_LIST_MATRIX=$FS_LIST
# one section alone, on the first filesystem: only_section NAME FUNCTION...
only_section() {
	local fs f
	FS_LIST_MATRIX= COALESCE=0
	fs=$(set -- $FS_LIST; echo "$1")
	log "== $fs ($1 only)"
	setup_fs "$fs"
	for f in "${@:2}"; do "$f" "$fs"; done
	teardown_fs "$fs"
}
# the raw file's sequential rates, for the mirror copy's ratio
limit_seq() {
	local rep t
	for ((rep = 1; rep <= REPS; rep++)); do
		for t in seq-read seq-write; do
			one_run "$1" matrix limit "$t" "$rep" "$LIMIT_FILE"
		done
	done
}
[ "${BENCH_SCALE_ONLY:-0}" = 1 ] && only_section scale scale
[ "$CBT" = only ] && only_section CBT cbt_cost
[ "$RING" = only ] && only_section ring ring_section
[ "$SPEED" = only ] && only_section speed speed_section $([ "$PERF" = 1 ] && echo perf_profile)
[ "$MIRROR" = only ] && only_section mirror limit_seq mirror_section
for fs in $FS_LIST_MATRIX; do
	log "== $fs"
	setup_fs "$fs"
	if [ $first = 1 ]; then
		matrix "$fs" "$CONT_FULL" "$TESTS_FULL"
		scale "$fs"
		chain "$fs"
		[ "$CBT" = 0 ] || cbt_cost "$fs"
		[ "$MIRROR" = 0 ] || mirror_section "$fs"
		[ "$SPEED" = 0 ] || speed_section "$fs"
		[ "$RING" = 0 ] || ring_section "$fs"
		[ "$PERF" = 1 ] && perf_profile "$fs"
	else
		matrix "$fs" "$CONT_SUBSET" "$TESTS_SUBSET"
	fi
	teardown_fs "$fs"
	first=0
done
[ "$COALESCE" != 0 ] && coalesce_section "$(set -- $FS_LIST; echo "$1")"
rm -f "$BDIR/rand.raw"
[ "$COALESCE" = only ] || [ "$CBT" = only ] || [ "$MIRROR" = only ] ||
	[ "$SPEED" = only ] || [ "$RING" = only ] || [ "${BENCH_SCALE_ONLY:-0}" = 1 ] ||
	control_path "$(set -- $FS_LIST; echo "$1")"
T_END=$(date +%s)

# ---------------------------------------------------------------- report
NEW_MB=$((NEW_SIZE / 1048576)) NEW_IO_MB=$((NEW_IO / 1048576))
export MODE SIZE_MB REPS RUNTIME RAMP BACKING DP_MODE FS_LIST NEW_MB NEW_IO_MB ALL_CPUS
export ELAPSED=$((T_END - T_START))
export BENCH_DEVICE=${BENCH_DEVICE:-}
# when and from what the run was made (a redrawn report keeps them)
RUN_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
RUN_COMMIT=$(git -C "$TOP" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$TOP" diff --quiet HEAD -- src include plugins 2>/dev/null ||
	RUN_COMMIT="$RUN_COMMIT + uncommitted changes in src/"
export RUN_DATE RUN_COMMIT
mkdir -p "$RESULTS"
# what report.sh needs, so a report can be redrawn from the results alone
for v in MODE SIZE_MB REPS RUNTIME RAMP BACKING DP_MODE FS_LIST ELAPSED BENCH_DEVICE NEW_MB NEW_IO_MB RUN_DATE RUN_COMMIT; do
	printf '%s=%q\n' "$v" "${!v}"
done >"$RESULTS/run.env"
cp "$TSV" "$RESULTS/raw.tsv"
cp "$CTL_TSV" "$RESULTS/control.tsv"
cp "$CO_TSV" "$RESULTS/coalesce.tsv"
cp "$MI_TSV" "$RESULTS/mirror.tsv"
cp "$SP_TSV" "$RESULTS/speed.tsv"
cp "$W/placement.tsv" "$RESULTS/placement.tsv" 2>/dev/null
cp "$W/cpu-each.tsv" "$RESULTS/cpu-each.tsv" 2>/dev/null
rm -f "$RESULTS/memcopy.tsv"
[ -s "$W/memcopy.tsv" ] && cp "$W/memcopy.tsv" "$RESULTS/memcopy.tsv"
[ -s "$W/perf-breakdown.tsv" ] && cp "$W/perf-breakdown.tsv" "$RESULTS/"
cat "$W"/perf-*.txt >/dev/null 2>&1 && for f in "$W"/perf-*.txt; do cp "$f" "$RESULTS/"; done
cp "$W/log/fio-commands.txt" "$RESULTS/fio-commands.txt"
# the raw fio JSON, trimmed to the per-job numbers, compressed
(cd "$W/fio" && for f in *.json; do
	[ -e "$f" ] || continue
	jq -c --arg f "$f" '{run: $f, jobs: [.jobs[] | {read: (.read | {io_bytes, iops, bw_bytes, lat_ns: (.lat_ns | {mean, stddev}), clat_ns: (.clat_ns | {percentile})}), write: (.write | {io_bytes, iops, bw_bytes, lat_ns: (.lat_ns | {mean, stddev}), clat_ns: (.clat_ns | {percentile})}), job_runtime, usr_cpu, sys_cpu}]}' "$f"
done) | gzip -9 >"$RESULTS/fio-json.jsonl.gz"
bash "$HERE/report.sh" "$RESULTS" || die "report failed"
BENCH_OK=1
log "done in $ELAPSED s: $RESULTS/results.md"
