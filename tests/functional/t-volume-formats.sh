#!/bin/bash
# Volume.create in each image format, sizes beyond 2 TiB, resize, stat.
# per-plugin
. "$(dirname "$0")/lib.sh"

TIB=$((1024 * 1024 * 1024 * 1024))
for fmt in qcow2 vhd raw; do
	mk_sr ",\"image-format\":\"$fmt\"" || { fail "SR with image-format=$fmt"; continue; }
	qfmt=$fmt; [ $fmt = vhd ] && qfmt=vpc
	vol_create 1073741824 "disk-$fmt"
	expect_ok "Volume.create ($fmt)"
	first=$KEY
	img=$(vol_image "$KEY")
	check "$fmt: image file has format $qfmt" \
		[ "$(qemu-img info --output=json -f $qfmt "$img" | jq -r .format)" = "$qfmt" ]
	check "$fmt: virtual size is exact" \
		[ "$(qemu-img info --output=json -f $qfmt "$img" | jq -r '."virtual-size"')" = 1073741824 ]
	check "$fmt: volume record" jqt --arg k "$KEY" \
		'.key==$k and .uuid==$k and .virtual_size==1073741824 and .read_write==true and .sharable==false and (.physical_utilisation|type=="number") and .keys=={} and (.uri[0]|startswith("ngdp:///"))' <<<"$VOL"
	check "$fmt: URI names the SR and the key" [ "$(jqr '.uri[0]' <<<"$VOL")" = "ngdp://$SR/$KEY" ]
	if [ $fmt = qcow2 ]; then
		check "$fmt: qemu-img check clean" qemu-img check -q -f $qfmt "$img"
	elif [ $fmt = vhd ]; then
		# qemu-img cannot check VHD; libvhdi parses it independently
		check "$fmt: vhdiinfo reads it, 1 GiB" bash -c "vhdiinfo '$img' | grep -q 'Media size.*1073741824'"
	fi
	# odd sizes round up to whole 512-byte sectors
	vol_create 1000000001 odd
	expect_ok "$fmt: odd size"
	check "$fmt: odd size rounded up to a sector" jqt '.virtual_size==1000000512' <<<"$VOL"

	if [ $fmt = vhd ]; then
		vol_create $((3 * TIB)) huge
		expect_err "vhd: 3 TiB is beyond VHD's 2040 GiB" Invalid_argument
		vol_create $((2040 * 1024 * 1024 * 1024)) max
		expect_ok "vhd: 2040 GiB works"
	else
		vol_create $((3 * TIB)) huge
		expect_ok "$fmt: 3 TiB volume"
		check "$fmt: 3 TiB virtual size" jqt ".virtual_size==$((3 * TIB))" <<<"$VOL"
		check "$fmt: 3 TiB image is thin" [ "$(jqr .physical_utilisation <<<"$VOL")" -lt $((64 * 1024 * 1024)) ]
		big=$KEY
		vcall Volume.resize "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$big\",\"new_size\":$((5 * TIB))}"
		expect_ok "$fmt: grow to 5 TiB"
		vcall Volume.stat "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$big\"}"
		check "$fmt: stat shows 5 TiB" jqt ".virtual_size==$((5 * TIB))" <<<"$OUT"
		check "$fmt: image is 5 TiB" [ "$(qemu-img info --output=json -f $qfmt "$(vol_image $big)" | jq '."virtual-size"')" = $((5 * TIB)) ]
		vcall Volume.resize "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$big\",\"new_size\":$TIB}"
		expect_err "$fmt: shrink refused" VDI_invalid_size
		vcall Volume.stat "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$big\"}"
		check "$fmt: size unchanged after refused shrink" jqt ".virtual_size==$((5 * TIB))" <<<"$OUT"
	fi
	vcall Volume.destroy "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$first\"}"
	expect_ok "$fmt: Volume.destroy"
	check "$fmt: its image file is gone" [ ! -e "$img" ]
	vcall Volume.stat "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$first\"}"
	expect_err "$fmt: stat of a destroyed volume" Volume_does_not_exist
	vcall SR.detach "{\"dbg\":\"t\",\"sr\":\"$SR\"}"
	expect_ok "$fmt: SR.detach"
done
finish
