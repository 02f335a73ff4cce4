#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-only
# Persistent dirty bitmaps (changed block tracking, issue 14) through
# ngdp-imgio's bitmap-* commands (image_bitmap_load/store/remove/list).
# raw and VHD: one sidecar file "<image>.<bitmap>.cbt" per bitmap (round
# trips, in-use flag, replace, remove, several names, read-only, corrupt or
# hostile sidecars refused).
# bitmap-adopt (image_bitmap_adopt) for raw, VHD and qcow2, sizes alike or
# not.
# qcow2: a real qcow2 persistent bitmap; qemu-img (info, check, bitmap)
# and qemu-nbd + nbdinfo (the bits qemu sees) judge it, both ways.
# BITMAP_QUICK=1 skips the per-cluster-size qcow2 cases (a quick run while
# developing; check-formats runs everything).
# A test program (tests/README.md): exit 0 pass, 1 fail, 77 skip.
set -u

B=${B:-build}
TOP=$(cd "$(dirname "$0")/../.." && pwd)
case $B in /*) BD=$B ;; *) BD=$TOP/$B ;; esac
IMGIO=${IMGIO:-$BD/ngdp-imgio}
PASS=0 FAIL=0
K=1024 M=$((1 << 20)) G=65536

ok() { PASS=$((PASS + 1)); echo "PASS: $*"; }
ko() { FAIL=$((FAIL + 1)); echo "FAIL: $*"; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else ko "$name"; fi; }
# The command must fail (exit 1: the operation failed, not a usage error).
# killed_at POINT CMD...: CMD must die by SIGKILL at fault point POINT.
killed_at() {
	local point=$1; shift
	{ (XSNG_FAULT=$point exec "$@") >/dev/null 2>&1; } 2>/dev/null
	[ $? = 137 ]
}
refused() { local name=$1; shift; "$@" >/dev/null 2>&1; [ $? = 1 ] && ok "$name" || ko "$name"; }

for t in qemu-img qemu-io qemu-nbd nbdinfo python3; do
	command -v $t >/dev/null ||
		{ echo "SKIP: $t not installed (Debian packages qemu-utils, libnbd-bin, python3)"; exit 77; }
done
[ -x "$IMGIO" ] || { echo "FAIL: missing $IMGIO (run make)"; exit 1; }

T=$(mktemp -d /var/tmp/test-bitmap.XXXXXX)
NBD_PID=
trap '[ -n "$NBD_PID" ] && kill $NBD_PID 2>/dev/null; rm -rf "$T"' EXIT
cd "$T" || exit 1

run() { "$@" >setup.out 2>&1 || { ko "setup: $*"; head -5 setup.out; return 1; }; }

# get_is FMT IMG NAME WANT: `bitmap-get` prints exactly WANT (a block
# of "key: value" lines).
get_is() {
	local got
	got=$("$IMGIO" --readonly --format "$1" "$2" bitmap-get "$3") || return 1
	[ "$got" = "$4" ] || { echo "  got:"; echo "$got" | sed 's/^/    /'; echo "  want:"; echo "$4" | sed 's/^/    /'; return 1; }
}

# ----------------------------------------------------------- sidecars

sidecar_tests() {
	local fmt=$1 img=$2 sc=$2.xsng-cbt.cbt
	local io=("$IMGIO" --format "$fmt" "$img")

	# 1000 KiB: 16 blocks of 64 KiB, the last one short (40 KiB)
	refused "$fmt: no bitmap yet: get fails" "${io[@]}" bitmap-get xsng-cbt
	check "$fmt: bitmap-set block 1, in use" "${io[@]}" bitmap-set xsng-cbt 70000 1 in-use
	check "$fmt: the sidecar is next to the image" test -f "$sc"
	check "$fmt: read back (MSB first), in use" get_is $fmt "$img" xsng-cbt \
"granularity: 65536
in-use: true
count: 1
bits: 4000"
	check "$fmt: set the last byte and a straddling range, not in use" \
		bash -c "'$IMGIO' --format $fmt '$img' bitmap-set xsng-cbt $((1000 * K - 1)) 1 &&
			 '$IMGIO' --format $fmt '$img' bitmap-set xsng-cbt $((4 * G - 1)) 2"
	check "$fmt: blocks 1, 3, 4 and 15" get_is $fmt "$img" xsng-cbt \
"granularity: 65536
in-use: false
count: 4
bits: 5801"
	check "$fmt: the runs of set bits, clipped to the disk" \
		bash -c "[ \"\$('$IMGIO' --readonly --format $fmt '$img' bitmap-dirty xsng-cbt | tr '\n' ' ')\" = \
			'65536 65536 196608 131072 983040 40960 ' ]"
	check "$fmt: listed" bash -c "[ \"\$('$IMGIO' --format $fmt '$img' bitmap-list)\" = xsng-cbt ]"
	# replace: an empty bitmap at another granularity, then one range
	check "$fmt: replace (clear at 512-byte granularity, set)" \
		bash -c "'$IMGIO' --format $fmt '$img' bitmap-clear xsng-cbt 512 &&
			 '$IMGIO' --format $fmt '$img' bitmap-set xsng-cbt 1024 1025"
	check "$fmt: the replaced bitmap" bash -c \
		"'$IMGIO' --readonly --format $fmt '$img' bitmap-get xsng-cbt | grep -qx 'bits: 38000*'"
	refused "$fmt: read-only: set refused" "$IMGIO" --readonly --format $fmt "$img" bitmap-set xsng-cbt 0 1
	refused "$fmt: read-only: remove refused" "$IMGIO" --readonly --format $fmt "$img" bitmap-remove xsng-cbt
	refused "$fmt: a name with a space refused" "${io[@]}" bitmap-set "a b" 0 1
	refused "$fmt: a name with a slash refused" "${io[@]}" bitmap-set a/b 0 1
	refused "$fmt: a name of 65 bytes refused" "${io[@]}" bitmap-set "$(printf 'x%.0s' {1..65})" 0 1
	check "$fmt: a second bitmap, another name" "${io[@]}" bitmap-set xsng-cbt-00000000000000ab 0 1
	check "$fmt: its own sidecar" test -f "$img.xsng-cbt-00000000000000ab.cbt"
	check "$fmt: both listed" bash -c "[ \"\$('$IMGIO' --format $fmt '$img' bitmap-list | sort | tr '\n' ' ')\" = \
		'xsng-cbt xsng-cbt-00000000000000ab ' ]"
	check "$fmt: the second one's bits" get_is $fmt "$img" xsng-cbt-00000000000000ab \
"granularity: 65536
in-use: false
count: 1
bits: 8000"
	check "$fmt: the first one unchanged" bash -c \
		"'$IMGIO' --readonly --format $fmt '$img' bitmap-get xsng-cbt | grep -qx 'bits: 38000*'"
	check "$fmt: remove the second" "${io[@]}" bitmap-remove xsng-cbt-00000000000000ab
	refused "$fmt: a range beyond the disk refused" "${io[@]}" bitmap-set xsng-cbt $((1000 * K)) 1
	check "$fmt: no temp files left" bash -c "! ls -A | grep -q '^\.tmp'"

	# crash before the replace: the old bitmap stays
	cp "$sc" sc.saved
	check "$fmt: killed in store" killed_at bitmap-sidecar-store \
		"${io[@]}" bitmap-set xsng-cbt 0 $((1000 * K))
	check "$fmt: killed in store: the old bitmap" cmp -s "$sc" sc.saved

	# corrupt / hostile sidecars are refused, never trusted
	cp sc.saved "$sc"
	printf '\xff' | dd of="$sc" bs=1 seek=60 conv=notrunc status=none
	refused "$fmt: a flipped data byte fails the checksum" "${io[@]}" bitmap-get xsng-cbt
	head -c 40 sc.saved >"$sc"
	refused "$fmt: a truncated sidecar" "${io[@]}" bitmap-get xsng-cbt
	cp sc.saved "$sc"
	printf 'XSNGCBU' | dd of="$sc" bs=1 conv=notrunc status=none
	refused "$fmt: bad magic" "${io[@]}" bitmap-get xsng-cbt
	python3 - "$sc" <<'PY'
import struct, sys, zlib
p = sys.argv[1]
b = bytearray(open('sc.saved', 'rb').read())
# granularity 3 (not a power of two) with a valid checksum
b[16:24] = struct.pack('<Q', 3)
b[40:44] = b'\0\0\0\0'
b[40:44] = struct.pack('<I', zlib.crc32(bytes(b[:48]) + bytes(b[48:])))
open(p, 'wb').write(b)
PY
	refused "$fmt: a bad granularity (checksum right)" "${io[@]}" bitmap-get xsng-cbt
	rm -f "$sc"
	ln -s sc.saved "$sc"
	refused "$fmt: a symlink sidecar is not followed" "${io[@]}" bitmap-get xsng-cbt
	rm -f "$sc"
	mkfifo "$sc"
	refused "$fmt: a FIFO sidecar" timeout 10 "${io[@]}" bitmap-get xsng-cbt
	rm -f "$sc"

	cp sc.saved "$sc"
	check "$fmt: remove" "${io[@]}" bitmap-remove xsng-cbt
	check "$fmt: the sidecar is gone" test ! -e "$sc"
	refused "$fmt: removed: get fails" "${io[@]}" bitmap-get xsng-cbt
	refused "$fmt: remove again fails" "${io[@]}" bitmap-remove xsng-cbt
	check "$fmt: nothing listed" bash -c "[ -z \"\$('$IMGIO' --format $fmt '$img' bitmap-list)\" ]"
}

run truncate -s $((1000 * K)) d.raw && sidecar_tests raw d.raw
run qemu-img create -q -f vpc -o subformat=dynamic,force_size=on d.vhd $((1000 * K)) &&
	sidecar_tests vpc d.vhd

# ------------------------------------------------------------- qcow2

# qemu_dirty IMG NAME: the runs of set bits of bitmap NAME as qemu sees
# them (qemu-nbd exports it, nbdinfo reads it): "OFFSET LENGTH" lines.
qemu_dirty() {
	local img=$1 name=$2 sock=$T/nbd.sock out
	rm -f "$sock" nbd.pid
	qemu-nbd --fork --pid-file="$T/nbd.pid" -r -f qcow2 -B "$name" \
		-k "$sock" "$img" 2>nbd.err || { cat nbd.err >&2; return 1; }
	NBD_PID=$(cat nbd.pid)
	nbdinfo --json --map=qemu:dirty-bitmap:"$name" "nbd+unix:///?socket=$sock" >map.json
	local st=$?
	kill "$NBD_PID" 2>/dev/null
	while kill -0 "$NBD_PID" 2>/dev/null; do sleep 0.05; done
	NBD_PID=
	[ $st = 0 ] || return 1
	python3 -c '
import json, sys
for e in json.load(open("map.json")):
    if e["type"] & 1:
        print(e["offset"], e["length"])'
}

# want_dirty SIZE GRAN OFF:LEN...: the runs those writes must set.
want_dirty() {
	python3 - "$@" <<'PY'
import sys
size, g = int(sys.argv[1]), int(sys.argv[2])
n = (size + g - 1) // g
bits = [False] * n
for r in sys.argv[3:]:
    o, l = map(int, r.split(':'))
    for b in range(o // g, (o + l - 1) // g + 1):
        bits[b] = True
i = 0
while i < n:
    if bits[i]:
        j = i
        while j < n and bits[j]:
            j += 1
        print(i * g, min(j * g, size) - i * g)
        i = j
    else:
        i += 1
PY
}

# same_runs IMG NAME WANT: ours and qemu's view of NAME both equal WANT.
same_runs() {
	local ours theirs
	ours=$("$IMGIO" --readonly --format qcow2 "$1" bitmap-dirty "$2") || return 1
	theirs=$(qemu_dirty "$1" "$2") || return 1
	[ "$ours" = "$3" ] && [ "$theirs" = "$3" ] && return 0
	echo "  ours:   $(echo $ours)"; echo "  qemu:   $(echo $theirs)"; echo "  wanted: $(echo $3)"
	return 1
}

# info_has IMG NAME GRAN FLAGS: qemu-img info lists bitmap NAME with
# granularity GRAN and exactly the flags FLAGS (comma-separated).
info_has() {
	qemu-img info --output=json "$1" | python3 -c '
import json, sys
name, gran, flags = sys.argv[1], int(sys.argv[2]), sys.argv[3]
bms = json.load(sys.stdin).get("format-specific", {}).get("data", {}).get("bitmaps", [])
m = [b for b in bms if b["name"] == name]
sys.exit(0 if len(m) == 1 and m[0]["granularity"] == gran and
         sorted(m[0]["flags"]) == sorted(filter(None, flags.split(","))) else 1)' "$2" "$3" "$4"
}

names_are() {
	local got
	got=$(qemu-img info --output=json "$1" | python3 -c '
import json, sys
bms = json.load(sys.stdin).get("format-specific", {}).get("data", {}).get("bitmaps", [])
print(" ".join(sorted(b["name"] for b in bms)))') || return 1
	[ "$got" = "$2" ] || { echo "  qemu lists: '$got'"; return 1; }
}

qcheck() { qemu-img check -q "$1" >/dev/null 2>&1; }

# set_ranges IMG OFF:LEN...: bitmap-set xsng-cbt for each range
set_ranges() {
	local img=$1 r; shift
	for r in "$@"; do
		"$IMGIO" --format qcow2 "$img" bitmap-set xsng-cbt ${r%:*} ${r#*:} || return 1
	done
}

qcow2_case() {
	local tag=$1 opts=$2 size=$3 img=$1.qcow2
	local r1="0:1 $((3 * G - 5)):10 $((size - 1)):1 $((40 * G)):$((130 * G + 7))"
	local want

	run qemu-img create -q -f qcow2 $opts "$img" $size || return
	want=$(want_dirty $size $G $r1)
	check "$tag: we set ranges" set_ranges "$img" $r1
	check "$tag: qemu-img check clean" qcheck "$img"
	check "$tag: qemu-img info lists xsng-cbt, 64 KiB, auto" info_has "$img" xsng-cbt $G auto
	check "$tag: qemu and we see the same bits" same_runs "$img" xsng-cbt "$want"

	# qemu writes, we read: a 4 KiB bitmap qemu-io's writes fill
	run qemu-img bitmap --add -g 4096 "$img" qb || return
	run qemu-io -f qcow2 -c "write 4095 2" -c "write $((size - 4096)) 4096" \
		-c "write $((33 * G)) $((3 * G))" "$img" || return
	check "$tag: qemu-img check clean after qemu's writes" qcheck "$img"
	check "$tag: qemu's bitmap, read by us" same_runs "$img" qb \
		"$(want_dirty $size 4096 4095:2 $((size - 4096)):4096 $((33 * G)):$((3 * G)))"
	# qemu's writes went into xsng-cbt too (auto bitmap)
	want=$(want_dirty $size $G $r1 4095:2 $((size - 4096)):4096 $((33 * G)):$((3 * G)))
	check "$tag: qemu tracked its writes in xsng-cbt" same_runs "$img" xsng-cbt "$want"

	# replace: another granularity, other bits, in use
	check "$tag: replace (512-byte granularity, in use)" bash -c \
		"'$IMGIO' --format qcow2 '$img' bitmap-clear xsng-cbt 512 &&
		 '$IMGIO' --format qcow2 '$img' bitmap-set xsng-cbt 1000 25 in-use"
	check "$tag: in use, for qemu too" info_has "$img" xsng-cbt 512 auto,in-use
	check "$tag: in use, for us" bash -c "'$IMGIO' --readonly --format qcow2 '$img' bitmap-get xsng-cbt | grep -qx 'in-use: true'"
	check "$tag: check clean with an in-use bitmap" qcheck "$img"
	check "$tag: not in use again" "$IMGIO" --format qcow2 "$img" bitmap-set xsng-cbt 1000 25
	check "$tag: the replaced bits" same_runs "$img" xsng-cbt "512 1024"
	# our engine does not track qb: its read-write opens flag it in use
	check "$tag: qb in use after our read-write opens" info_has "$img" qb 4096 auto,in-use
	check "$tag: qb's bits untouched by our stores" bash -c \
		"[ \"\$('$IMGIO' --readonly --format qcow2 '$img' bitmap-dirty qb)\" = \
		   '$(want_dirty $size 4096 4095:2 $((size - 4096)):4096 $((33 * G)):$((3 * G)))' ]"

	# qemu-img bitmap works on our bitmap
	run qemu-img bitmap --add -g $G "$img" merged || return
	check "$tag: qemu-img bitmap --merge xsng-cbt" qemu-img bitmap --merge xsng-cbt "$img" merged
	check "$tag: the merge carries our bits" same_runs "$img" merged "0 $G"
	check "$tag: check clean" qcheck "$img"

	# remove: ours, then qemu's; qemu removes one of ours
	check "$tag: we remove merged" "$IMGIO" --format qcow2 "$img" bitmap-remove merged
	check "$tag: qemu lists qb xsng-cbt" names_are "$img" "qb xsng-cbt"
	check "$tag: check clean" qcheck "$img"
	check "$tag: qemu-img bitmap --remove xsng-cbt" qemu-img bitmap --remove "$img" xsng-cbt
	refused "$tag: removed by qemu: gone for us" "$IMGIO" --readonly --format qcow2 "$img" bitmap-get xsng-cbt
	check "$tag: we remove qb, the last one" "$IMGIO" --format qcow2 "$img" bitmap-remove qb
	check "$tag: qemu lists none" names_are "$img" ""
	check "$tag: check clean without bitmaps" qcheck "$img"
	refused "$tag: remove an absent bitmap" "$IMGIO" --format qcow2 "$img" bitmap-remove qb
	check "$tag: stored again" set_ranges "$img" 0:1
	check "$tag: check clean" qcheck "$img"
	check "$tag: read back" same_runs "$img" xsng-cbt "0 $G"
}

[ -n "${BITMAP_QUICK:-}" ] || {
qcow2_case c64k "" $((100 * M + 12800))
qcow2_case c512 "-o cluster_size=512" $((20 * M + 512))
qcow2_case c4k "-o cluster_size=4096" $((64 * M))
qcow2_case c2m "-o cluster_size=2M" $((300 * M + 512))
run qemu-img create -q -f qcow2 base.qcow2 $((50 * M)) &&
	qcow2_case backed "-b base.qcow2 -F qcow2" $((50 * M))
}

# ------------------------------------------------------------- adopt

E1=xsng-cbt-0000000000000001 E2=xsng-cbt-00000000000000e2
# mk_img FMT FILE SIZE
mk_img() {
	case $1 in
	raw) truncate -s $3 "$2" ;;
	vpc) qemu-img create -q -f vpc -o subformat=dynamic,force_size=on "$2" $3 ;;
	qcow2) qemu-img create -q -f qcow2 "$2" $3 ;;
	esac
}

# adopt_case FMT EXT SRC_SIZE DST_SIZE
adopt_case() {
	local fmt=$1 src=as.$2 dst=ad.$2 ss=$3 ds=$4 tag="adopt $1 $3->$4"
	rm -f as.* ad.*
	run mk_img $fmt $src $ss && run mk_img $fmt $dst $ds || return
	run "$IMGIO" --format $fmt $src bitmap-set $E1 $G 1 in-use || return
	run "$IMGIO" --format $fmt $src bitmap-set $E2 $((ss - 1)) 1 || return
	run "$IMGIO" --format $fmt $src bitmap-set $E2 0 1 || return
	run "$IMGIO" --format $fmt $src bitmap-set other 0 1 || return
	run "$IMGIO" --format $fmt $dst bitmap-set $E2 $((5 * G)) 1 || return
	check "$tag: bitmap-adopt" "$IMGIO" --format $fmt $dst bitmap-adopt $src
	check "$tag: ours adopted, 'other' not" bash -c "[ \"\$('$IMGIO' --readonly --format $fmt $dst bitmap-list | sort | tr '\n' ' ')\" = \
		'$E1 $E2 ' ]"
	check "$tag: $E1 keeps its bits and in-use flag" bash -c \
		"'$IMGIO' --readonly --format $fmt $dst bitmap-get $E1 | grep -qx 'in-use: true' &&
		 [ \"\$('$IMGIO' --readonly --format $fmt $dst bitmap-dirty $E1)\" = '$G $G' ]"
	# replaced (not merged) by the source's; its last bit where it was
	local want
	want=$(want_dirty $ds $G 0:1 $((ss - 1)):1)
	check "$tag: $E2 replaced by the source's, not in use" bash -c \
		"'$IMGIO' --readonly --format $fmt $dst bitmap-get $E2 | grep -qx 'in-use: false' &&
		 [ \"\$('$IMGIO' --readonly --format $fmt $dst bitmap-dirty $E2)\" = '$want' ]"
	check "$tag: the source keeps its bitmaps" bash -c "[ \"\$('$IMGIO' --readonly --format $fmt $src bitmap-list | sort | tr '\n' ' ')\" = \
		'other $E1 $E2 ' ]"
	if [ $fmt = qcow2 ]; then
		check "$tag: qemu-img info lists $E1 in use" info_has $dst $E1 $G auto,in-use
		check "$tag: qemu-img info lists $E2 (our rw open left it alone)" info_has $dst $E2 $G auto
		check "$tag: qemu sees $E2's bits" same_runs $dst $E2 "$want"
		check "$tag: qemu-img check clean" qcheck $dst
	fi
	refused "$tag: read-only destination refused" "$IMGIO" --readonly --format $fmt $dst bitmap-adopt $src
	check "$tag: adopt from an image without bitmaps" bash -c \
		"rm -f as2.*; qemu-img create -q -f qcow2 as2.qcow2 $ss && '$IMGIO' --format $fmt $dst bitmap-adopt as2.qcow2"
}
for f in raw:raw vpc:vhd qcow2:qcow2; do
	adopt_case ${f%:*} ${f#*:} $((1000 * K)) $((1000 * K))
	adopt_case ${f%:*} ${f#*:} $((1000 * K)) $((3 * M))
done
# qcow2: a read-write open flags qemu's auto bitmaps in use, not ours
run qemu-img create -q -f qcow2 rw.qcow2 $((8 * M)) &&
run qemu-img bitmap --add rw.qcow2 $E1 && run qemu-img bitmap --add rw.qcow2 qemus && {
	check "rw open: a write" "$IMGIO" --format qcow2 rw.qcow2 write-pattern 0 512 1
	check "rw open: our $E1 not flagged in use" info_has rw.qcow2 $E1 $G auto
	check "rw open: qemu's bitmap flagged in use" info_has rw.qcow2 qemus $G auto,in-use
}

# --- our engine's own header rewrites and writes keep the bitmaps
run qemu-img create -q -f qcow2 p-base.qcow2 $((16 * M)) &&
run qemu-img create -q -f qcow2 -b p-base.qcow2 -F qcow2 p-mid.qcow2 &&
run qemu-img create -q -f qcow2 -b p-mid.qcow2 -F qcow2 p-top.qcow2 &&
run qemu-io -f qcow2 -c "write -P 7 1M 2M" p-mid.qcow2 && {
	check "pull: bitmap on the top" set_ranges p-top.qcow2 $((5 * G)):1
	check "pull: ngdp-imgio pull (image_skip_backing)" run "$IMGIO" --format qcow2 p-top.qcow2 pull
	check "pull: the backing file changed" bash -c \
		"qemu-img info --output=json p-top.qcow2 | grep -q '\"backing-filename\": \"p-base.qcow2\"'"
	check "pull: qemu-img check clean" qcheck p-top.qcow2
	check "pull: the bitmap is still there, same bits" same_runs p-top.qcow2 xsng-cbt "$((5 * G)) $G"
	check "pull: our writes keep the bitmaps bit" "$IMGIO" --format qcow2 p-top.qcow2 write-pattern 0 4096 1
	check "pull: qemu still lists the bitmap" names_are p-top.qcow2 xsng-cbt
	check "pull: qemu-img check clean" qcheck p-top.qcow2
}

# --- crash inside store: old or new bitmap, only leaks, never corruption
run qemu-img create -q -f qcow2 crash0.qcow2 $((64 * M)) &&
set_ranges crash0.qcow2 0:1 && run qemu-img bitmap --add crash0.qcow2 other &&
for p in before-flush:old before-header:old after-header:new; do
	point=qcow2-bitmap-${p%:*} want=${p#*:}
	cp crash0.qcow2 crash.qcow2
	check "crash $point: killed" killed_at $point \
		"$IMGIO" --format qcow2 crash.qcow2 bitmap-set xsng-cbt $((10 * G)) 1
	qemu-img check crash.qcow2 >check.out 2>&1
	st=$?
	check "crash $point: qemu-img check: no corruption (exit $st: 0, or 3 for leaks)" \
		test $st = 0 -o $st = 3
	if [ $want = old ]; then exp="0 $G"; else exp="0 $G
$((10 * G)) $G"; fi
	check "crash $point: the $want bitmap" same_runs crash.qcow2 xsng-cbt "$exp"
	check "crash $point: the other bitmap kept" names_are crash.qcow2 "other xsng-cbt"
	check "crash $point: qemu-img check -r leaks repairs" \
		bash -c "qemu-img check -q -r leaks crash.qcow2 >/dev/null 2>&1; qemu-img check -q crash.qcow2"
	check "crash $point: store again" set_ranges crash.qcow2 $((20 * G)):1
	check "crash $point: check clean" qcheck crash.qcow2
done

# --- hostile bitmap metadata: refused (exit 1), never a crash
# patch IMG WHAT: rewrite one field of the bitmaps extension / directory
patch() {
	python3 - "$@" <<'PY'
import struct, sys
img, what = sys.argv[1], sys.argv[2]
f = open(img, 'r+b')
h = f.read(65536)
hl = struct.unpack('>I', h[100:104])[0]
off = hl
while True:
    t, l = struct.unpack('>II', h[off:off + 8])
    if t == 0x23852875:
        break
    assert t != 0
    off += 8 + ((l + 7) & ~7)
nb, _, dsz, doff = struct.unpack('>IIQQ', h[off + 8:off + 32])
f.seek(doff)
d = f.read(dsz)
toff, tsz = struct.unpack('>QI', d[0:12])
if what == 'nb0':
    f.seek(off + 8); f.write(struct.pack('>I', 0))
elif what == 'dirsize':
    f.seek(off + 16); f.write(struct.pack('>Q', 1 << 40))
elif what == 'tablesize':
    f.seek(doff + 8); f.write(struct.pack('>I', tsz + 1))
elif what == 'namesize':
    f.seek(doff + 18); f.write(struct.pack('>H', 1000))
elif what == 'tableentry':
    f.seek(toff); f.write(struct.pack('>Q', (1 << 62) | 65536))
elif what == 'tablebeyond':
    f.seek(toff); f.write(struct.pack('>Q', 1 << 50))
PY
}
run qemu-img create -q -f qcow2 h0.qcow2 $((8 * M)) && set_ranges h0.qcow2 0:1 &&
for what in nb0 dirsize tablesize namesize tableentry tablebeyond; do
	cp h0.qcow2 h.qcow2
	run patch h.qcow2 $what || continue
	refused "hostile $what: bitmap-get refused" "$IMGIO" --readonly --format qcow2 h.qcow2 bitmap-get xsng-cbt
	refused "hostile $what: bitmap-set refused" "$IMGIO" --format qcow2 h.qcow2 bitmap-set xsng-cbt 0 1
done

echo "t-bitmap.sh: $PASS passed, $FAIL failed"
[ $FAIL = 0 ]
