#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-only
# Persistent dirty bitmaps (changed block tracking, issue 14) through
# ngdp-imgio's bitmap-* commands (image_bitmap_load/store/remove/list).
# raw and VHD: the sidecar file "<image>.cbt" (round trips, in-use flag,
# replace, remove, read-only, corrupt or hostile sidecars refused).
# qcow2: a real qcow2 persistent bitmap; qemu-img (info, check, bitmap)
# and qemu-nbd + nbdinfo (the bits qemu sees) judge it, both ways.
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

for t in qemu-img qemu-io python3; do
	command -v $t >/dev/null ||
		{ echo "SKIP: $t not installed (Debian packages qemu-utils, python3)"; exit 77; }
done
[ -x "$IMGIO" ] || { echo "FAIL: missing $IMGIO (run make)"; exit 1; }

T=$(mktemp -d /var/tmp/test-bitmap.XXXXXX)
trap 'rm -rf "$T"' EXIT
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
	local fmt=$1 img=$2 sc=$2.cbt
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
	refused "$fmt: another name refused" "${io[@]}" bitmap-set other 0 1
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

echo "t-bitmap.sh: $PASS passed, $FAIL failed"
[ $FAIL = 0 ]
