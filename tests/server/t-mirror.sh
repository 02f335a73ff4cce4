#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-only
# The mirror job (issue 15, live storage migration): the source server
# copies a qcow2 chain (data in both images, zeros elsewhere) to a remote
# NBD export reached through a proxy (nbd-proxy, as xapi's NBD proxy)
# while a guest writes at random offsets; progress never goes down, the
# job reaches synced, a clean stop flushes the remote ("stopped") and the
# remote is identical to the source.  A proxy killed mid-copy fails the
# job (the guest goes on locally), mirror_cancel, and bad inputs refused.
# Uses ngdp-server-fault (mirror-slow: every chunk takes 20 ms more, so
# the guest surely writes during the copy).
. "$(dirname "$0")/lib.sh"

CTL="$NGDP_HELPERS/ngdp-ctl"
PROXY="$NGDP_HELPERS/nbd-proxy"
FAULT="$NGDP_HELPERS/ngdp-server-fault"
[ -x "$FAULT" ] || skip_test "no ngdp-server-fault in $NGDP_HELPERS"
[ -x "$PROXY" ] || skip_test "no nbd-proxy in $NGDP_HELPERS"
command -v jq >/dev/null || skip_test "no jq"
SIZE=$((256 * 1024 * 1024))
MiB=1048576

mi_get() { "$CTL" "$T/$1.ctl" get "mirror.$2" 2>/dev/null; }
state_of() { jq -r .state "$1" 2>/dev/null; }

# mirror NAME ID REMOTE STATEFILE: the control op
mirror() {
	"$CTL" "$T/$1.ctl" "$(jq -cn --arg id "$2" --arg r "$3" --arg s "$4" \
		'{op: "mirror", id: $id, remote: $r, state_file: $s}')"
}
cancel() {
	"$CTL" "$T/$1.ctl" "$(jq -cn --arg id "$2" '{op: "mirror_cancel", id: $id}')"
}

# wait_state NAME STATE SECS: poll until the job is in STATE; copied must
# never go down meanwhile
wait_state() {
	local end=$((SECONDS + $3)) s c last=0
	while [ $SECONDS -lt "$end" ]; do
		s=$(mi_get "$1" state)
		c=$(mi_get "$1" copied)
		if [ -n "$c" ] && [ "$c" -lt "$last" ]; then
			echo "copied went down: $last -> $c"
			return 1
		fi
		[ -n "$c" ] && last=$c
		[ "$s" = "$2" ] && return 0
		if [ "$s" = failed ] && [ "$2" != failed ]; then
			echo "mirror failed: $(mi_get "$1" error)"
			return 1
		fi
		sleep 0.1
	done
	echo "mirror still '$s' after $3 s (copied $last)"
	return 1
}

# The source chain: base with data at a few places, top over it with its
# own data and a zeroed range; the rest reads as zeros.
make_chain() {
	qemu-img create -q -f qcow2 "$T/base.qcow2" $SIZE &&
	qemu-io -f qcow2 -c "write -P 0x11 0 4M" -c "write -P 0x12 100M 3M" \
		-c "write -P 0x13 $((200 * MiB + 512)) 70000" "$T/base.qcow2" \
		>/dev/null &&
	qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 \
		"$T/top.qcow2" &&
	qemu-io -f qcow2 -c "write -P 0x21 2M 4M" -c "write -z 101M 1M" \
		-c "write -P 0x22 250M 6M" "$T/top.qcow2" >/dev/null
}

start_source() {
	NGDP_SERVER=$FAULT NGDP_FAULT=mirror-slow start_server src \
		--image "$T/top.qcow2" --control "$T/src.ctl" && SRC_PID=$SERVER_PID
}

# start_dest NAME SIZE [OPTIONS]: an empty qcow2 served by another
# ngdp-server
start_dest() {
	qemu-img create -q -f qcow2 "$T/$1.qcow2" "$2" &&
	start_server "$1" --image "$T/$1.qcow2" "${@:3}" && DST_PID=$SERVER_PID
}

# start_proxy NAME TARGET: $T/NAME.sock forwards to TARGET's socket
start_proxy() {
	"$PROXY" "$T/$1.sock" "$T/$2.sock" &
	PROXY_PID=$!
	BG_PIDS+=("$PROXY_PID")
	local i
	for ((i = 0; i < 100; i++)); do
		[ -S "$T/$1.sock" ] && return 0
		sleep 0.05
	done
	return 1
}

# The guest: rounds of random writes through the source until told to stop
writer() {
	local i=0
	while [ ! -e "$T/writer.stop" ]; do
		gen_workload $((1000 + i)) $SIZE 30 >"$T/w.$i"
		run_qemu_io raw "$(uri src)" "$T/w.$i" || touch "$T/writer.failed"
		i=$((i + 1))
	done
	echo $i >"$T/writer.rounds"
}

# serving: a read through the source works
serving() { qemu-io -f raw -c "read 0 4k" "$(uri src)" >/dev/null; }

make_chain || fail "make the source chain"

# ---- 1. mirror under a writer (and a suspend/resume): synced, stopped,
# identical
sync_case() {
	start_source || return 1
	start_dest dst $SIZE || return 1
	start_proxy px dst || return 1
	rm -f "$T/writer.stop" "$T/writer.failed"
	writer &
	WRITER=$!
	BG_PIDS+=("$WRITER")
	sleep 1
	check "mirror accepted" mirror src a1 "nbd+unix:///?socket=$T/px.sock" \
		"$T/a1.state"
	check "mirror of the same id again: ok" mirror src a1 \
		"nbd+unix:///?socket=$T/px.sock" "$T/a1.state"
	# a snapshot's suspend and resume in the middle of the copy: the
	# copy pauses, the writes wait, both go on after the resume
	sleep 1
	check "suspend during the copy" "$CTL" "$T/src.ctl" '{"op":"suspend","timeout_ms":30000}'
	local c0=$(mi_get src copied)
	sleep 0.5
	check "copy paused while suspended (at most the chunks in flight: $c0 -> $(mi_get src copied))" \
		test $(($(mi_get src copied) - c0)) -le $((4 * MiB))
	check "resume" "$CTL" "$T/src.ctl" '{"op":"resume"}'
	check "copy progresses (never down) and reaches synced" \
		wait_state src synced 120
	sleep 1	# writes while synced are mirrored as well
	touch "$T/writer.stop"
	wait "$WRITER"
	check "the guest's writes all succeeded" test ! -e "$T/writer.failed"
	check "the guest wrote during the copy ($(cat "$T/writer.rounds") rounds)" \
		test "$(cat "$T/writer.rounds")" -ge 2
	check "source stops cleanly" stop_server "$SRC_PID"
	check "state file says stopped" test "$(state_of "$T/a1.state")" = stopped
	kill "$PROXY_PID"
	check "destination stops cleanly" stop_server "$DST_PID"
	check "destination identical to the source" \
		qemu-img compare -q -f qcow2 -F qcow2 "$T/top.qcow2" "$T/dst.qcow2"
}

# ---- 2. the proxy dies mid-copy: failed, the guest goes on locally
kill_case() {
	start_source || return 1
	# this remote has a named export, as xapi's URIs name one
	start_dest dst2 $SIZE --export-name vdi-2 || return 1
	dst2_pid=$DST_PID
	start_proxy px2 dst2 || return 1
	check "mirror accepted" mirror src b2 "nbd:unix:$T/px2.sock:exportname=vdi-2" "$T/b2.state"
	local i
	for ((i = 0; i < 100; i++)); do
		[ "$(mi_get src copied)" -gt 0 ] 2>/dev/null && break
		sleep 0.05
	done
	kill -9 "$PROXY_PID"
	check "proxy killed mid-copy: failed within 60 s" wait_state src failed 60
	check "failed job has an error text ($(mi_get src error))" \
		test -n "$(mi_get src error)"
	check "it failed mid-copy ($(mi_get src copied) of $SIZE)" \
		test "$(mi_get src copied)" -lt $SIZE
	check "state file says failed" test "$(state_of "$T/b2.state")" = failed
	check "write after the failure" qemu-io -f raw \
		-c "write -P 0x5a 7M 64k" "$(uri src)"
	check "read back after the failure" qemu-io -f raw \
		-c "read -P 0x5a 7M 64k" "$(uri src)"

	# ---- 3. mirror_cancel (a new job: the last one is over)
	start_proxy px3 dst2 || return 1
	check "new mirror accepted after a failed one" mirror src c3 \
		"nbd+unix:///vdi-2?socket=$T/px3.sock" "$T/c3.state"
	check "mirror_cancel" cancel src c3
	check "state cancelled" test "$(mi_get src state)" = cancelled
	check "state file says cancelled" test "$(state_of "$T/c3.state")" = cancelled
	check "mirror_cancel again: ok" cancel src c3
	check "mirror_cancel of an unknown id refused" not cancel src ffff
	check "write after cancel" qemu-io -f raw -c "write -P 0x5b 9M 64k" \
		-c "read -P 0x5b 9M 64k" "$(uri src)"
	kill "$PROXY_PID"

	# ---- 4. a remote that stops answering (the proxy frozen): failed
	# after the 30 s reply timeout, the guest write waiting on it released
	start_proxy px4 dst2 || return 1
	check "mirror accepted" mirror src a4 "nbd:unix:$T/px4.sock:exportname=vdi-2" "$T/a4.state"
	kill -STOP "$PROXY_PID"
	timeout 90 qemu-io -f raw -c "write -P 0x5c 3M 64k" "$(uri src)" \
		>"$T/stall.out" 2>&1 &
	local stalled=$!
	check "a silent remote: failed within 60 s" wait_state src failed 60
	check "its error says so ($(mi_get src error))" \
		test -n "$(mi_get src error)"
	check "the guest write waiting on it completed" wait "$stalled"
	check "and reads back" qemu-io -f raw -c "read -P 0x5c 3M 64k" "$(uri src)"
	kill -CONT "$PROXY_PID"
	kill "$PROXY_PID"

	# ---- 5. bad inputs, each refused, the server serving on
	start_dest small $((SIZE / 2)) || return 1
	small_pid=$DST_PID
	check "bad URI refused" not mirror src d4 "http://x/y" "$T/d4.state"
	check "bad id refused" not mirror src "X/../y" "nbd:unix:$T/dst2.sock" "$T/d4.state"
	check "relative state file refused" not mirror src d4 "nbd:unix:$T/dst2.sock" d4.state
	check "missing socket refused (ENOENT)" refused 2 src d4 \
		"nbd+unix:///?socket=$T/nowhere.sock" "$T/d4.state"
	check "smaller remote refused (ENOSPC)" refused 28 src d4 \
		"nbd+unix:///?socket=$T/small.sock" "$T/d4.state"
	check "server serving after refusals" serving
	check "an unknown export refused (ENOENT)" refused 2 src d4 \
		"nbd+unix:///vdi-3?socket=$T/dst2.sock" "$T/d4.state"
	check "a job for the next test" mirror src e5 \
		"nbd+unix:///vdi%2D2?socket=$T/dst2.sock" "$T/e5.state"
	check "a second id while one runs refused (EBUSY)" refused 16 src e6 \
		"nbd+unix:///?socket=$T/dst2.sock" "$T/e6.state"
	check "the first job still runs" test "$(mi_get src id)" = e5
	check "cancel it" cancel src e5
	check "a percent-encoded socket path is decoded" mirror src e7 \
		"nbd+unix:///vdi-2?socket=${T//\//%2F}%2Fdst2.sock" "$T/e7.state"
	check "cancel that one" cancel src e7
	check "a bad percent escape refused" not mirror src e8 \
		"nbd+unix:///?socket=$T/dst2.sock%G1" "$T/e8.state"
	check "server serving" serving
	# a read-only activation, with a remote that would do
	qemu-img create -q -f qcow2 "$T/ro.qcow2" $SIZE &&
	start_server ro --image "$T/ro.qcow2" --readonly --control "$T/ro.ctl" ||
		return 1
	local ro_pid=$SERVER_PID
	check "read-only server refuses (EROFS)" refused 30 ro f7 \
		"nbd+unix:///vdi-2?socket=$T/dst2.sock" "$T/f7.state"
	check "read-only stops" stop_server "$ro_pid"
	check "source stops" stop_server "$SRC_PID"
	check "the writes after the failure are in the source image" \
		qemu-io -f qcow2 -c "read -P 0x5a 7M 64k" -c "read -P 0x5b 9M 64k" \
		"$T/top.qcow2"
	check "small stops" stop_server "$small_pid"
	check "dst2 stops" stop_server "$dst2_pid"
}
not() { ! "$@"; }
# refused ERRNO NAME ID REMOTE STATEFILE: the mirror op fails with ERRNO
refused() {
	local want=$1 reply
	shift
	reply=$(mirror "$@")
	echo "$reply"
	[ "$(jq -r '.ok' <<<"$reply")" = false ] &&
	[ "$(jq -r '.errno' <<<"$reply")" = "$want" ]
}

sync_case || fail "case sync: setup"
kill_case || fail "case kill: setup"
finish
