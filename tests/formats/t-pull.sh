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
	{ (XSNG_FAULT=$fp exec "$IMGIO" --format qcow2 k-top.qcow2 pull >/dev/null 2>&1); } 2>/dev/null
	check "qcow2 kill at $fp: killed there" [ $? = 137 ]
	check_after "qcow2 kill at $fp" qcow2 k-top.qcow2 k-mid.qcow2 k.ref
	check "qcow2 kill at $fp: pull again" "$IMGIO" --format qcow2 k-top.qcow2 pull
	check_after "qcow2 kill at $fp, pulled again" qcow2 k-top.qcow2 k-base.qcow2 k.ref
done

# --------------------------------------------------------------- VHD

# vhd_parent IMG: "none" for a dynamic image, else "NAME UUID" of the
# parent its header names (unicode name, parent uuid), parsed here from
# the footer (at the end, else the copy at 0, as the engine and blktap
# read it: both valid must agree) and the dynamic header, checksums
# included; exits 1 on anything invalid.  vhd_uuid IMG: its footer uuid.
cat > vhdparent.py <<'PY'
import struct, sys

def valid_footer(b):
    if len(b) != 512 or b[:8] != b"conectix":
        return None
    s = (~(sum(b[:64]) + sum(b[68:]))) & 0xffffffff
    return b if s == struct.unpack(">I", b[64:68])[0] else None

mode, path = sys.argv[1], sys.argv[2]
f = open(path, "rb").read()
end, copy = valid_footer(f[-512:]), valid_footer(f[:512])
ft = end or copy
if ft is None or (end and copy and (end[60:64] != copy[60:64] or end[68:84] != copy[68:84])):
    sys.exit(1)
kind = struct.unpack(">I", ft[60:64])[0]
if mode == "uuid":
    print(ft[68:84].hex())
    sys.exit(0)
if kind == 3:
    print("none")
    sys.exit(0)
if kind != 4:
    sys.exit(1)
off = struct.unpack(">Q", ft[16:24])[0]
h = f[off:off + 1024]
s = (~(sum(h[:36]) + sum(h[40:]))) & 0xffffffff
if len(h) != 1024 or h[:8] != b"cxsparse" or s != struct.unpack(">I", h[36:40])[0]:
    sys.exit(1)
print(h[64:576].decode("utf-16-be").split("\0")[0], h[40:56].hex())
PY
vhd_parent() { python3 vhdparent.py parent "$1"; }
vhd_uuid() { python3 vhdparent.py uuid "$1"; }
# vhd_parent_is IMG PARENT|"": the header names PARENT with its uuid.
vhd_parent_is() {
	local got want=none
	got=$(vhd_parent "$1") || return 1
	[ -n "$2" ] && want="$2 $(vhd_uuid "$2")"
	[ "$got" = "$want" ]
}

HAVE_VHDI=1
command -v vhdimount >/dev/null && [ -c /dev/fuse ] || HAVE_VHDI=0
# libvhdi's view of the chain of IMG equals RAW (an independent reader;
# libvhdi mixes child and parent sectors wrongly inside one 4 KiB page,
# so only 4 KiB-aligned chains are checked with it).
vhdi_equals() {
	local m="$T/mnt-$RANDOM" f r
	mkdir -p "$m"
	vhdimount "$1" "$m" >/dev/null 2>&1 || { rmdir "$m"; return 1; }
	f=$(ls "$m" | sort -V | tail -1)
	cmp -s "$m/$f" "$2"; r=$?
	umount "$m"; rmdir "$m"
	return $r
}

imgio() { run "$IMGIO" --format vpc "$@"; }

# base (dynamic) <- mid <- top, made by the engine's VHD writer; ALIGNED 0
# adds sector-sized writes that are not 4 KiB-aligned, partial sectors
# included (bitmaps with mixed bits inside one block and one page).
mk_vhd_chain() {
	local p=$1 aligned=$2
	run "$TOOL" create-dynamic $p-base.vhd $((64 * M)) &&
		run "$TOOL" create-diff $p-mid.vhd $p-base.vhd &&
		run "$TOOL" create-diff $p-top.vhd $p-mid.vhd || return 1
	printf '%s\n' "write-pattern 0 8M 0x11" "write-pattern 20M 3M 0x12" \
		"write-pattern 60M 4M 0x13" | imgio $p-base.vhd - || return 1
	printf '%s\n' "write-pattern 1M 2M 0x21" "zero 4M 1M" \
		"write-pattern 7M 64K 0x22" "write-pattern 30M 100K 0x23" \
		"write-pattern 40M 4K 0x24" | imgio $p-mid.vhd - || return 1
	printf '%s\n' "write-pattern 1536K 1M 0x31" "write-pattern 7M 4K 0x32" \
		"write-pattern 30M 12K 0x34" | imgio $p-top.vhd - || return 1
	[ $aligned = 1 ] && return 0
	printf '%s\n' "write-pattern 5000 3000 0x25" "write-pattern 41M 512 0x26" \
		"write-pattern 41M+1536 2000 0x27" | sed 's/41M+1536/42993152/' |
		imgio $p-mid.vhd - || return 1
	printf '%s\n' "write-pattern 6144 700 0x33" "write-pattern 42992640 512 0x35" |
		imgio $p-top.vhd -
}

# vhd_pull_ok TAG TOP NEWPARENT|"" ALIGNED
vhd_pull_ok() {
	local tag=$1 top=$2 nb=$3 aligned=$4
	"$IMGIO" --readonly --format vpc "$top" read 0 $((64 * M)) > "$tag.ref" ||
		{ ko "setup: read $top"; return; }
	if [ $aligned = 1 ] && [ $HAVE_VHDI = 1 ]; then
		check "$tag: libvhdi agrees with the engine before" vhdi_equals "$top" "$tag.ref"
	fi
	check "$tag: ngdp-imgio pull" "$IMGIO" --format vpc "$top" pull
	vhd_check_after "$tag" "$top" "$nb" "$tag.ref" $aligned
}

vhd_check_after() {
	local tag=$1 top=$2 nb=$3 ref=$4 aligned=$5
	check "$tag: the header names parent '$nb'" vhd_parent_is "$top" "$nb"
	check "$tag: ngdp-imgio reads the same" \
		bash -c "'$IMGIO' --readonly --format vpc '$top' read 0 $((64 * M)) | cmp -s - '$ref'"
	if [ -z "$nb" ]; then
		check "$tag: qemu-img compare with the content before" \
			qemu-img compare -q -f vpc -F raw "$top" "$ref"
	fi
	if [ $aligned = 1 ] && [ $HAVE_VHDI = 1 ]; then
		check "$tag: libvhdi reads the same" vhdi_equals "$top" "$ref"
	fi
}

for aligned in 1 0; do
	rm -f v-*
	if mk_vhd_chain v $aligned; then
		vhd_pull_ok "vhd 3 levels (aligned $aligned)" v-top.vhd v-base.vhd $aligned
		vhd_pull_ok "vhd 2 levels (aligned $aligned)" v-top.vhd "" $aligned
		check "vhd (aligned $aligned): pull of a dynamic image fails" \
			bash -c "! '$IMGIO' --format vpc v-top.vhd pull 2>/dev/null"
	fi
done
[ $HAVE_VHDI = 1 ] || echo "SKIP: libvhdi oracle (libvhdi-utils or /dev/fuse missing)"

# kill -9 at every step of the header rewrite, to a new parent and to
# none: the image names the old or the new parent, reads the same, and a
# new pull (when the old parent is still named) finishes the job.
for fp in imgio-pull-before-skip vhd-set-backing-mid vhd-set-backing-copy; do
	for levels in 3 2; do
		tag="vhd kill at $fp ($levels levels)"
		rm -f k-*
		mk_vhd_chain k 0 || continue
		old=k-mid.vhd new=k-base.vhd
		if [ $levels = 2 ]; then
			run "$IMGIO" --format vpc k-top.vhd pull || continue
			old=k-base.vhd new=
		fi
		"$IMGIO" --readonly --format vpc k-top.vhd read 0 $((64 * M)) > k.ref ||
			{ ko "setup: read k-top.vhd"; continue; }
		{ (XSNG_FAULT=$fp exec "$IMGIO" --format vpc k-top.vhd pull >/dev/null 2>&1); } 2>/dev/null
		check "$tag: killed there" [ $? = 137 ]
		if vhd_parent_is k-top.vhd "$old"; then
			check_name="old parent"
		elif vhd_parent_is k-top.vhd "$new"; then
			check_name="new parent"
		else
			ko "$tag: the header names neither the old nor the new parent"
			continue
		fi
		ok "$tag: the header names the $check_name"
		check "$tag: ngdp-imgio reads the same" \
			bash -c "'$IMGIO' --readonly --format vpc k-top.vhd read 0 $((64 * M)) | cmp -s - k.ref"
		if [ "$check_name" = "old parent" ]; then
			check "$tag: pull again" "$IMGIO" --format vpc k-top.vhd pull
		fi
		vhd_check_after "$tag, finished" k-top.vhd "$new" k.ref 0
		check "$tag: writable afterwards" \
			"$IMGIO" --format vpc k-top.vhd write-pattern 50M 3M 0x77
	done
done

echo "t-pull.sh: $PASS passed, $FAIL failed"
[ $FAIL = 0 ]
