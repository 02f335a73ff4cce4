# SPDX-License-Identifier: LGPL-2.1-only
# Shared helpers for the ngdp-server shell tests (sourced).  Every server a
# test starts is recorded by PID and must be gone at the end; everything
# lives in one temporary directory removed on exit, whatever happens.
#
# Protocol (tests/README.md): the script exits 0 when every check passed,
# 1 when one failed or the script ended without reaching finish (set -u
# error, an early exit), 77 when skipped (skip_test REASON).

set -u
skip_test() { echo "SKIP: $*"; exit 77; }
: "${NGDP_SERVER:?NGDP_SERVER must point at the ngdp-server binary}"
: "${NGDP_HELPERS:?NGDP_HELPERS must point at the built test helpers}"
ENGINE=${ENGINE:-aio}
LIBDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
T=$(mktemp -d /var/tmp/ngdp-server-test.XXXXXX)
# stray files of clients (fio state...) land in $T too
cd "$T" || exit 1
SERVER_PIDS=()
BG_PIDS=()
PASSED=0
FAILED=0
SKIPPED=0

FINISHED=
_cleanup() {
	local rc=$? p
	for p in "${BG_PIDS[@]}" "${SERVER_PIDS[@]}"; do
		kill -9 "$p" 2>/dev/null
	done
	for p in "${BG_PIDS[@]}" "${SERVER_PIDS[@]}"; do
		wait "$p" 2>/dev/null
	done
	cd / && rm -rf "$T"
	if [ -z "$FINISHED" ] && [ "$rc" -ne 77 ]; then
		echo "FAIL: $(basename "$0") ended before finish (exit $rc)"
		exit 1
	fi
	exit "$rc"
}
trap _cleanup EXIT

ok() { echo "ok: $*"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL: $*"; FAILED=$((FAILED + 1)); }
skip() { echo "skip: $*"; SKIPPED=$((SKIPPED + 1)); }
# check DESCRIPTION COMMAND...: pass when the command succeeds
check() {
	local what=$1
	shift
	if "$@" >"$T/check.out" 2>&1; then
		ok "$what"
	else
		fail "$what"
		sed 's/^/    /' "$T/check.out" | tail -20
	fi
}

# start_server NAME [ngdp-server options...]: sets SERVER_PID, socket
# $T/NAME.sock, log $T/NAME.log.  Returns non-zero if it did not come up.
start_server() {
	local name=$1 i
	shift
	rm -f "$T/$name.pid"
	"$NGDP_SERVER" --engine "$ENGINE" --socket "$T/$name.sock" \
		--pidfile "$T/$name.pid" --log-stderr "$@" 2>>"$T/$name.log" &
	SERVER_PID=$!
	SERVER_PIDS+=("$SERVER_PID")
	for ((i = 0; i < 200; i++)); do
		[ -s "$T/$name.pid" ] && return 0
		kill -0 "$SERVER_PID" 2>/dev/null || break
		sleep 0.05
	done
	echo "server $name did not start:"
	cat "$T/$name.log"
	return 1
}

# stop_server PID: SIGTERM, wait; returns the exit status.
stop_server() {
	local pid=$1 rc
	kill -TERM "$pid" 2>/dev/null
	wait "$pid"
	rc=$?
	if kill -0 "$pid" 2>/dev/null; then
		echo "server $pid still alive"
		return 99
	fi
	return $rc
}

# wait_gone PID: for a server that is not our child (up to 20 s)
wait_gone() {
	local i
	for ((i = 0; i < 400; i++)); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.05
	done
	return 1
}

uri() { echo "nbd+unix:///${2:-}?socket=$T/$1.sock"; }

# All servers started by this test must be gone.
assert_servers_gone() {
	local p alive=0
	for p in "${SERVER_PIDS[@]}"; do
		if kill -0 "$p" 2>/dev/null; then
			echo "server pid $p still running: $(tr "\0" " " </proc/$p/cmdline 2>/dev/null)"
			alive=1
		fi
	done
	[ $alive = 0 ]
}

# finish: the last line of every test; exits 0 (all checks passed) or 1
finish() {
	check "all servers gone" assert_servers_gone
	FINISHED=1
	echo "$(basename "$0") [$ENGINE]: checks: $PASSED ok, $FAILED failed, $SKIPPED skipped"
	[ "$FAILED" = 0 ] && exit 0
	exit 1
}

have_vhd() { [ -f "$LIBDIR/../../src/formats/vhd.c" ]; }

# gen_workload SEED SIZE N: qemu-io -c arguments (one per line) mixing
# aligned and unaligned writes, write-zeroes, discards and reads.
gen_workload() {
	local seed=$1 size=$2 n=$3 i op off len kind
	RANDOM=$seed
	for ((i = 0; i < n; i++)); do
		kind=$((RANDOM % 4))
		len=$(((RANDOM * 32768 + RANDOM) % 262144 + 1))
		off=$(((RANDOM * 32768 + RANDOM) % (size - len)))
		case $kind in
		0) off=$((off / 4096 * 4096)); len=$(((len + 4095) / 4096 * 4096)) ;;
		1) off=$((off / 512 * 512)); len=$(((len + 511) / 512 * 512)) ;;
		esac
		[ $((off + len)) -gt "$size" ] && len=$((size - off))
		op=$((RANDOM % 10))
		case $op in
		0 | 1 | 2 | 3 | 4) echo "write -P $((RANDOM % 255 + 1)) $off $len" ;;
		5) echo "write -z $off $len" ;;
		6) echo "write -z -u $off $len" ;;
		7) # after a discard the content is undefined: overwrite it
		   echo "discard $off $len"; echo "write -z $off $len" ;;
		*) echo "read $off $len" ;;
		esac
	done
}

# run_qemu_io FMT TARGET CMDFILE: apply the workload
run_qemu_io() {
	local fmt=$1 target=$2 file=$3 args=() line
	while IFS= read -r line; do args+=(-c "$line"); done <"$file"
	qemu-io -f "$fmt" "$target" "${args[@]}" >"$T/qemu-io.out" 2>&1 || {
		tail -5 "$T/qemu-io.out"
		return 1
	}
	if grep -qiE "error|fail" "$T/qemu-io.out"; then
		grep -iE "error|fail" "$T/qemu-io.out" | head -5
		return 1
	fi
}
