#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-only
# Hostile metadata (issue 10): QCOW2 table entries that point at metadata,
# VHD BAT entries over the locators or the footer, metadata sizes far beyond
# what the disk needs.  Every such image must be refused at open, quickly and
# with little memory; legitimate images with the same features still open.
# Usage: IMGIO=build/ngdp-imgio VHD_TOOL=build/tests/formats/vhd-tool \
#        bash tests/formats/meta-test.sh
set -u

IMGIO=${IMGIO:-$(pwd)/build/ngdp-imgio}
VHD_TOOL=${VHD_TOOL:-$(pwd)/build/tests/formats/vhd-tool}
PASS=0 FAIL=0 SKIP=0

pass() { PASS=$((PASS + 1)); echo "PASS: $*"; }
fail() { FAIL=$((FAIL + 1)); echo "FAIL: $*"; }
skip() { SKIP=$((SKIP + 1)); echo "SKIP: $*"; }
summary() { echo "$PASS passed, $FAIL failed, $SKIP skipped"; }

for t in qemu-img qemu-io /usr/bin/time; do
	if ! command -v $t >/dev/null; then
		echo "SKIP: $t not installed"; summary; exit 77
	fi
done
if [ ! -x "$IMGIO" ]; then
	echo "FAIL: $IMGIO not built"; exit 1
fi

T=$(mktemp -d /var/tmp/test-meta.XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1

u64() { od -An -tu8 --endian=big -j "$2" -N 8 "$1" | tr -d ' '; }
u32() { od -An -tu4 --endian=big -j "$2" -N 4 "$1" | tr -d ' '; }
# put64 FILE OFFSET VALUE: big-endian u64 at OFFSET.
put64() {
	local v=$3 i s=""
	for ((i = 7; i >= 0; i--)); do s+=$(printf '\\x%02x' $(((v >> (i * 8)) & 255))); done
	printf "$s" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
put32() {
	local v=$3 i s=""
	for ((i = 3; i >= 0; i--)); do s+=$(printf '\\x%02x' $(((v >> (i * 8)) & 255))); done
	printf "$s" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# refused NAME IMG [imgio options]: open must fail (exit 1), read-only and
# read-write, within 5 s and 200 MB of RSS.
refused() {
	local name=$1 img=$2 rc kb mode
	shift 2
	for mode in --readonly ""; do
		cp --sparse=always "$img" try.img
		/usr/bin/time -f %M -o rss.txt timeout 5 \
			"$IMGIO" $mode "$@" try.img read 0 65536 >/dev/null 2>err.txt
		rc=$?
		kb=$(tail -1 rss.txt)
		if [ $rc -eq 1 ] && [ "${kb:-999999999}" -lt 204800 ]; then
			pass "$name ${mode:-rw}: refused ($(head -c 100 err.txt | tr '\n' ' '))"
		else
			fail "$name ${mode:-rw}: exit $rc, max RSS ${kb} KiB"
			head -5 err.txt
		fi
	done
	rm -f try.img
}

# bounded NAME IMG: opens or is refused, within 5 s and 200 MB of RSS.
bounded() {
	local name=$1 img=$2 rc kb
	/usr/bin/time -f %M -o rss.txt timeout 5 \
		"$IMGIO" --readonly "$img" read 0 65536 >/dev/null 2>err.txt
	rc=$?
	kb=$(tail -1 rss.txt)
	if [ $rc -le 1 ] && [ "${kb:-999999999}" -lt 204800 ]; then
		pass "$name: exit $rc, max RSS $kb KiB"
	else
		fail "$name: exit $rc, max RSS ${kb} KiB"
	fi
}

# opens NAME IMG: a legitimate image opens and reads like qemu-img does.
opens() {
	local name=$1 img=$2 vs
	vs=$(qemu-img info --output=json "$img" | sed -n 's/.*"virtual-size": \([0-9]*\).*/\1/p' | head -1)
	[ "$vs" -gt $((64 << 20)) ] && vs=$((64 << 20))
	qemu-img convert -O raw "$img" ref.raw
	truncate -s "$vs" ref.raw
	if "$IMGIO" --readonly "$img" read 0 "$vs" > ours.raw && cmp -s ref.raw ours.raw &&
	   "$IMGIO" "$img" write-pattern 4096 4096 7 && qemu-img check -q "$img"; then
		pass "$name: opens, reads like qemu-img, writes, checks clean"
	else
		fail "$name: legitimate image"
	fi
	rm -f ref.raw ours.raw
}

# ------------------------------------------------------------ qcow2 overlaps
qemu-img create -q -f qcow2 good.qcow2 64M
qemu-io -f qcow2 -c "write -P 0x11 0 256K" -c "write -P 0x22 1M 64K" good.qcow2 >/dev/null
CS=65536
L1=$(u64 good.qcow2 40)
RT=$(u64 good.qcow2 48)
L2=$(( $(u64 good.qcow2 "$L1") & 0x00fffffffffffe00 ))
RB=$(u64 good.qcow2 "$RT")
COPIED=$((1 << 63))

# L2 entry 0 (guest offset 0) pointing at each kind of metadata.
for target in RT L1 RB L2; do
	case $target in
	RT) off=$RT ;; L1) off=$L1 ;; RB) off=$RB ;; L2) off=$L2 ;;
	esac
	cp good.qcow2 l2-$target.qcow2
	put64 l2-$target.qcow2 "$L2" $((COPIED | off))
	refused "qcow2 L2 entry -> $target" l2-$target.qcow2
done
# The same through a "zero, allocated" entry (a write reuses its cluster).
cp good.qcow2 zalloc-rt.qcow2
put64 zalloc-rt.qcow2 $((L2 + 16)) $((COPIED | RT | 1))
refused "qcow2 zero-alloc entry -> refcount table" zalloc-rt.qcow2
# A compressed cluster descriptor over the L1 table (64 KiB clusters: the
# offset takes bits 0..61-8=53, the sector count the bits above).
cp good.qcow2 comp-l1.qcow2
put64 comp-l1.qcow2 $((L2 + 24)) $(((1 << 62) | L1))
refused "qcow2 compressed cluster -> L1 table" comp-l1.qcow2
# The header cluster can only be named by a compressed descriptor.
cp good.qcow2 comp-hdr.qcow2
put64 comp-hdr.qcow2 $((L2 + 24)) $(((1 << 62) | 16))
refused "qcow2 compressed cluster -> header" comp-hdr.qcow2
# An L1 entry naming the refcount table (or the L1 itself) as an L2 table.
for target in RT L1; do
	case $target in RT) off=$RT ;; L1) off=$L1 ;; esac
	cp good.qcow2 l1-$target.qcow2
	put64 l1-$target.qcow2 "$L1" $((COPIED | off))
	refused "qcow2 L1 entry -> $target" l1-$target.qcow2
done
# A refcount table entry naming the L1 table as a refcount block.
cp good.qcow2 rt-l1.qcow2
put64 rt-l1.qcow2 "$RT" "$L1"
refused "qcow2 refcount block -> L1 table" rt-l1.qcow2
# Legitimate: internal snapshots, compressed clusters, preallocation.
cp good.qcow2 snap.qcow2
qemu-img snapshot -c s1 snap.qcow2
qemu-io -f qcow2 -c "write -P 0x33 0 64K" snap.qcow2 >/dev/null
# A snapshot's L1 table over the refcount table, and the snapshot table
# over the active L2 table.
cp snap.qcow2 snap-l1.qcow2
put64 snap-l1.qcow2 "$(u64 snap.qcow2 64)" "$(u64 snap.qcow2 48)"
refused "qcow2 snapshot L1 table -> refcount table" snap-l1.qcow2
cp snap.qcow2 snap-l2.qcow2
S=$(u64 snap.qcow2 64)
dd if=snap.qcow2 of=snap-l2.qcow2 bs=1 skip="$S" count=128 conv=notrunc status=none \
	seek=$(( $(u64 snap.qcow2 $(u64 snap.qcow2 40)) & 0x00fffffffffffe00 ))
put64 snap-l2.qcow2 64 $(( $(u64 snap.qcow2 $(u64 snap.qcow2 40)) & 0x00fffffffffffe00 ))
refused "qcow2 snapshot table -> L2 table" snap-l2.qcow2
opens "qcow2 with an internal snapshot" snap.qcow2
qemu-img create -q -f qcow2 -o cluster_size=4096 snap4k.qcow2 1M
qemu-io -f qcow2 -c "write -P 0x44 0 8K" snap4k.qcow2 >/dev/null
qemu-img snapshot -c s1 snap4k.qcow2
opens "qcow2 4k clusters, snapshot table ending the file" snap4k.qcow2
qemu-img convert -c -O qcow2 good.qcow2 comp.qcow2
opens "qcow2 compressed" comp.qcow2
qemu-img create -q -f qcow2 -o preallocation=metadata prealloc.qcow2 8G
opens "qcow2 preallocation=metadata 8G" prealloc.qcow2

# ------------------------------------------------------------ qcow2 sizes
# A 1 GiB refcount table in a sparse file for a 64 MiB disk.
qemu-img create -q -f qcow2 big-rt.qcow2 64M
truncate -s $((1100 << 20)) big-rt.qcow2
put32 big-rt.qcow2 56 $(((1 << 30) / CS))
refused "qcow2 1 GiB refcount table, 64 MiB disk" big-rt.qcow2
# Refcount table entries far beyond what the file needs (each one a block).
qemu-img create -q -f qcow2 -o cluster_size=2M many-rb.qcow2 64M
truncate -s $((1 << 30)) many-rb.qcow2
RT2=$(u64 many-rb.qcow2 48)
for ((i = 1; i < 400; i++)); do
	put64 many-rb.qcow2 $((RT2 + i * 8)) $(((i + 100) << 21))
done
refused "qcow2 400 refcount blocks of 2 MiB, 64 MiB disk" many-rb.qcow2
# A snapshot count beyond qemu's limit, and a huge snapshot table.
cp good.qcow2 snaps.qcow2
put32 snaps.qcow2 60 100000
put64 snaps.qcow2 64 $((3 * CS))
refused "qcow2 100000 snapshots" snaps.qcow2
# L1 entries beyond the virtual size pointing at L2 tables (memory).
qemu-img create -q -f qcow2 -o cluster_size=2M many-l2.qcow2 64M
truncate -s $((2 << 30)) many-l2.qcow2
L1B=$(u64 many-l2.qcow2 40)
put32 many-l2.qcow2 36 1000
for ((i = 1; i < 400; i++)); do
	put64 many-l2.qcow2 $((L1B + i * 8)) $(((i + 100) << 21))
done
bounded "qcow2 400 L2 tables of 2 MiB past a 64 MiB disk" many-l2.qcow2

# ------------------------------------------------------------ chains
# Every image a regular file named plainly in the top image's directory;
# a backing file's format comes from its child, never from its content.
mkdir -p sr elsewhere
qemu-img create -q -f qcow2 sr/base.qcow2 1M
qemu-img create -q -f qcow2 elsewhere/out.qcow2 1M
ln -s ../elsewhere/out.qcow2 sr/link.qcow2
ln -s base.qcow2 sr/inlink.qcow2
qemu-img create -q -f qcow2 -b inlink.qcow2 -F qcow2 -u sr/top-link.qcow2 1M
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 sr/top-nofmt.qcow2
printf '\x00\x00\x00\x01' | dd of=sr/top-nofmt.qcow2 bs=1 seek=112 conv=notrunc status=none
for c in "symlinked top:sr/link.qcow2" "symlinked backing:sr/top-link.qcow2" \
	 "backing without a format:sr/top-nofmt.qcow2"; do
	if "$IMGIO" -f qcow2 --readonly "${c#*:}" read 0 512 >/dev/null 2>err.txt; then
		fail "chain: ${c%%:*} opened"
	else
		pass "chain: ${c%%:*} refused ($(head -c 100 err.txt | tr '\n' ' '))"
	fi
done
if "$IMGIO" -f qcow2 --confine elsewhere --readonly sr/base.qcow2 read 0 512 >/dev/null 2>&1; then
	fail "chain: top outside --confine opened"
else
	pass "chain: top outside --confine refused"
fi

# ------------------------------------------------------------ vhd
if [ -x "$VHD_TOOL" ]; then
	"$VHD_TOOL" create-dynamic p.vhd $((8 << 20))
	"$VHD_TOOL" create-diff c.vhd "$T/p.vhd"
	"$IMGIO" c.vhd write-pattern 0 4096 0x55
	for k in bat-on-locator bat-on-footer; do
		cp c.vhd $k.vhd
		"$VHD_TOOL" corrupt $k.vhd $k
		refused "vhd $k" $k.vhd
	done
	"$VHD_TOOL" create-dynamic d.vhd $((8 << 20))
	"$IMGIO" d.vhd write-pattern 0 4096 0x55
	cp d.vhd d-footer.vhd
	"$VHD_TOOL" corrupt d-footer.vhd bat-on-footer
	refused "vhd dynamic bat-on-footer" d-footer.vhd
	"$VHD_TOOL" create-dynamic hb.vhd $((8 << 20)) 512
	"$VHD_TOOL" corrupt hb.vhd huge-sparse-bat
	refused "vhd 200 GiB of 512-byte blocks (1.6 GiB BAT)" hb.vhd
	# Legitimate: a written differencing image still opens and checks.
	if "$IMGIO" --readonly c.vhd read 0 4096 >/dev/null &&
	   "$IMGIO" c.vhd write-pattern 1M 8K 3; then
		pass "vhd: legitimate differencing image opens"
	else fail "vhd: legitimate differencing image"; fi
else
	skip "vhd: $VHD_TOOL not built"
fi

summary
[ $FAIL -eq 0 ]
