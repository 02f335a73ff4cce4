#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-only
# NBD memory caps (issue 10): clients that send many 32 MiB reads and never
# read the replies, and one that floods options without reading the
# replies, must not grow the server without bound; a well-behaved client
# on another connection is still served; after the burst the buffer pool
# shrinks back.  Measured from /proc/<pid>/status (VmHWM, VmRSS).
. "$(dirname "$0")/lib.sh"

EVIL="$NGDP_HELPERS/nbd-evil"
NFLOOD=6	# x 8 reads of 32 MiB: 1.5 GiB without caps
HWM_MAX_KB=$((320 * 1024))	# 256 MiB global cap + pool + the rest
RSS_IDLE_MAX_KB=$((96 * 1024))
# growth of VmHWM over the idle server's: 90 MiB of replies without a cap;
# the plain server grows ~1.5 MiB, the ASan one ~14 MiB (its quarantine
# keeps freed reply buffers), so the bound is on growth, not on the total
OPT_HWM_GROWTH_MAX_KB=$((24 * 1024))

kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
# wait_sent FILE: the flooding client printed "sent ..." (it is stuck)
wait_sent() {
	local i
	for ((i = 0; i < 300; i++)); do
		grep -q "^sent" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "client never got stuck: $(cat "$1")"
	return 1
}
under() { # under WHAT VALUE_KB MAX_KB
	echo "$1: ${2} kB (max ${3} kB)"
	[ -n "$2" ] && [ "$2" -le "$3" ]
}

truncate -s 512M "$T/img.raw"
qemu-io -f raw "$T/img.raw" -c "write -P 0x5a 0 1M" >/dev/null
start_server s --image "$T/img.raw" || fail "start"
pid=$SERVER_PID
flood=()
for ((i = 0; i < NFLOOD; i++)); do
	"$EVIL" "$T/s.sock" flood 8 33554432 >"$T/flood.$i.out" 2>&1 &
	flood+=($!)
	BG_PIDS+=($!)
done
for ((i = 0; i < NFLOOD; i++)); do
	check "flooding client $i stuck" wait_sent "$T/flood.$i.out"
done
sleep 1
check "good client served during the flood" "$EVIL" "$T/s.sock" good
check "qemu-io served during the flood" \
	qemu-io -r -f raw "$(uri s)" -c "read -P 0x5a 512k 64k" -c "read -P 0 1M 1M"
check "server memory bounded (VmHWM)" under VmHWM "$(kb $pid VmHWM)" $HWM_MAX_KB
kill "${flood[@]}" 2>/dev/null
wait "${flood[@]}" 2>/dev/null
sleep 1
check "qemu-io served after the flood" qemu-io -r -f raw "$(uri s)" -c "read -P 0x5a 512k 64k"
check "buffer pool shrank after the burst (VmRSS)" under VmRSS "$(kb $pid VmRSS)" $RSS_IDLE_MAX_KB
check "SIGTERM exit 0" stop_server "$pid"

# option replies pile up while the client does not read them
start_server o --image "$T/img.raw" || fail "start o"
pid=$SERVER_PID
idle_hwm=$(kb $pid VmHWM)
"$EVIL" "$T/o.sock" optflood 2000000 >"$T/optflood.out" 2>&1 &
optc=$!
BG_PIDS+=($optc)
check "option flooder stuck" wait_sent "$T/optflood.out"
check "good client served during the option flood" "$EVIL" "$T/o.sock" good
check "server memory bounded under the option flood (VmHWM growth)" \
	under "VmHWM growth over idle ${idle_hwm} kB" \
	"$(($(kb $pid VmHWM) - idle_hwm))" $OPT_HWM_GROWTH_MAX_KB
kill $optc; wait $optc 2>/dev/null
check "SIGTERM exit 0 (option flood)" stop_server "$pid"
finish
