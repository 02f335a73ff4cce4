#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-only
# Changed block tracking in ngdp-server (issue 14), for qcow2, VHD and raw:
# - the volume record's "cbt_bitmap" names the epoch bitmap the server
#   tracks guest WRITE, WRITE_ZEROES and TRIM into (64 KiB blocks), stored
#   flagged in use while serving and without at a clean stop or a suspend;
# - a server killed (-9) leaves it in use; the next server reports it
#   inconsistent, never tracks into it nor clears the flag;
# - suspend + resume re-read the record: a new epoch on the same image, CBT
#   disabled, a new leaf (qcow2) with a new epoch;
# - no cbt_bitmap: no bitmap at all;
# - a live coalesce moves the parent's epoch bitmaps into the top and its
#   copying sets no bit (qcow2).
# Judged by ngdp-imgio bitmap-* on the images, qemu-img info for qcow2, and
# the control socket's status ("cbt").
. "$(dirname "$0")/lib.sh"

CTL="$NGDP_HELPERS/ngdp-ctl"
IMGIO=${NGDP_IMGIO:-$(dirname "$NGDP_SERVER")/ngdp-imgio}
[ -x "$IMGIO" ] || skip_test "no ngdp-imgio (NGDP_IMGIO)"
for t in qemu-img qemu-io python3; do
	command -v $t >/dev/null || skip_test "$t not installed"
done
SR=$T/sr
KEY=0b7e1b52-58a4-4b8e-9d0e-0f7c1c9b1a01
REC=$SR/meta/v-$KEY.json
G=65536 M=$((1 << 20))
E1=xsng-cbt-00000000000000a1 E2=xsng-cbt-00000000000000a2
E3=xsng-cbt-00000000000000a3 E4=xsng-cbt-00000000000000a4
E5=xsng-cbt-00000000000000a5
mkdir -p "$SR/.sr/active" "$SR/meta" "$SR/images"
: >"$SR/.sr/lock"

# record IMAGE-ID FORMAT [CBT]: atomic, as the SR library writes it
record() {
	local cbt=
	[ -n "${3:-}" ] && cbt=",\"cbt_bitmap\":\"$3\""
	printf '{"name":"disk","image":"%s","image-format":"%s","read_write":true%s}\n' \
		"$1" "$2" "$cbt" >"$REC.tmp" && mv "$REC.tmp" "$REC"
}
get() { "$CTL" "$T/$1.ctl" get "$2"; }
# cbt_is NAME BITMAP TRACKING CONSISTENT: the status says so
cbt_is() {
	local got
	got="$(get $1 cbt.bitmap) $(get $1 cbt.tracking) $(get $1 cbt.consistent)"
	[ "$got" = "$2 $3 $4" ] || { echo "status cbt: $got, wanted $2 $3 $4"; return 1; }
}
# dirty_is FMT IMG NAME RUNS...: bitmap-dirty prints exactly the runs
# "OFF:LEN" (bytes) given, and the bitmap is not in use
dirty_is() {
	local fmt=$1 img=$2 name=$3 got want
	shift 3
	got=$("$IMGIO" --readonly --format $fmt "$img" bitmap-dirty $name | tr ' \n' ': ') ||
		return 1
	want=$(printf '%s ' "$@")
	[ "$got" = "$want" ] || { echo "runs: '$got', wanted '$want'"; return 1; }
	in_use_is $fmt "$img" $name false
}
in_use_is() {
	"$IMGIO" --readonly --format $1 "$2" bitmap-get $3 | grep -qx "in-use: $4" ||
		{ "$IMGIO" --readonly --format $1 "$2" bitmap-get $3 | head -3; return 1; }
}
names_are() {
	local got
	got=$("$IMGIO" --readonly --format $1 "$2" bitmap-list | sort | tr '\n' ' ') || return 1
	[ "$got" = "$3" ] || { echo "bitmaps: '$got', wanted '$3'"; return 1; }
}
# qemu_flags IMG NAME FLAGS: qemu-img info lists NAME with exactly FLAGS
qemu_flags() {
	qemu-img info --output=json "$1" | python3 -c '
import json, sys
name, flags = sys.argv[1], sys.argv[2]
bms = json.load(sys.stdin).get("format-specific", {}).get("data", {}).get("bitmaps", [])
m = [b for b in bms if b["name"] == name]
print(m)
sys.exit(0 if len(m) == 1 and m[0]["granularity"] == 65536 and
         sorted(m[0]["flags"]) == sorted(filter(None, flags.split(","))) else 1)' "$2" "$3"
}
qio() { qemu-io -f raw "$(uri $1)" "${@:2}" >/dev/null; }
start() { # start NAME IMAGE-PATH [OPTIONS...]
	start_server $1 --image "$2" --volume-record "$REC" --control "$T/$1.ctl" \
		--confine "$SR/images" --flush-interval 0 "${@:3}"
}
ctl() { "$CTL" "$T/$1.ctl" "$2" >/dev/null; }

cbt_case() {
	local fmt=$1 ext=$2 rfmt=$3 id img
	id=5c1d4a9e-1b2c-4d3e-8f4a-$(printf '%012d' $4)
	img=$SR/images/$id.$ext
	case $fmt in
	raw) truncate -s $((64 * M)) "$img" ;;
	vpc) qemu-img create -q -f vpc -o subformat=dynamic,force_size=on "$img" $((64 * M)) ;;
	qcow2) qemu-img create -q -f qcow2 "$img" $((64 * M)) ;;
	esac

	# 1. tracked writes, zeroes and trims; a clean stop seals the epoch
	record $id $rfmt $E1
	start $fmt "$img" || { fail "$fmt: start"; return; }
	check "$fmt: status: tracking $E1" cbt_is $fmt $E1 true true
	check "$fmt: stored in use while serving" in_use_is $fmt "$img" $E1 true
	check "$fmt: guest writes, write-zeroes, trims" qio $fmt \
		-c "write -P 1 0 4k" -c "write -P 2 $((M + 1)) 100k" \
		-c "write -z $((10 * M)) 64k" -c "write -z -u $((12 * M + 512)) 512" \
		-c "discard $((20 * M)) 128k"
	check "$fmt: the trims and zeroes reached the server" \
		eval '[ "$(get '$fmt' trims)" -gt 0 ] && [ "$(get '$fmt' write_zeroes)" -gt 1 ]'
	check "$fmt: SIGTERM exit 0" stop_server "$SERVER_PID"
	check "$fmt: exactly the blocks written, not in use" dirty_is $fmt "$img" $E1 \
		0:$G $M:$((2 * G)) $((10 * M)):$G $((12 * M)):$G $((20 * M)):$((2 * G))
	[ $fmt = qcow2 ] && check "$fmt: qemu-img info lists $E1, not in use" \
		qemu_flags "$img" $E1 auto

	# 2. more writes, then kill -9: left in use
	start $fmt "$img" || { fail "$fmt: restart"; return; }
	check "$fmt: restart: tracking $E1 again" cbt_is $fmt $E1 true true
	check "$fmt: a write" qio $fmt -c "write -P 3 $((30 * M)) 4k"
	kill -9 "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null
	check "$fmt: killed: $E1 in use" in_use_is $fmt "$img" $E1 true

	# 3. the next server: inconsistent, never tracked into, stays in use
	start $fmt "$img" || { fail "$fmt: start after the kill"; return; }
	check "$fmt: after the kill: consistent false, not tracking" \
		cbt_is $fmt $E1 false false
	check "$fmt: a write" qio $fmt -c "write -P 4 $((40 * M)) 4k"
	check "$fmt: SIGTERM exit 0" stop_server "$SERVER_PID"
	check "$fmt: $E1 still in use after a clean stop" in_use_is $fmt "$img" $E1 true
	[ $fmt = qcow2 ] && check "$fmt: qemu-img info: $E1 in use" \
		qemu_flags "$img" $E1 auto,in-use

	# 4. a new epoch; suspend seals it; resume on the same image re-reads
	# the record: another epoch, then CBT disabled
	record $id $rfmt $E2
	start $fmt "$img" || { fail "$fmt: start $E2"; return; }
	check "$fmt: tracking $E2" cbt_is $fmt $E2 true true
	check "$fmt: a write into $E2" qio $fmt -c "write -P 5 $((2 * M)) 4k"
	check "$fmt: suspend" ctl $fmt '{"op":"suspend","timeout_ms":60000}'
	check "$fmt: suspended: $E2 sealed" dirty_is $fmt "$img" $E2 $((2 * M)):$G
	check "$fmt: suspended: not tracking" cbt_is $fmt $E2 false true
	record $id $rfmt $E3
	check "$fmt: resume on the same image" ctl $fmt "{\"op\":\"resume\",\"image\":\"$img\"}"
	check "$fmt: tracking $E3" cbt_is $fmt $E3 true true
	check "$fmt: a write into $E3" qio $fmt -c "write -P 6 $((3 * M)) 4k"
	check "$fmt: suspend" ctl $fmt '{"op":"suspend","timeout_ms":60000}'
	record $id $rfmt
	check "$fmt: resume without image, CBT disabled" ctl $fmt '{"op":"resume"}'
	check "$fmt: no bitmap tracked" cbt_is $fmt null false true
	check "$fmt: an untracked write" qio $fmt -c "write -P 7 $((4 * M)) 4k"
	check "$fmt: SIGTERM exit 0" stop_server "$SERVER_PID"
	check "$fmt: $E2 unchanged" dirty_is $fmt "$img" $E2 $((2 * M)):$G
	check "$fmt: $E3 has its write only" dirty_is $fmt "$img" $E3 $((3 * M)):$G
	check "$fmt: no other bitmap" names_are $fmt "$img" "$E1 $E2 $E3 "

	# 5. no cbt_bitmap in the record: no bitmap created
	local id0=${id%????}0000 img0
	img0=$SR/images/$id0.$ext
	cp --sparse=always "$img" "$img0"
	"$IMGIO" --format $fmt "$img0" bitmap-remove $E1 >/dev/null 2>&1
	"$IMGIO" --format $fmt "$img0" bitmap-remove $E2 >/dev/null 2>&1
	"$IMGIO" --format $fmt "$img0" bitmap-remove $E3 >/dev/null 2>&1
	record $id0 $rfmt
	start $fmt "$img0" || { fail "$fmt: start without CBT"; return; }
	check "$fmt: no cbt_bitmap: status" cbt_is $fmt null false true
	check "$fmt: no cbt_bitmap: a write" qio $fmt -c "write -P 8 0 4k"
	check "$fmt: SIGTERM exit 0" stop_server "$SERVER_PID"
	check "$fmt: no cbt_bitmap: no bitmap" names_are $fmt "$img0" ""
	rm -f "$img0"
}

cbt_case qcow2 qcow2 qcow2 1
cbt_case vpc vhd vhd 2
cbt_case raw raw raw 3

# resize_case FMT EXT N: the volume grows (offline, as Volume.resize
# refuses an active volume) and the bigger image is served with the same
# epoch: its bitmap grows, bits past the old end included; then a resume
# on a bigger new leaf (qcow2)
resize_case() {
	local fmt=$1 id img
	id=5c1d4a9e-1b2c-4d3e-8f4a-$(printf '%012d' $3)
	img=$SR/images/$id.$2
	case $fmt in
	raw) truncate -s $((64 * M)) "$img" ;;
	qcow2) qemu-img create -q -f qcow2 "$img" $((64 * M)) ;;
	esac
	record $id $2 $E1
	start z$fmt "$img" || { fail "resize $fmt: start"; return; }
	check "resize $fmt: a write" qio z$fmt -c "write -P 1 $((63 * M)) 4k"
	check "resize $fmt: SIGTERM exit 0" stop_server "$SERVER_PID"
	case $fmt in
	raw) check "resize $fmt: grow to 128 MiB" truncate -s $((128 * M)) "$img" ;;
	qcow2) check "resize $fmt: grow to 128 MiB" qemu-img resize -q "$img" $((128 * M)) ;;
	esac
	start z$fmt "$img" || { fail "resize $fmt: restart"; return; }
	check "resize $fmt: serving 128 MiB, tracking" \
		eval '[ "$(get z'$fmt' size)" = $((128 * M)) ] && cbt_is z'$fmt' $E1 true true'
	check "resize $fmt: a write past the old end" qio z$fmt -c "write -P 2 $((127 * M)) 4k"
	[ $fmt = qcow2 ] && {
		local id2=${id%?}9
		check "resize $fmt: suspend" ctl z$fmt '{"op":"suspend","timeout_ms":60000}'
		qemu-img create -q -f qcow2 -b $id.qcow2 -F qcow2 "$SR/images/$id2.qcow2" $((192 * M))
		record $id2 qcow2 $E2
		check "resize $fmt: resume on a bigger leaf" \
			ctl z$fmt "{\"op\":\"resume\",\"image\":\"$SR/images/$id2.qcow2\"}"
		check "resize $fmt: a write past the leaf's parent's end" \
			qio z$fmt -c "write -P 3 $((191 * M)) 4k"
	}
	check "resize $fmt: SIGTERM exit 0" stop_server "$SERVER_PID"
	check "resize $fmt: both blocks" dirty_is $fmt "$img" $E1 $((63 * M)):$G $((127 * M)):$G
	[ $fmt = qcow2 ] && check "resize $fmt: the new leaf's epoch" \
		dirty_is $fmt "$SR/images/$id2.qcow2" $E2 $((191 * M)):$G
}
resize_case qcow2 qcow2 11
resize_case raw raw 12

# 6. qcow2: a snapshot (new leaf, new epoch), then a live coalesce of the
# old leaf into the new one keeps the old leaf's epochs
ID1=5c1d4a9e-1b2c-4d3e-8f4a-000000000001
ID9=5c1d4a9e-1b2c-4d3e-8f4a-000000000009
P=$SR/images/$ID1.qcow2 L=$SR/images/$ID9.qcow2
record $ID1 qcow2 $E4
start s "$P" || fail "start s"
check "snapshot: tracking $E4 in the parent" cbt_is s $E4 true true
check "snapshot: a write into $E4" qio s -c "write -P 9 $((5 * M)) 4k"
check "snapshot: suspend" ctl s '{"op":"suspend","timeout_ms":60000}'
qemu-img create -q -f qcow2 -b $ID1.qcow2 -F qcow2 "$L"
record $ID9 qcow2 $E5
check "snapshot: resume on the new leaf" ctl s "{\"op\":\"resume\",\"image\":\"$L\"}"
check "snapshot: tracking $E5" cbt_is s $E5 true true
check "snapshot: a write into $E5" qio s -c "write -P 10 $((6 * M)) 4k"
check "snapshot: $E4 sealed in the parent" dirty_is qcow2 "$P" $E4 $((5 * M)):$G
check "coalesce the parent into the leaf" ctl s "{\"op\":\"coalesce\",\"parent\":\"$P\"}"
co_done() {
	local i s
	for ((i = 0; i < 600; i++)); do
		s=$(get $1 coalesce.state)
		[ "$s" = done ] && return 0
		[ "$s" = failed ] && { get $1 coalesce.error; return 1; }
		sleep 0.05
	done
	return 1
}
check "coalesce done" co_done s
check "coalesce: still tracking $E5" cbt_is s $E5 true true
check "coalesce: a write after the switch" qio s -c "write -P 11 $((7 * M)) 4k"
check "coalesce: SIGTERM exit 0" stop_server "$SERVER_PID"
check "coalesce: the leaf has no backing file" \
	eval '! qemu-img info --output=json "$L" | grep -q backing-filename'
check "coalesce: the leaf holds every epoch" names_are qcow2 "$L" "$E1 $E2 $E3 $E4 $E5 "
check "coalesce: $E1 (in use in the parent) still in use" in_use_is qcow2 "$L" $E1 true
check "coalesce: $E3 adopted with its bits" dirty_is qcow2 "$L" $E3 $((3 * M)):$G
check "coalesce: $E4 adopted with its bits" dirty_is qcow2 "$L" $E4 $((5 * M)):$G
check "coalesce: $E5 has the guest's writes only, none of the copy" \
	dirty_is qcow2 "$L" $E5 $((6 * M)):$G $((7 * M)):$G
check "coalesce: qemu-img info: $E4 not in use" qemu_flags "$L" $E4 auto
check "coalesce: qemu-img check" qemu-img check -q "$L"

# 6b. VHD: the same through a differencing child (vhd-tool creates it;
# qemu cannot)
IDV=5c1d4a9e-1b2c-4d3e-8f4a-000000000002
IDC=5c1d4a9e-1b2c-4d3e-8f4a-00000000000c
if [ ! -x "${NGDP_VHD_TOOL:-}" ]; then
	skip "VHD coalesce: no vhd-tool (NGDP_VHD_TOOL)"
elif (cd "$SR/images" && "$NGDP_VHD_TOOL" create-diff $IDC.vhd $IDV.vhd >/dev/null); then
	record $IDC vhd $E4
	start v "$SR/images/$IDC.vhd" || fail "start v"
	check "vhd child: tracking $E4" cbt_is v $E4 true true
	check "vhd child: a write" qio v -c "write -P 9 $((5 * M)) 4k"
	check "vhd: coalesce the parent into the child" \
		ctl v "{\"op\":\"coalesce\",\"parent\":\"$SR/images/$IDV.vhd\"}"
	check "vhd: coalesce done" co_done v
	check "vhd: SIGTERM exit 0" stop_server "$SERVER_PID"
	check "vhd: the child holds every epoch" names_are vpc "$SR/images/$IDC.vhd" "$E1 $E2 $E3 $E4 "
	check "vhd: $E1 still in use" in_use_is vpc "$SR/images/$IDC.vhd" $E1 true
	check "vhd: $E3 adopted with its bits" dirty_is vpc "$SR/images/$IDC.vhd" $E3 $((3 * M)):$G
	check "vhd: $E4: the guest's write only" dirty_is vpc "$SR/images/$IDC.vhd" $E4 $((5 * M)):$G
else
	fail "vhd-tool create-diff"
fi

# 6c. a suspend not resumed in time: the server resumes by itself on what
# the record names then (the new leaf), tracking the record's new epoch
IDT=5c1d4a9e-1b2c-4d3e-8f4a-000000000021
IDU=5c1d4a9e-1b2c-4d3e-8f4a-000000000022
qemu-img create -q -f qcow2 "$SR/images/$IDT.qcow2" $((64 * M))
record $IDT qcow2 $E1
start t "$SR/images/$IDT.qcow2" || fail "start t"
check "timeout: a write into $E1" qio t -c "write -P 1 0 4k"
check "timeout: suspend (300 ms)" ctl t '{"op":"suspend","timeout_ms":300}'
qemu-img create -q -f qcow2 -b $IDT.qcow2 -F qcow2 "$SR/images/$IDU.qcow2"
record $IDU qcow2 $E2
wait_tracking() {
	local i
	for ((i = 0; i < 100; i++)); do
		cbt_is t $E2 true true >/dev/null && return 0
		sleep 0.1
	done
	cbt_is t $E2 true true
}
check "timeout: resumed by itself, tracking $E2" wait_tracking
check "timeout: on the new leaf" eval '[ "$(get t image)" = "$SR/images/$IDU.qcow2" ]'
check "timeout: a write into $E2" qio t -c "write -P 2 $M 4k"
check "timeout: SIGTERM exit 0" stop_server "$SERVER_PID"
check "timeout: $E1 sealed in the old leaf" dirty_is qcow2 "$SR/images/$IDT.qcow2" $E1 0:$G
check "timeout: $E2 in the new leaf" dirty_is qcow2 "$SR/images/$IDU.qcow2" $E2 $M:$G

# 6d. the same, then the record changes CBT (a new epoch, then none) and
# the late resume on the same image follows it
resumed_t() {
	local i
	for ((i = 0; i < 100; i++)); do
		[ "$(get t suspended)" = false ] && return 0
		sleep 0.1
	done
	return 1
}
start t "$SR/images/$IDU.qcow2" || fail "start t again"
check "late resume: suspend (300 ms)" ctl t '{"op":"suspend","timeout_ms":300}'
check "late resume: resumed by itself" resumed_t
check "late resume: tracking $E2" cbt_is t $E2 true true
record $IDU qcow2 $E3
check "late resume: resume on the same image" ctl t "{\"op\":\"resume\",\"image\":\"$SR/images/$IDU.qcow2\"}"
check "late resume: tracking $E3" cbt_is t $E3 true true
check "late resume: a write into $E3" qio t -c "write -P 3 $((2 * M)) 4k"
check "late resume: $E2 sealed" dirty_is qcow2 "$SR/images/$IDU.qcow2" $E2 $M:$G
record $IDU qcow2
check "late resume: resume on the same image, CBT disabled" ctl t "{\"op\":\"resume\",\"image\":\"$SR/images/$IDU.qcow2\"}"
check "late resume: not tracking" cbt_is t null false true
check "late resume: an untracked write" qio t -c "write -P 4 $((3 * M)) 4k"
check "late resume: SIGTERM exit 0" stop_server "$SERVER_PID"
check "late resume: $E3 has its write only" dirty_is qcow2 "$SR/images/$IDU.qcow2" $E3 $((2 * M)):$G

# 7. never tracked: a top the record does not name, a reset-on-boot
# overlay, a read-only activation
NP=$SR/images/.np-$KEY.qcow2
record $ID1 qcow2 $E5
qemu-img create -q -f qcow2 -b $ID9.qcow2 -F qcow2 "$NP"
start o "$NP" || fail "start o"
check "overlay: not tracked" cbt_is o null false true
check "overlay: a write" qio o -c "write -P 12 0 4k"
check "overlay: SIGTERM exit 0" stop_server "$SERVER_PID"
check "overlay: no bitmap in the overlay" names_are qcow2 "$NP" ""
start w "$L" || fail "start w"
check "not the record's image: not tracked" cbt_is w null false true
check "not the record's image: a write" qio w -c "write -P 13 $((8 * M)) 4k"
check "not the record's image: SIGTERM exit 0" stop_server "$SERVER_PID"
check "not the record's image: $E5 untouched" dirty_is qcow2 "$L" $E5 $((6 * M)):$G $((7 * M)):$G
record $ID9 qcow2 $E5
start r "$L" --readonly || fail "start r"
check "read-only: not tracked" cbt_is r null false true
check "read-only: SIGTERM exit 0" stop_server "$SERVER_PID"
check "read-only: $E5 untouched, not in use" dirty_is qcow2 "$L" $E5 $((6 * M)):$G $((7 * M)):$G
finish
