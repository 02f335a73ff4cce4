#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-only
# At the file-descriptor limit (issue 10): accept fails with EMFILE and the
# level-triggered listener fires again; the server must back off (bounded
# CPU time and log size) and accept again once connections close.
. "$(dirname "$0")/lib.sh"

command -v prlimit >/dev/null || { echo "skip: prlimit not found"; exit 77; }
NCONN=60
WINDOW=3	# seconds at the limit
CPU_MAX_TICKS=$((WINDOW * 100 / 5))	# 20% of one core
LOG_MAX=16384

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

truncate -s 16M "$T/img.raw"
qemu-io -f raw "$T/img.raw" -c "write -P 0x5a 0 1M" >/dev/null
start_server s --image "$T/img.raw" --control "$T/s.ctl" || fail "start"
pid=$SERVER_PID
nfd=$(ls "/proc/$pid/fd" | wc -l)
check "lower the server's fd limit" prlimit --pid "$pid" --nofile=$((nfd + 4)):$((nfd + 4))
# hold NCONN connections (most of them stay in the listen backlog)
python3 - "$T/s.sock" $NCONN <<'PY' >"$T/holder.out" 2>&1 &
import socket, sys, time
socks = []
for i in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1])
    socks.append(s)
print("connected", len(socks), flush=True)
time.sleep(3600)
PY
holder=$!
BG_PIDS+=($holder)
for ((i = 0; i < 100; i++)); do grep -q connected "$T/holder.out" && break; sleep 0.1; done
check "holder connected" grep -q connected "$T/holder.out"
sleep 0.5
t0=$(ticks $pid)
s0=$(stat -c %s "$T/s.log")
sleep $WINDOW
t1=$(ticks $pid)
s1=$(stat -c %s "$T/s.log")
echo "at the limit for ${WINDOW}s: $((t1 - t0)) ticks of CPU, $((s1 - s0)) bytes of log"
check "CPU time bounded at the limit ($((t1 - t0)) ticks)" [ $((t1 - t0)) -le $CPU_MAX_TICKS ]
check "log size bounded at the limit ($((s1 - s0)) bytes)" [ $((s1 - s0)) -le $LOG_MAX ]
check "the failure is logged" grep -q "cannot accept connections" "$T/s.log"
kill $holder; wait $holder 2>/dev/null
served() {
	local i
	for ((i = 0; i < 50; i++)); do
		qemu-io -r -f raw "$(uri s)" -c "read -P 0x5a 0 64k" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	return 1
}
check "accepts again once connections close" served
check "control socket answers again" "$NGDP_HELPERS/ngdp-ctl" "$T/s.ctl" '{"op":"status"}'
check "SIGTERM exit 0" stop_server "$pid"
finish
