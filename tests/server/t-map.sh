#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-only
# nbdinfo --map (base:allocation through ngdp-server) equals qemu-img map.
. "$(dirname "$0")/lib.sh"

# normalise "qemu-img map --output=json" to "start length state" runs;
# state: data, zero (allocated zeros) or hole (unallocated, reads zero)
norm_qemu() {
	qemu-img map -f "$1" --output=json "$2" | tr -d '[]' | tr '}' '\n' |
	sed -n 's/.*"start": *\([0-9]*\), *"length": *\([0-9]*\).*"present": *\([a-z]*\), *"zero": *\([a-z]*\), *"data": *\([a-z]*\).*/\1 \2 \3 \4 \5/p' |
	awk -v raw="$3" '{
		if ($5 == "true") s = "data";
		else if ($4 == "true") s = (raw || $3 == "false") ? "hole" : "zero";
		else s = "data";
		print $1, $2, s }' | merge
}
norm_nbd() {
	nbdinfo --map "$1" | awk -v raw="$2" '{
		t = $3;
		if (t == 0 || t == 1) s = "data";
		else if (t == 3 || raw) s = "hole";
		else s = "zero";
		print $1, $2, s }' | merge
}
merge() {
	awk 'NR > 1 && $3 == s && $1 == st + len { len += $2; next }
	     NR > 1 { print st, len, s }
	     { st = $1; len = $2; s = $3 }
	     END { if (NR) print st, len, s }'
}

compare_map() {
	local name=$1 fmt=$2 img=$3 raw=$4
	norm_qemu "$fmt" "$img" "$raw" >"$T/$name.qemu"
	start_server "$name" --image "$img" --readonly || return 1
	norm_nbd "$(uri "$name")" "$raw" >"$T/$name.nbd"
	stop_server "$SERVER_PID" || return 1
	# a failed qemu-img map or nbdinfo leaves its side empty
	[ -s "$T/$name.qemu" ] && [ -s "$T/$name.nbd" ] || { echo "empty map"; return 1; }
	diff -u "$T/$name.qemu" "$T/$name.nbd"
}

# raw, sparse (for raw files holes and zeros are both "hole")
truncate -s 64M "$T/sparse.raw"
check "raw sparse: data written" qemu-io -f raw "$T/sparse.raw" -c "write -P 1 0 1M" \
	-c "write -P 2 5M 3M" -c "write -P 3 40M 64k"
check "raw sparse: nbdinfo --map == qemu-img map" compare_map sparse raw "$T/sparse.raw" 1

# qcow2: backing data, top data, zero clusters, holes, compressed
qemu-img create -q -f qcow2 "$T/base.qcow2" 64M
check "qcow2 chain: base written" qemu-io -f qcow2 "$T/base.qcow2" -c "write -P 1 0 4M" \
	-c "write -P 2 20M 2M" -c "write -z 30M 1M"
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 "$T/top.qcow2"
check "qcow2 chain: top written" qemu-io -f qcow2 "$T/top.qcow2" -c "write -P 3 1M 1M" \
	-c "write -z 2M 512k" -c "write -P 4 10M 192k" -c "write -z 21M 64k" -c "discard 22M 1M"
check "qcow2 chain: nbdinfo --map == qemu-img map" compare_map chain qcow2 "$T/top.qcow2" ""

truncate -s 16M "$T/c.raw"
check "qcow2 compressed: data written" qemu-io -f raw "$T/c.raw" -c "write -P 5 0 2M" -c "write -P 6 8M 1M"
qemu-img convert -c -O qcow2 "$T/c.raw" "$T/c.qcow2"
check "qcow2 compressed: nbdinfo --map == qemu-img map" compare_map comp qcow2 "$T/c.qcow2" ""
finish
