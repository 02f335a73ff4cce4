#!/bin/bash
# Snapshot and clone keep content: data written through qemu-io before and
# after is where it should be; destroying a parent never breaks dependants;
# images are freed once nothing needs them.
# per-plugin
. "$(dirname "$0")/lib.sh"

# Pattern I/O on a volume's image, offline, through qemu-io (qcow2, raw)
# or our ngdp-imgio ($IMGIO: qemu cannot read VHD differencing images).
write() { vol_file_write "$@"; }
reads() { vol_file_reads "$@"; }
stat_vol() { vcall Volume.stat "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$1\"}"; }
destroy() { vcall Volume.destroy "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$1\"}"; }
# both CMD1... -- CMD2...: both commands succeed (run in this shell, so
# that the helpers above exist; a "bash -c" would not see them)
both() {
	local a=()
	while [ "$1" != -- ]; do a+=("$1"); shift; done
	shift
	"${a[@]}" && "$@"
}
check_images() {
	local f ok=0
	for f in "$SR"/images/*.qcow2; do
		[ -e "$f" ] || continue
		qemu-img check -q -f qcow2 "$f" || ok=1
	done
	for f in "$SR"/images/*.vhd; do
		[ -e "$f" ] || continue
		vhdiinfo "$f" >/dev/null 2>&1 || ok=1
	done
	return $ok
}
export IMGIO

for fmt in qcow2 raw vhd; do
	mk_sr ",\"image-format\":\"$fmt\"" || { fail "SR setup ($fmt)"; continue; }
	vol_create $((1024 * 1024 * 1024)) "base $fmt"
	V=$KEY
	check "$fmt: write A at 0 and C at 512M" both write "$V" 0xa1 0 1M -- write "$V" 0xc3 512M 64K

	vcall Volume.snapshot "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$V\"}"
	expect_ok "$fmt: Volume.snapshot"
	S=$(jqr .key)
	check "$fmt: snapshot is read-only, same size, new key" jqt --arg v "$V" \
		'.read_write==false and .virtual_size==1073741824 and .key!=$v' <<<"$OUT"
	stat_vol "$V"
	check "$fmt: the original keeps its key and stays writable" jqt '.read_write==true' <<<"$OUT"
	check "$fmt: write B over A in the original" write "$V" 0xb2 0 1M
	check "$fmt: snapshot still reads A" reads "$S" 0xa1 0 1M
	check "$fmt: original reads B" reads "$V" 0xb2 0 1M
	# (the snapshot reads A just above: this fails on the pattern only)
	check "$fmt: (control) snapshot does not read B" eval '! reads "$S" 0xb2 0 1M >/dev/null'
	check "$fmt: both read C" both reads "$S" 0xc3 512M 64K -- reads "$V" 0xc3 512M 64K
	check "$fmt: qemu-img check clean on every image" check_images

	vcall Volume.clone "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$V\"}"
	expect_ok "$fmt: Volume.clone of a writable volume"
	C=$(jqr .key)
	check "$fmt: clone is writable" jqt '.read_write==true' <<<"$OUT"
	check "$fmt: clone reads B" reads "$C" 0xb2 0 1M
	check "$fmt: write D into the clone" write "$C" 0xd4 0 1M
	check "$fmt: original still reads B" reads "$V" 0xb2 0 1M
	check "$fmt: snapshot still reads A" reads "$S" 0xa1 0 1M

	vcall Volume.clone "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$S\"}"
	expect_ok "$fmt: Volume.clone of a snapshot"
	C2=$(jqr .key)
	check "$fmt: clone of the snapshot reads A" reads "$C2" 0xa1 0 1M
	vcall Volume.snapshot "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$S\"}"
	expect_ok "$fmt: snapshot of a snapshot"
	S2=$(jqr .key)
	check "$fmt: it reads A" reads "$S2" 0xa1 0 1M

	# destroying parents must never break dependants
	destroy "$V"
	expect_ok "$fmt: destroy the snapshot's parent volume"
	check "$fmt: snapshot still reads A after its parent went" reads "$S" 0xa1 0 1M
	check "$fmt: clone still reads D and C" both reads "$C" 0xd4 0 1M -- reads "$C" 0xc3 512M 64K
	destroy "$S"
	expect_ok "$fmt: destroy the snapshot"
	check "$fmt: snapshot of the snapshot still reads A" reads "$S2" 0xa1 0 1M
	check "$fmt: clone of the snapshot still reads A" reads "$C2" 0xa1 0 1M
	check "$fmt: images still clean" check_images
	vcall SR.ls "{\"dbg\":\"t\",\"sr\":\"$SR\"}"
	check "$fmt: SR.ls shows exactly the 3 live volumes" jqt --arg a "$C" --arg b "$C2" --arg c "$S2" \
		'map(.key) | sort == ([$a,$b,$c] | sort)' <<<"$OUT"
	vcall Plugin.diagnostics '{"dbg":"t"}'
	check "$fmt: diagnostics counts hidden images" jqt 'test("hidden images")' <<<"$OUT"
	for k in "$C" "$C2" "$S2"; do destroy "$k"; done
	check "$fmt: everything freed once no volume needs it" \
		[ -z "$(ls -A "$SR/images")" -a -z "$(ls -A "$SR/meta")" ]

	# A snapshot's new leaf takes its size from the volume's record
	# (qemu-img create -u, so that it does not open the whole chain):
	# after a resize on a 3-deep chain, the leaf has the new size (VHD
	# volumes cannot be resized, and their leaves are our own VHDs)
	[ "$fmt" = vhd ] || {
	vol_create $((64 * 1024 * 1024)) "grow $fmt"
	G=$KEY
	for i in 1 2; do vcall Volume.snapshot "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$G\"}"; done
	vcall Volume.resize "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$G\",\"new_size\":$((128 * 1024 * 1024))}"
	expect_ok "$fmt: resize to 128 MiB"
	vcall Volume.snapshot "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$G\"}"
	expect_ok "$fmt: snapshot after the resize"
	check "$fmt: the new leaf's virtual size is the resized one" \
		[ "$(qemu-img info --output=json -f qcow2 "$(vol_image "$G")" | jq '."virtual-size"')" = $((128 * 1024 * 1024)) ]
	stat_vol "$G"
	check "$fmt: Volume.stat says 128 MiB" jqt '.virtual_size == 134217728' <<<"$OUT"
	check "$fmt: images clean after the resize and snapshot" check_images
	vcall SR.ls "{\"dbg\":\"t\",\"sr\":\"$SR\"}"
	for k in $(jq -r '.[].key' <<<"$OUT"); do destroy "$k"; done
	}
	vcall SR.detach "{\"dbg\":\"t\",\"sr\":\"$SR\"}"
done
finish
