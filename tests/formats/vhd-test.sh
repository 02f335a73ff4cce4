#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-only
# VHD engine scenarios: qemu interop (dynamic), differencing chains checked
# against a raw model and libvhdi, 4Kn XFS with O_DIRECT, hostile headers,
# kill -9 during writes.  Needs build/ngdp-imgio and build/tests/formats/vhd-tool.
# A test program (tests/README.md): exit 0 pass, 1 fail, 77 skip.
set -u

TOP=$(cd "$(dirname "$0")/../.." && pwd)
. "$TOP/tests/formats/lib-vhd.sh"
SEED=${VHD_TEST_SEED:-4242}
PASS=0 FAIL=0 SKIP=0
WORK=$(mktemp -d /tmp/vhd-test.XXXXXX)
LOOPDEV= MNT= BGPID=

cleanup() {
	if [ -n "$BGPID" ]; then
		kill -9 "$BGPID" 2>/dev/null
		wait "$BGPID" 2>/dev/null
	fi
	for m in "$WORK"/mnt-*; do
		mountpoint -q "$m" 2>/dev/null && umount "$m"
	done
	[ -n "$MNT" ] && mountpoint -q "$MNT" && umount "$MNT"
	[ -n "$LOOPDEV" ] && losetup -d "$LOOPDEV" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT

ok() { PASS=$((PASS + 1)); echo "PASS: $*"; }
ko() { FAIL=$((FAIL + 1)); echo "FAIL: $*"; }
skip() { SKIP=$((SKIP + 1)); echo "SKIP: $*"; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else ko "$name"; fi; }
q() { "$@" >/dev/null 2>&1; }

for t in "$IMGIO" "$TOOL"; do
	[ -x "$t" ] || { echo "FAIL: missing $t (run make)"; exit 1; }
done
HAVE_QEMU=1
command -v qemu-img >/dev/null && command -v qemu-io >/dev/null || HAVE_QEMU=0
HAVE_VHDI=1
command -v vhdiinfo >/dev/null && command -v vhdimount >/dev/null && [ -c /dev/fuse ] || HAVE_VHDI=0

# gen_workload SEED SIZE COUNT ALIGN: lines "w OFF LEN BYTE" / "z OFF LEN".
# ALIGN=1: byte-granular offsets; ALIGN=4096: 4 KiB aligned.
gen_workload() {
	local seed=$1 size=$2 count=$3 align=$4 i off len
	RANDOM=$seed
	for ((i = 0; i < count; i++)); do
		off=$(( (RANDOM * 32768 + RANDOM) % (size / align) * align ))
		len=$(( ((RANDOM * 32768 + RANDOM) % (3 * 1048576 / align) + 1) * align ))
		[ $((off + len)) -gt "$size" ] && len=$((size - off))
		if [ $((RANDOM % 6)) -eq 0 ]; then
			echo "z $off $len"
		else
			echo "w $off $len $((RANDOM % 255 + 1))"
		fi
	done
}

# Workload -> ngdp-imgio script (zeros alternate unmap / no unmap).
to_imgio() {
	local n=0
	while read -r op off len byte; do
		case $op in
		w) echo "write-pattern $off $len $byte" ;;
		z) n=$((n + 1)); echo "zero $off $len$([ $((n % 2)) -eq 0 ] && echo ' unmap')" ;;
		esac
	done
	echo flush
}

# Workload -> qemu-io -c arguments (one per line).
to_qemu_io() {
	while read -r op off len byte; do
		case $op in
		w) echo "write -P $byte $off $len" ;;
		z) echo "write -z $off $len" ;;
		esac
	done
}

apply_qemu_io() {	# FMT IMAGE WORKLOAD_FILE
	local args=() c
	while IFS= read -r c; do args+=(-c "$c"); done < <(to_qemu_io < "$3")
	qemu-io -f "$1" "${args[@]}" "$2" >/dev/null
}

apply_imgio() {		# IMAGE WORKLOAD_FILE
	to_imgio < "$2" | "$IMGIO" "$1" - >/dev/null
}

VHDI_MNT_BASE=$WORK

# ------------------------------------------------------------ scenarios

# Dynamic image from qemu-img: same workload through ngdp-imgio and qemu-io.
test_dynamic() {	# DIR TAG
	local d=$1 tag=$2 size=$((64 << 20))
	if [ $HAVE_QEMU = 0 ]; then skip "$tag dynamic: qemu-img/qemu-io not installed"; return; fi
	gen_workload "$SEED" $size 60 1 > "$d/wl"
	qemu-img create -q -f vpc -o subformat=dynamic,force_size=on "$d/a.vhd" $size
	cp "$d/a.vhd" "$d/b.vhd"
	"$TOOL" create-dynamic "$d/c.vhd" $size
	check "$tag dynamic: ngdp-imgio workload runs" apply_imgio "$d/a.vhd" "$d/wl"
	apply_qemu_io vpc "$d/b.vhd" "$d/wl"
	check "$tag dynamic: qemu-img compare (qemu-created image)" \
		qemu-img compare -q -f vpc -F vpc "$d/a.vhd" "$d/b.vhd"
	check "$tag dynamic: workload on vhd_create_dynamic image" apply_imgio "$d/c.vhd" "$d/wl"
	check "$tag dynamic: qemu reads our own image" \
		qemu-img compare -q -f vpc -F vpc "$d/c.vhd" "$d/b.vhd"
	qemu-img convert -f vpc -O raw "$d/b.vhd" "$d/b.raw"
	check "$tag dynamic: ngdp-imgio read equals qemu" \
		bash -c "'$IMGIO' '$d/c.vhd' read 0 $size | cmp -s - '$d/b.raw'"
	if [ $HAVE_VHDI = 1 ]; then
		check "$tag dynamic: vhdiinfo parses it" q vhdiinfo "$d/c.vhd"
		check "$tag dynamic: libvhdi reads the same bytes" vhdi_equals "$d/c.vhd" "$d/b.raw"
	else
		skip "$tag dynamic: libvhdi oracle (libvhdi-utils or /dev/fuse missing)"
	fi
	rm -f "$d"/a.vhd "$d"/b.vhd "$d"/c.vhd "$d"/b.raw
}

# Differencing: base with pattern A, child, writes; model = raw copy.
test_diff() {		# DIR TAG
	local d=$1 tag=$2 size=$((32 << 20)) sum
	if [ $HAVE_QEMU = 0 ]; then skip "$tag differencing: qemu-io not installed"; return; fi
	"$TOOL" create-dynamic "$d/base.vhd" $size
	qemu-io -f vpc -c "write -P 0x61 0 7M" -c "write -P 0x62 9M 3M" \
		-c "write -P 0x63 20M 1M" -c "write -P 0x64 31M 1M" "$d/base.vhd" >/dev/null
	qemu-img convert -f vpc -O raw "$d/base.vhd" "$d/exp.raw"
	sum=$(md5sum < "$d/base.vhd")
	check "$tag differencing: vhd_create_differencing" "$TOOL" create-diff "$d/child.vhd" "$d/base.vhd"
	check "$tag differencing: locator is relative" \
		bash -c "'$TOOL' info '$d/child.vhd' | grep -q 'parent base.vhd\$'"
	gen_workload $((SEED + 1)) $size 40 1 > "$d/wl"
	check "$tag differencing: writes into the child" apply_imgio "$d/child.vhd" "$d/wl"
	apply_qemu_io raw "$d/exp.raw" "$d/wl"
	check "$tag differencing: child reads the expected bytes" \
		bash -c "'$IMGIO' '$d/child.vhd' read 0 $size | cmp -s - '$d/exp.raw'"
	check "$tag differencing: base untouched" [ "$(md5sum < "$d/base.vhd")" = "$sum" ]

	# libvhdi 20210425 mixes child and parent sectors wrongly inside one
	# 4 KiB page, so its comparison uses a 4 KiB-aligned workload.
	if [ $HAVE_VHDI = 1 ]; then
		qemu-img convert -f vpc -O raw "$d/base.vhd" "$d/exp4.raw"
		"$TOOL" create-diff "$d/child4.vhd" "$d/base.vhd"
		gen_workload $((SEED + 2)) $size 40 4096 > "$d/wl4"
		apply_imgio "$d/child4.vhd" "$d/wl4"
		apply_qemu_io raw "$d/exp4.raw" "$d/wl4"
		check "$tag differencing: vhdiinfo sees the parent" \
			bash -c "vhdiinfo '$d/child4.vhd' | grep -q 'Parent filename.*base.vhd'"
		check "$tag differencing: libvhdi reads the same bytes" vhdi_equals "$d/child4.vhd" "$d/exp4.raw"
		check "$tag differencing: ngdp-imgio agrees (4 KiB workload)" \
			bash -c "'$IMGIO' '$d/child4.vhd' read 0 $size | cmp -s - '$d/exp4.raw'"
	else
		skip "$tag differencing: libvhdi oracle (libvhdi-utils or /dev/fuse missing)"
	fi

	# Chain of depth 5 on top of the base; each level keeps its content.
	local prev="$d/base.vhd" k ok_levels=1
	qemu-img convert -f vpc -O raw "$d/base.vhd" "$d/chain.raw"
	for k in 1 2 3 4 5; do
		"$TOOL" create-diff "$d/c$k.vhd" "$prev" || ok_levels=0
		gen_workload $((SEED + 10 + k)) $size 12 1 > "$d/wl$k"
		apply_imgio "$d/c$k.vhd" "$d/wl$k" || ok_levels=0
		apply_qemu_io raw "$d/chain.raw" "$d/wl$k"
		cp "$d/chain.raw" "$d/level$k.raw"
		prev="$d/c$k.vhd"
	done
	check "$tag chain depth 5: created and written" [ $ok_levels = 1 ]
	check "$tag chain depth 5: ngdp-imgio info shows 6 images" \
		bash -c "'$IMGIO' '$d/c5.vhd' info | grep -c '^chain:' | grep -qx 6"
	for k in 1 3 5; do
		check "$tag chain depth 5: level $k reads its expected bytes" \
			bash -c "'$IMGIO' --readonly '$d/c$k.vhd' read 0 $size | cmp -s - '$d/level$k.raw'"
	done
	check "$tag chain depth 5: base untouched" [ "$(md5sum < "$d/base.vhd")" = "$sum" ]
	rm -f "$d"/*.vhd "$d"/*.raw "$d"/wl*
}

# Headers an attacker could write: clean error (exit 1), never a crash.
test_hostile() {
	local d=$WORK/hostile k rc
	mkdir -p "$d"
	for k in footer-checksum header-checksum bat-beyond-eof bat-overlap \
		 huge-max-entries block-size-0 block-size-npot block-size-huge size-huge; do
		"$TOOL" create-dynamic "$d/h.vhd" $((8 << 20))
		"$IMGIO" "$d/h.vhd" write-pattern 0 4M 0x55 >/dev/null
		"$TOOL" corrupt "$d/h.vhd" $k
		"$IMGIO" "$d/h.vhd" read 0 4096 >/dev/null 2>&1; rc=$?
		check "hostile $k: refused cleanly (rc=$rc)" [ $rc = 1 ]
	done
	"$TOOL" create-dynamic "$d/h.vhd" $((8 << 20))
	truncate -s 1000 "$d/h.vhd"
	"$IMGIO" "$d/h.vhd" info >/dev/null 2>&1; rc=$?
	check "hostile truncated file: refused cleanly (rc=$rc)" [ $rc = 1 ]

	# Parent locator leaving the directory.
	mkdir -p "$d/other" "$d/sr"
	"$TOOL" create-dynamic "$d/other/p.vhd" $((8 << 20))
	"$TOOL" create-diff "$d/sr/c.vhd" "$d/other/p.vhd"
	"$IMGIO" "$d/sr/c.vhd" info >/dev/null 2>&1; rc=$?
	check "hostile locator ../other/p.vhd: confined (rc=$rc)" [ $rc = 1 ]
	"$TOOL" create-dynamic "$d/sr/p.vhd" $((8 << 20))
	"$TOOL" create-diff "$d/sr/c2.vhd" "$d/sr/p.vhd"
	"$TOOL" corrupt "$d/sr/c2.vhd" "locator-name:/etc/passwd"
	"$IMGIO" "$d/sr/c2.vhd" info >/dev/null 2>&1; rc=$?
	check "hostile locator /etc/passwd: confined (rc=$rc)" [ $rc = 1 ]

	# Parent loop: a -> b -> a.
	"$TOOL" create-dynamic "$d/sr/b.vhd" $((8 << 20))
	"$TOOL" create-diff "$d/sr/a.vhd" "$d/sr/b.vhd"
	"$TOOL" create-diff "$d/sr/b2.vhd" "$d/sr/a.vhd"
	mv "$d/sr/b2.vhd" "$d/sr/b.vhd"
	"$IMGIO" "$d/sr/a.vhd" info >/dev/null 2>&1; rc=$?
	check "hostile parent loop: refused (rc=$rc)" [ $rc = 1 ]
	# Self loop.
	"$TOOL" create-diff "$d/sr/s.vhd" "$d/sr/p.vhd"
	"$TOOL" corrupt "$d/sr/s.vhd" "locator-name:./s.vhd"
	"$IMGIO" "$d/sr/s.vhd" info >/dev/null 2>&1; rc=$?
	check "hostile self loop: refused (rc=$rc)" [ $rc = 1 ]

	# Parent replaced by another image: uuid mismatch, I/O error.
	"$TOOL" create-diff "$d/sr/u.vhd" "$d/sr/p.vhd"
	"$TOOL" create-dynamic "$d/sr/p.vhd" $((8 << 20))
	"$IMGIO" "$d/sr/u.vhd" read 0 4096 >/dev/null 2>&1; rc=$?
	check "hostile parent uuid mismatch: read refused (rc=$rc)" [ $rc = 1 ]
	rm -rf "$d"
}

# kill -9 during a write workload; every flushed write must survive.
test_crash() {		# NAME IMAGE [PARENT_TO_CREATE_FROM]
	local tag=$1 img=$2 out=$WORK/crash.out n i
	: > "$out"
	"$TOOL" crash-writer "$img" $SEED > "$out" 2>&1 &
	BGPID=$!
	for ((i = 0; i < 300; i++)); do
		n=$(grep -c '^FLUSHED' "$out")
		[ "$n" -ge 40 ] && break
		grep -q '^DONE' "$out" && break
		kill -0 $BGPID 2>/dev/null || break
		sleep 0.1
	done
	kill -9 $BGPID 2>/dev/null
	wait $BGPID 2>/dev/null
	check "$tag crash: writer killed and gone" bash -c "! kill -0 $BGPID 2>/dev/null"
	BGPID=
	n=$(grep '^FLUSHED' "$out" | tail -1 | awk '{print $2}')
	if [ -z "$n" ]; then ko "$tag crash: writer flushed nothing"; cat "$out"; return; fi
	check "$tag crash: reopens, all $n flushed writes read back" \
		"$TOOL" crash-verify "$img" $SEED "$n"
	# A writable open + flush repairs the footer at the end of the file.
	check "$tag crash: writable reopen and flush" q "$IMGIO" "$img" flush
	if [ $HAVE_VHDI = 1 ]; then
		check "$tag crash: vhdiinfo parses the repaired image" q vhdiinfo "$img"
	fi
	if [ $HAVE_QEMU = 1 ] && [ "${tag% *}" != "$tag" ] && [ "${tag##* }" = dynamic ]; then
		check "$tag crash: qemu-img reads it" qemu-img convert -f vpc -O raw "$img" "$WORK/crash.raw"
		rm -f "$WORK/crash.raw"
	fi
}

test_crashes() {	# DIR TAG
	local d=$1 tag=$2
	"$TOOL" create-dynamic "$d/k.vhd" $((64 << 20))
	test_crash "$tag dynamic" "$d/k.vhd"
	"$TOOL" create-dynamic "$d/kb.vhd" $((64 << 20))
	"$IMGIO" "$d/kb.vhd" write-pattern 0 64M 0x77 >/dev/null
	"$TOOL" create-diff "$d/kc.vhd" "$d/kb.vhd"
	test_crash "$tag differencing" "$d/kc.vhd"
	# Die right after the file grew (footer slot at EOF still empty):
	# open must fall back on the footer copy at offset 0.
	"$TOOL" create-dynamic "$d/g.vhd" $((64 << 20))
	"$TOOL" crash-writer "$d/g.vhd" $SEED 258 > "$WORK/grow.out" 2>&1
	check "$tag grown-not-flushed: footer slot at EOF is empty" \
		bash -c "! tail -c 512 '$d/g.vhd' | grep -q conectix"
	"$TOOL" crash-verify "$d/g.vhd" $SEED 256 > "$WORK/grow.verify" 2>&1
	check "$tag grown-not-flushed: 256 flushed writes read back" [ $? = 0 ]
	check "$tag grown-not-flushed: footer copy used" grep -q "using the copy" "$WORK/grow.verify"
	check "$tag grown-not-flushed: writable flush repairs footer" q "$IMGIO" "$d/g.vhd" flush
	check "$tag grown-not-flushed: footer at EOF again" \
		bash -c "tail -c 512 '$d/g.vhd' | grep -q conectix"
	rm -f "$d"/k*.vhd "$d"/g.vhd
}

# Same scenarios on XFS over a loop device with 4096-byte logical sectors.
test_4kn() {
	if [ "$(id -u)" != 0 ]; then skip "4Kn XFS: needs root"; return; fi
	for c in losetup mkfs.xfs mount; do
		command -v $c >/dev/null || { skip "4Kn XFS: $c not installed"; return; }
	done
	truncate -s 1G "$WORK/xfs.img"
	LOOPDEV=$(losetup -b 4096 --direct-io=on --show -f "$WORK/xfs.img" 2>/dev/null) ||
		{ LOOPDEV=; skip "4Kn XFS: losetup -b 4096 failed"; return; }
	mkfs.xfs -q "$LOOPDEV" >/dev/null 2>&1 || { skip "4Kn XFS: mkfs.xfs failed"; return; }
	MNT=$WORK/xfs
	mkdir -p "$MNT"
	mount "$LOOPDEV" "$MNT" || { MNT=; skip "4Kn XFS: mount failed"; return; }
	check "4Kn XFS: logical sector size is 4096" \
		[ "$(blockdev --getss "$LOOPDEV")" = 4096 ]
	# Prove O_DIRECT bites: an unaligned direct read must fail here.
	"$TOOL" create-dynamic "$MNT/probe.vhd" $((8 << 20))
	check "4Kn XFS: 512-byte O_DIRECT read is refused by the fs" \
		bash -c "! dd if='$MNT/probe.vhd' of=/dev/null bs=512 count=1 skip=1 iflag=direct 2>/dev/null"
	rm -f "$MNT/probe.vhd"
	test_dynamic "$MNT" "4Kn"
	test_diff "$MNT" "4Kn"
	test_crashes "$MNT" 4Kn
	umount "$MNT" && MNT=
	losetup -d "$LOOPDEV" && LOOPDEV=
	rm -f "$WORK/xfs.img"
}

refused_too_large() { [ "$1" = 1 ] && grep -q 'too large' <<<"$2"; }
test_create_errors() {
	local d=$WORK/create out rc
	mkdir -p "$d"
	"$TOOL" create-dynamic "$d/x.vhd" 0 2>/dev/null
	check "create: size 0 refused" [ $? = 1 ]
	"$TOOL" create-dynamic "$d/x.vhd" 1000 2>/dev/null
	check "create: size not a multiple of 512 refused" [ $? = 1 ]
	out=$("$TOOL" create-dynamic "$d/x.vhd" $((2041 << 30)) 2>&1); rc=$?
	check "create: > 2040 GiB refused with EFBIG (rc=$rc)" refused_too_large "$rc" "$out"
	check "create: 2040 GiB accepted" "$TOOL" create-dynamic "$d/x.vhd" $((2040 << 30))
	check "create: no temporary file left" [ "$(ls -A "$d")" = x.vhd ]
	if [ $HAVE_QEMU = 1 ]; then
		check "create: qemu-img sees 2040 GiB" \
			bash -c "qemu-img info -f vpc --output=json '$d/x.vhd' | grep -q '\"virtual-size\": 2190433320960'"
	fi
	rm -rf "$d"
}

mkdir -p "$WORK/plain"
test_create_errors
test_dynamic "$WORK/plain" "plain"
test_diff "$WORK/plain" "plain"
test_hostile
test_crashes "$WORK/plain" plain
test_4kn

echo "vhd-test.sh: checks: $PASS ok, $FAIL failed, $SKIP skipped"
[ $FAIL = 0 ] && exit 0
exit 1
