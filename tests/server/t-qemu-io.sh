#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-only
# Seeded random qemu-io workloads through ngdp-server compared with the same
# workload applied by qemu-io directly to a copy of the image.
. "$(dirname "$0")/lib.sh"

SIZE=$((64 * 1024 * 1024))

# make_IMAGE DIR: create the image(s) in DIR, echo "FORMAT TOPFILE" (no
# output when qemu-io failed: run_variant then fails "create")
make_raw() {
	truncate -s $SIZE "$1/img"
	qemu-io -f raw "$1/img" -c "write -P 7 1M 3M" >/dev/null || return 1
	echo "raw img"
}
make_qcow2() {
	qemu-img create -q -f qcow2 "$1/img" $SIZE
	echo "qcow2 img"
}
make_qcow2_prealloc() {
	qemu-img create -q -f qcow2 -o preallocation=metadata "$1/img" $SIZE
	echo "qcow2 img"
}
make_qcow2_chain() {
	local i prev=base.qcow2
	qemu-img create -q -f qcow2 "$1/base.qcow2" $SIZE
	qemu-io -f qcow2 "$1/base.qcow2" -c "write -P 1 0 8M" >/dev/null || return 1
	for ((i = 1; i < 10; i++)); do
		(cd "$1" && qemu-img create -q -f qcow2 -b $prev -F qcow2 l$i.qcow2)
		qemu-io -f qcow2 "$1/l$i.qcow2" \
			-c "write -P $((i + 1)) $((i * 3))M 2M" \
			-c "write -z $((i * 5))M 1M" >/dev/null || return 1
		prev=l$i.qcow2
	done
	mv "$1/$prev" "$1/img"
	echo "qcow2 img"
}
make_qcow2_compressed() {
	truncate -s $SIZE "$1/src.raw"
	qemu-io -f raw "$1/src.raw" -c "write -P 9 0 16M" \
		-c "write -P 10 32M 4M" >/dev/null || return 1
	qemu-img convert -c -O qcow2 "$1/src.raw" "$1/img"
	rm -f "$1/src.raw"
	echo "qcow2 img"
}
make_vpc() {
	qemu-img create -q -f vpc -o subformat=dynamic,force_size=on "$1/img" $SIZE
	qemu-io -f vpc "$1/img" -c "write -P 3 2M 3M" >/dev/null || return 1
	echo "vpc img"
}

run_variant() {
	local v=$1 seed=$2 fmt top a=$T/$1.a b=$T/$1.b
	mkdir -p "$a"
	read -r fmt top < <(make_$v "$a") || { fail "$v: create"; return; }
	cp -a "$a" "$b"
	gen_workload "$seed" $SIZE 150 >"$T/$v.cmds"
	if ! start_server "$v" --image "$a/$top" --format "$fmt" --flush-interval 200; then
		fail "$v: server start"
		return
	fi
	check "$v: qemu-io workload over NBD" run_qemu_io raw "$(uri "$v")" "$T/$v.cmds"
	# a second connection, different seed, with structured reads
	gen_workload $((seed + 1)) $SIZE 100 >"$T/$v.cmds2"
	check "$v: second workload over NBD" run_qemu_io raw "$(uri "$v")" "$T/$v.cmds2"
	check "$v: server exits 0 on SIGTERM" stop_server "$SERVER_PID"
	run_qemu_io "$fmt" "$b/$top" "$T/$v.cmds" && run_qemu_io "$fmt" "$b/$top" "$T/$v.cmds2" ||
		fail "$v: direct qemu-io workload"
	check "$v: same content as qemu-io direct" \
		qemu-img compare -f "$fmt" -F "$fmt" "$a/$top" "$b/$top"
	if [ "$fmt" = qcow2 ]; then
		check "$v: qemu-img check" qemu-img check -f "$fmt" "$a/$top"
	fi
	rm -rf "$a" "$b"
}

run_variant raw 101
run_variant qcow2 202
run_variant qcow2_prealloc 303
run_variant qcow2_chain 404
run_variant qcow2_compressed 505
# VHD differencing: qemu cannot open those, so the reference is a raw
# copy of the parent's content with the workloads applied by qemu-io, and
# the result is read back through a fresh ngdp-server.
run_vpc_diff() {
	local d=$T/vd
	mkdir -p "$d"
	qemu-img create -q -f vpc -o subformat=dynamic,force_size=on "$d/parent.vhd" $SIZE
	qemu-io -f vpc "$d/parent.vhd" -c "write -P 3 2M 3M" -c "write -P 4 40M 1M" >/dev/null ||
		{ fail "vpc_diff: write the parent"; return; }
	qemu-img convert -f vpc -O raw "$d/parent.vhd" "$d/ref.raw"
	if ! (cd "$d" && "$NGDP_VHD_TOOL" create-diff child.vhd parent.vhd); then
		fail "vpc_diff: create the differencing image"
		return
	fi
	gen_workload 707 $SIZE 150 >"$T/vd.cmds"
	start_server vd --image "$d/child.vhd" || { fail "vpc_diff: start"; return; }
	check "vpc_diff: qemu-io workload over NBD" run_qemu_io raw "$(uri vd)" "$T/vd.cmds"
	check "vpc_diff: server exits 0 on SIGTERM" stop_server "$SERVER_PID"
	run_qemu_io raw "$d/ref.raw" "$T/vd.cmds" || fail "vpc_diff: direct workload"
	start_server vd2 --image "$d/child.vhd" --readonly || { fail "vpc_diff: restart"; return; }
	check "vpc_diff: same content as the raw reference" \
		qemu-img compare -f raw -F raw "$d/ref.raw" "$(uri vd2)"
	check "vpc_diff: parent unchanged" \
		qemu-io -r -f vpc "$d/parent.vhd" -c "read -P 3 2M 3M"
	check "vpc_diff: server exits 0" stop_server "$SERVER_PID"
	rm -rf "$d"
}

if have_vhd; then
	run_variant vpc 606
	if [ -x "${NGDP_VHD_TOOL:-}" ]; then
		run_vpc_diff
	else
		skip "VHD differencing: no vhd-tool (NGDP_VHD_TOOL) to create one"
	fi
else
	skip "VHD: src/formats/vhd.c is not there yet"
fi
finish
