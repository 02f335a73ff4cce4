#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-only
# Format layer tests: ngdp-imgio against qemu-img/qemu-io as the oracle.
# Usage: IMGIO=build/ngdp-imgio bash tests/formats/run.sh
# A test program (tests/README.md): exit 0 pass, 1 fail, 77 skip.
set -u

IMGIO=${IMGIO:-$(pwd)/build/ngdp-imgio}
PASS=0 FAIL=0 SKIP=0
SIZE=$((64 << 20))

pass() { PASS=$((PASS + 1)); echo "PASS: $*"; }
fail() { FAIL=$((FAIL + 1)); echo "FAIL: $*"; }
skip() { SKIP=$((SKIP + 1)); echo "SKIP: $*"; }
summary() { echo "formats/run.sh: checks: $PASS ok, $FAIL failed, $SKIP skipped"; }

for t in qemu-img qemu-io; do
	if ! command -v $t >/dev/null; then
		echo "SKIP: $t not installed (Debian package qemu-utils)"; exit 77
	fi
done
if [ ! -x "$IMGIO" ]; then
	echo "FAIL: $IMGIO not built"; exit 1
fi

T=$(mktemp -d /var/tmp/test-formats.XXXXXX)
BGPID=
cleanup() {
	if [ -n "$BGPID" ]; then kill -9 "$BGPID" 2>/dev/null; wait "$BGPID" 2>/dev/null; fi
	rm -rf "$T"
}
trap cleanup EXIT
cd "$T" || exit 1

# qi: qemu-io for setting up an image; a failure is a failed test, never
# ignored (qemu-io exits non-zero when any -c command fails)
qi() { qemu-io "$@" >qi.out 2>&1 || { fail "setup: qemu-io $*"; head -5 qi.out; return 1; }; }

# ----------------------------------------------------------- workloads
# gen_workload SEED N: writes w.script (ngdp-imgio) and w.qemu (qemu-io -c
# arguments, one per line); unaligned offsets and lengths included.
gen_workload() {
	local seed=$1 n=$2 i op off len pat
	RANDOM=$seed
	: > w.script; : > w.qemu
	for ((i = 0; i < n; i++)); do
		op=$((RANDOM % 10))
		if ((RANDOM % 2)); then
			off=$(((RANDOM * 32768 + RANDOM) % (SIZE - 300000)))
			len=$((RANDOM % 200000 + 1))
		else
			off=$(((RANDOM % 1024) * 65536 % (SIZE - 300000)))
			len=$(((RANDOM % 4 + 1) * 65536))
		fi
		pat=$((RANDOM % 255 + 1))
		if ((op < 6)); then
			echo "write-pattern $off $len $pat" >> w.script
			echo "write -P $pat $off $len" >> w.qemu
		elif ((op < 8)); then
			echo "zero $off $len" >> w.script
			echo "write -z $off $len" >> w.qemu
		else
			echo "discard $off $len" >> w.script
			echo "discard $off $len" >> w.qemu
		fi
		((i % 7 == 6)) && echo "flush" >> w.script
	done
	return 0
}

run_qemu_io() {
	local img=$1 args=() l
	while read -r l; do args+=(-c "$l"); done < w.qemu
	qemu-io -f qcow2 "${args[@]}" "$img" >/dev/null
}

# check_read NAME IMG: our full read equals qemu-img convert -O raw.
check_read() {
	local name=$1 img=$2 vs
	vs=$(qemu-img info --output=json "$img" | sed -n 's/.*"virtual-size": \([0-9]*\).*/\1/p' | head -1)
	qemu-img convert -O raw "$img" ref.raw || { fail "$name: convert"; return; }
	if ! "$IMGIO" --readonly "$img" read 0 "$vs" > ours.raw; then
		fail "$name: read"; return
	fi
	if cmp -s ref.raw ours.raw; then pass "$name: read matches qemu-img"
	else fail "$name: read differs from qemu-img"; fi
	rm -f ref.raw ours.raw
}

# check_workload NAME IMG SEED: same workload through us and qemu-io.
check_workload() {
	local name=$1 img=$2 seed=$3 rc
	gen_workload "$seed" 60
	cp --sparse=always "$img" ours.qcow2; cp --sparse=always "$img" theirs.qcow2
	if ! "$IMGIO" ours.qcow2 - < w.script; then
		fail "$name: ngdp-imgio workload"; return
	fi
	run_qemu_io theirs.qcow2 || { fail "$name: qemu-io workload"; return; }
	qemu-img check -q ours.qcow2; rc=$?
	if [ $rc -eq 0 ]; then pass "$name: qemu-img check clean"
	else fail "$name: qemu-img check exit $rc"; qemu-img check ours.qcow2 | head -20; fi
	if qemu-img compare -q -f qcow2 -F qcow2 ours.qcow2 theirs.qcow2; then
		pass "$name: content equals qemu-io"
	else fail "$name: content differs from qemu-io"; fi
	rm -f ours.qcow2 theirs.qcow2
}

# Put some data in an image with qemu-io (patterns at a few places).
populate() {
	qi -f qcow2 -c "write -P 0x11 0 1M" -c "write -P 0x22 5M 300K" \
		-c "write -P 0x33 30000000 1234567" -c "write -P 0x44 60M 4K" "$1"
}

# ----------------------------------------------------------- cases
case_dir() { rm -rf "$T/c"; mkdir "$T/c"; cd "$T/c" || exit 1; }

run_case() {
	local name=$1 img=$2 seed=$3
	check_read "$name" "$img"
	check_workload "$name" "$img" "$seed"
}

case_dir
qemu-img create -q -f qcow2 img.qcow2 $SIZE
run_case "fresh v3 64k" img.qcow2 1
populate img.qcow2
run_case "populated v3 64k" img.qcow2 2

case_dir
qemu-img create -q -f qcow2 -o compat=0.10 img.qcow2 $SIZE; populate img.qcow2
run_case "v2 compat=0.10" img.qcow2 3

case_dir
qemu-img create -q -f qcow2 -o cluster_size=512 img.qcow2 $SIZE; populate img.qcow2
run_case "cluster 512" img.qcow2 4

case_dir
qemu-img create -q -f qcow2 -o cluster_size=2M img.qcow2 $SIZE; populate img.qcow2
run_case "cluster 2M" img.qcow2 5

case_dir
qemu-img create -q -f qcow2 -o preallocation=metadata img.qcow2 $SIZE; populate img.qcow2
run_case "preallocation=metadata" img.qcow2 6

case_dir
qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=128k img.qcow2 $SIZE; populate img.qcow2
run_case "extended_l2 128k" img.qcow2 7

case_dir
qemu-img create -q -f qcow2 -o refcount_bits=1 img.qcow2 $SIZE; populate img.qcow2
run_case "refcount_bits=1" img.qcow2 8

case_dir
qemu-img create -q -f raw src.raw $SIZE
qi -f raw -c "write -P 0x5a 0 3M" -c "write -P 0x6b 7000000 2M" -c "write -P 0 20M 1M" src.raw
head -c 1M /dev/urandom | dd of=src.raw bs=1M seek=40 conv=notrunc status=none
qemu-img convert -c -O qcow2 src.raw img.qcow2
run_case "compressed" img.qcow2 9

case_dir
qemu-img create -q -f qcow2 img.qcow2 $SIZE; populate img.qcow2
qi -f qcow2 -c "write -z 0 512K" -c "write -z -u 5M 128K" -c "write -z 40M 1M" img.qcow2
run_case "zero clusters" img.qcow2 10

# Backing chains: different data at each level.
make_chain() {
	local depth=$1 opts=${2:-} i prev
	qemu-img create -q -f qcow2 $opts l0.qcow2 $SIZE
	qi -f qcow2 -c "write -P 1 0 $SIZE" l0.qcow2
	prev=l0.qcow2
	for ((i = 1; i <= depth; i++)); do
		qemu-img create -q -f qcow2 $opts -b "$prev" -F qcow2 l$i.qcow2
		qi -f qcow2 -c "write -P $((i + 1)) $((i * 1000000 + i * 777)) 300000" \
			-c "write -z $((i * 1500000)) 65536" l$i.qcow2
		prev=l$i.qcow2
	done
	echo "$prev"
}

case_dir
top=$(make_chain 10)
run_case "10-deep chain" "$top" 11
case_dir
top=$(make_chain 30)
run_case "30-deep chain" "$top" 12
case_dir
top=$(make_chain 3 "-o extended_l2=on,cluster_size=128k")
run_case "extended_l2 chain" "$top" 13
case_dir
top=$(make_chain 2 "-o compat=0.10")
run_case "v2 chain" "$top" 14

case_dir
qemu-img create -q -f raw base.raw $SIZE
qi -f raw -c "write -P 0x77 0 $SIZE" -c "write -P 0x78 123457 99999" base.raw
qemu-img create -q -f qcow2 -b base.raw -F raw img.qcow2
qi -f qcow2 -c "write -P 0x79 1M 64K" img.qcow2
run_case "raw backing" img.qcow2 15

# A backing file shorter than the top.
case_dir
qemu-img create -q -f qcow2 base.qcow2 1M
qi -f qcow2 -c "write -P 0x21 0 1M" base.qcow2
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 img.qcow2 $SIZE
run_case "short backing" img.qcow2 16

# Raw images through the same tool.
case_dir
qemu-img create -q -f raw img.raw $SIZE
gen_workload 17 40
sed -i 's/^discard.*//' w.script w.qemu
cp img.raw theirs.raw
args=(); while read -r l; do [ -n "$l" ] && args+=(-c "$l"); done < w.qemu
if ! "$IMGIO" img.raw - < w.script; then fail "raw: ngdp-imgio workload"
elif ! qemu-io -f raw "${args[@]}" theirs.raw >/dev/null; then fail "raw: qemu-io workload"
elif cmp -s img.raw theirs.raw; then pass "raw: workload equals qemu-io"
else fail "raw: workload differs"; fi

# ----------------------------------------------------------- hostile headers
case_dir
qemu-img create -q -f qcow2 good.qcow2 $SIZE; populate good.qcow2

# corrupt NAME OFFSET HEXBYTES: copy good.qcow2 with bytes patched.
corrupt() {
	cp good.qcow2 "$1"
	printf "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
expect_refused() {
	local name=$1 img=$2 rc
	"$IMGIO" --readonly "$img" read 0 4096 >/dev/null 2>err.txt; rc=$?
	if [ $rc -eq 1 ] && grep -q "cannot open" err.txt; then
		pass "hostile: $name refused ($(grep -m1 -o 'qcow2: .*\|backing.*' err.txt | head -c 80))"
	else fail "hostile: $name (exit $rc)"; cat err.txt; fi
}
corrupt l1-beyond-eof.qcow2 40 '\x00\x00\x00\x10\x00\x00\x00\x00'
expect_refused "L1 offset beyond EOF" l1-beyond-eof.qcow2
corrupt huge-l1.qcow2 36 '\x7f\xff\xff\xff'
expect_refused "huge l1_size" huge-l1.qcow2
corrupt bad-cbits.qcow2 20 '\x00\x00\x00\x1f'
expect_refused "cluster_bits 31" bad-cbits.qcow2
corrupt incompat.qcow2 72 '\x00\x00\x00\x00\x00\x00\x01\x00'
expect_refused "unknown incompatible bit" incompat.qcow2
corrupt crypt.qcow2 32 '\x00\x00\x00\x01'
expect_refused "encryption" crypt.qcow2
corrupt rt-beyond.qcow2 48 '\x00\x00\x01\x00\x00\x00\x00\x00'
qemu-img create -q -f qcow2 rw.qcow2 1M
printf '\x00\x00\x00\x00\x00\x00\x00\x01' | dd of=rw.qcow2 bs=1 seek=72 conv=notrunc status=none
if "$IMGIO" rw.qcow2 write-pattern 0 512 1 2>err.txt; then fail "hostile: dirty image opened rw"
elif grep -q "qemu-img check -r all" err.txt; then pass "hostile: dirty image refused rw with the repair hint"
else fail "hostile: dirty image message"; cat err.txt; fi
# A bad L2 entry: point the first L2 entry far beyond EOF.
cp good.qcow2 badl2.qcow2
l1e=$(od -An -tu8 --endian=big -j $(( $(od -An -tu8 --endian=big -j 40 -N 8 good.qcow2) )) -N 8 good.qcow2)
l2off=$(( l1e & 0x00fffffffffffe00 ))
printf '\x80\x00\x00\x7f\x00\x00\x00\x00' | dd of=badl2.qcow2 bs=1 seek=$l2off conv=notrunc status=none
expect_refused "L2 entry beyond EOF" badl2.qcow2
# zstd
qemu-img create -q -f qcow2 -o compression_type=zstd zstd.qcow2 1M 2>/dev/null &&
	expect_refused "zstd compression" zstd.qcow2
# Backing path escaping the directory, and a loop.
mkdir sub
qemu-img create -q -f qcow2 -b ../../etc/passwd -F raw -u sub/esc.qcow2 1M
expect_refused "backing ../../etc/passwd" sub/esc.qcow2
qemu-img create -q -f qcow2 -b /etc/passwd -F raw -u sub/abs.qcow2 1M
expect_refused "backing /etc/passwd" sub/abs.qcow2
qemu-img create -q -f raw outside.raw 1M
qemu-img create -q -f qcow2 -b ../outside.raw -F raw sub/out.qcow2
expect_refused "backing ../outside.raw (outside the directory)" sub/out.qcow2
qemu-img create -q -f qcow2 a.qcow2 1M
qemu-img create -q -f qcow2 -b a.qcow2 -F qcow2 b.qcow2
qemu-img rebase -q -u -f qcow2 -b b.qcow2 -F qcow2 a.qcow2
expect_refused "backing loop a->b->a" a.qcow2
qemu-img create -q -f qcow2 -b missing.qcow2 -F qcow2 -u nob.qcow2 1M
expect_refused "missing backing file" nob.qcow2
head -c 100 good.qcow2 > trunc.qcow2
expect_refused "truncated header" trunc.qcow2

# ----------------------------------------------------------- kill -9
case_dir
qemu-img create -q -f qcow2 -o cluster_size=4k k.qcow2 1G
RANDOM=99
for ((i = 0; i < 20000; i++)); do
	echo "write-pattern $(( (RANDOM * 32768 + RANDOM) % ((1 << 30) - 70000) )) $((RANDOM % 65536 + 1)) $((i % 250 + 1))"
	((i % 50 == 49)) && echo "zero $(( (RANDOM * 32768 + RANDOM) % ((1 << 30) - 70000) )) 65536"
	((i % 20 == 19)) && echo flush
done > kill.script
kills=0 bad=0
for round in 1 2 3 4 5 6; do
	"$IMGIO" k.qcow2 - < kill.script 2>/dev/null &
	BGPID=$!
	sleep 0.$((RANDOM % 9 + 1))
	kill -9 "$BGPID" 2>/dev/null
	wait "$BGPID" 2>/dev/null
	if kill -0 "$BGPID" 2>/dev/null; then fail "kill -9: process survived"; fi
	BGPID=
	qemu-img check -q k.qcow2 >check.txt 2>&1; rc=$?
	kills=$((kills + 1))
	if [ $rc -ne 0 ] && [ $rc -ne 3 ]; then bad=$((bad + 1)); cat check.txt | head; fi
done
if [ $bad -eq 0 ]; then pass "kill -9 x$kills: qemu-img check finds no corruption"
else fail "kill -9: $bad of $kills checks found corruption"; fi

cd "$T"
summary
[ $FAIL -eq 0 ]
