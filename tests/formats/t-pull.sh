#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-only
# Live coalesce in the engine (issue 13): `ngdp-imgio IMG pull` copies the
# backing file's own data into IMG (image_pull_backing) and makes the
# backing's backing IMG's backing file (image_skip_backing).  Chains are
# built by qemu-img/qemu-io (qcow2) and vhd-tool (VHD: qemu cannot make
# differencing VHDs); the content before the pull is the reference, and
# qemu-img (info, check, compare) judges the result by exit status.
# Also kill -9 at the fault points between and inside the steps.
# A test program (tests/README.md): exit 0 pass, 1 fail, 77 skip.
set -u

B=${B:-build}
TOP=$(cd "$(dirname "$0")/../.." && pwd)
case $B in /*) BD=$B ;; *) BD=$TOP/$B ;; esac
IMGIO=${IMGIO:-$BD/ngdp-imgio}
TOOL=${VHD_TOOL:-$BD/tests/formats/vhd-tool}
PASS=0 FAIL=0
M=$((1 << 20))

ok() { PASS=$((PASS + 1)); echo "PASS: $*"; }
ko() { FAIL=$((FAIL + 1)); echo "FAIL: $*"; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else ko "$name"; fi; }

for t in qemu-img qemu-io python3; do
	command -v $t >/dev/null ||
		{ echo "SKIP: $t not installed (Debian packages qemu-utils, python3)"; exit 77; }
done
for t in "$IMGIO" "$TOOL"; do
	[ -x "$t" ] || { echo "FAIL: missing $t (run make)"; exit 1; }
done

T=$(mktemp -d /var/tmp/test-pull.XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1

# A failed setup step is a failed test, never ignored.
run() { "$@" >setup.out 2>&1 || { ko "setup: $*"; head -5 setup.out; return 1; }; }
qio() { run qemu-io -f "$@"; }

# backing_is IMG NAME: qemu-img's view of IMG's backing file ("" = none).
backing_is() {
	local got
	got=$(qemu-img info --output=json "$1" | python3 -c \
		'import json, sys; print(json.load(sys.stdin).get("backing-filename", ""))') ||
		return 1
	[ "$got" = "$2" ]
}

# pull_ok TAG FMT TOP NEWBACKING: pull, then the chain, the image and its
# content must be right.  FMT qcow2: qemu-img check too.
pull_ok() {
	local tag=$1 fmt=$2 top=$3 nb=$4
	run qemu-img convert -f $fmt -O raw "$top" "$tag.ref" || return
	check "$tag: ngdp-imgio pull" "$IMGIO" --format $fmt "$top" pull
	check_after "$tag" $fmt "$top" "$nb" "$tag.ref"
}

check_after() {
	local tag=$1 fmt=$2 top=$3 nb=$4 ref=$5
	check "$tag: backing file is now '$nb'" backing_is "$top" "$nb"
	if [ $fmt = qcow2 ]; then
		check "$tag: qemu-img check" qemu-img check -q -f qcow2 "$top"
	fi
	check "$tag: qemu-img compare with the content before" \
		qemu-img compare -q -F $fmt "$ref" "$top"
	check "$tag: ngdp-imgio reads the same" \
		bash -c "'$IMGIO' --readonly --format $fmt '$top' read 0 \$(stat -c %s '$ref') | cmp -s - '$ref'"
}

# ------------------------------------------------------------- qcow2

# base <- mid <- top, overlapping patterns, allocated zeros in mid over
# base data, a compressed cluster in mid, unaligned small writes.
mk_qcow2_chain() {
	local p=$1 topopts=${2:-}
	run qemu-img create -q -f qcow2 $p-base.qcow2 64M || return 1
	run qemu-img create -q -f qcow2 -o cluster_size=4096 -b $p-base.qcow2 -F qcow2 $p-mid.qcow2 || return 1
	run qemu-img create -q -f qcow2 $topopts -b $p-mid.qcow2 -F qcow2 $p-top.qcow2 || return 1
	qio qcow2 -c "write -P 0x11 0 8M" -c "write -P 0x12 20M 3M" \
		-c "write -P 0x13 60M 4M" $p-base.qcow2 || return 1
	qio qcow2 -c "write -P 0x21 1M 2M" -c "write -z 4M 1M" \
		-c "write -P 0x22 7M 64k" -c "write -c -P 0x24 21M 4k" \
		-c "write -P 0x23 30M 100k" -c "write -P 0x25 5000 3000" \
		-c "write -z 62M 4k" $p-mid.qcow2 || return 1
	qio qcow2 -c "write -P 0x31 1536k 1M" -c "write -P 0x32 7M 4k" \
		-c "write -P 0x33 30M 10k" -c "write -z 21M 2k" \
		$p-top.qcow2 || return 1
}

if mk_qcow2_chain q; then
	pull_ok "qcow2 3 levels" qcow2 q-top.qcow2 q-base.qcow2
	pull_ok "qcow2 2 levels" qcow2 q-top.qcow2 ""
	check "qcow2: pull without a backing file fails" \
		bash -c "! '$IMGIO' --format qcow2 q-top.qcow2 pull 2>/dev/null"
fi

# top with bigger clusters (partial-cluster copy-on-write), then with
# subclusters (extended L2)
for opts in "-o cluster_size=131072" "-o extended_l2=on,cluster_size=65536"; do
	tag="qcow2 top ${opts#-o }"
	mk_qcow2_chain c "$opts" && pull_ok "$tag" qcow2 c-top.qcow2 c-base.qcow2
	rm -f c-*
done

# top larger than mid after a resize: nothing to pull past mid's end
if mk_qcow2_chain r; then
	run qemu-img resize -q -f qcow2 r-top.qcow2 96M &&
		qio qcow2 -c "write -P 0x41 63M 2M" -c "write -P 0x42 90M 1M" r-top.qcow2 &&
		pull_ok "qcow2 resized top" qcow2 r-top.qcow2 r-base.qcow2
fi

# a raw image at the bottom: the backing format extension says raw
if run qemu-img create -q -f raw w-base.raw 16M &&
	qio raw -c "write -P 0x51 0 16M" w-base.raw &&
	run qemu-img create -q -f qcow2 -b w-base.raw -F raw w-mid.qcow2 &&
	run qemu-img create -q -f qcow2 -b w-mid.qcow2 -F qcow2 w-top.qcow2 &&
	qio qcow2 -c "write -P 0x52 1M 3M" -c "write -z 8M 1M" w-mid.qcow2 &&
	qio qcow2 -c "write -P 0x53 2M 64k" w-top.qcow2; then
	pull_ok "qcow2 over raw" qcow2 w-top.qcow2 w-base.raw
	check "qcow2 over raw: backing format is raw" bash -c \
		"qemu-img info --output=json w-top.qcow2 | python3 -c 'import json, sys; sys.exit(json.load(sys.stdin).get(\"backing-filename-format\") != \"raw\")'"
fi

# kill -9 between the pull and the header rewrite, and inside the rewrite:
# the image still checks clean, reads the same, and a new pull finishes.
for fp in imgio-pull-before-skip qcow2-set-backing-mid; do
	rm -f k-*
	mk_qcow2_chain k || continue
	run qemu-img convert -f qcow2 -O raw k-top.qcow2 k.ref || continue
	XSNG_FAULT=$fp "$IMGIO" --format qcow2 k-top.qcow2 pull >/dev/null 2>&1
	check "qcow2 kill at $fp: killed there" [ $? = 137 ]
	check_after "qcow2 kill at $fp" qcow2 k-top.qcow2 k-mid.qcow2 k.ref
	check "qcow2 kill at $fp: pull again" "$IMGIO" --format qcow2 k-top.qcow2 pull
	check_after "qcow2 kill at $fp, pulled again" qcow2 k-top.qcow2 k-base.qcow2 k.ref
done

echo "t-pull.sh: $PASS passed, $FAIL failed"
[ $FAIL = 0 ]
