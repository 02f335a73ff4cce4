#!/bin/bash
# Garbage collection deletes only what a complete scan proved unreferenced:
# an unreadable record (truncated, corrupt, or too large to read) stops it,
# SR.stat and Plugin.diagnostics say why, SR.ls refuses a partial list, and
# nothing is deleted until the record is repaired.  A killed Volume.resize
# is settled from the image's real size.
# per-plugin
# per-format
. "$(dirname "$0")/lib.sh"

mk_sr || { fail "SR setup"; finish; exit; }
vc() { vcall "$1" "{\"dbg\":\"t\",\"sr\":\"$SR\"${2:+,$2}}"; }
images_ok() { # every image of the SR opens with its whole chain, and is clean
	local f
	for f in "$SR"/images/*.*; do
		case $f in
		*.qcow2) qemu-img check -q -f qcow2 "$f" || return 1 ;;
		# qemu checks no VHD and opens no differencing VHD: our engine
		*.vhd) "$IMGIO" "$f" info >/dev/null || return 1 ;;
		esac
	done
}
reads_5a() { # IMAGE: its first MiB, through its chain, is all 0x5a
	cmp -s <("$IMGIO" "$1" read 0 1M) <(head -c 1M /dev/zero | tr '\0' '\132')
}
reattach() {
	vc SR.detach && [ "$RC" -eq 0 ] || return 1
	vcall SR.attach "{\"dbg\":\"t\",\"configuration\":$CONFIG}"
	[ "$RC" -eq 0 ]
}

# a chain: base <- snapshot S1, volume A on top; clone C shares base
vol_create $((64 << 20)) A; A=$KEY
qemu-io -f "$(vol_qemu_fmt "$A")" -c "write -P 0x5a 0 1M" "$(vol_image "$A")" >/dev/null
vc Volume.snapshot "\"key\":\"$A\""; S1=$(jqr .key)
vc Volume.clone "\"key\":\"$S1\""; C=$(jqr .key)
BASE=$(jq -r .image "$SR/meta/v-$S1.json")
vc Volume.destroy "\"key\":\"$S1\""
expect_ok "destroy the snapshot: its image stays, hidden, under A and C"
NFILES=$(ls "$SR/images" | wc -l)

# 1. a truncated image record of the shared parent
cp "$SR/meta/i-$BASE.json" "$T/saved.json"
head -c 20 "$T/saved.json" > "$SR/meta/i-$BASE.json"
check "SR.detach + SR.attach (garbage collection runs)" reattach
check "no image file was deleted" [ "$(ls "$SR/images" | wc -l)" = "$NFILES" ]
check "A's and C's chains are intact" images_ok
vc SR.stat
check "SR.stat health says why collection stopped" jqt --arg b "i-$BASE.json" '.health[0] == "Unavailable" and (.health[1] | contains($b))' <<<"$OUT"
vc SR.ls
expect_err "SR.ls refuses a partial list (xapi would forget VDIs)" SR_corrupt
vcall Plugin.diagnostics '{"dbg":"t"}'
check "Plugin.diagnostics names the record" jqt --arg b "i-$BASE.json" 'contains($b)' <<<"$OUT"
vol_create $((16 << 20)) other; O=$KEY
vc Volume.destroy "\"key\":\"$O\""
expect_ok "Volume.destroy of another volume still works"
check "...and deletes nothing of the chain" images_ok
cp "$T/saved.json" "$SR/meta/i-$BASE.json"
check "repaired: detach + attach" reattach
vc SR.stat
check "SR.stat is healthy again" jqt '.health[0] == "Healthy"' <<<"$OUT"
vc SR.ls
expect_ok "SR.ls works again"

# 2. a volume record the reader cannot read (too large, written by hand:
#    the plugin itself refuses to write one, see t-xapi-input)
cp "$SR/meta/v-$C.json" "$T/c.json"
head -c 1100000 /dev/zero | tr '\0' x > "$T/big"
jq --rawfile big "$T/big" '.keys.big = $big' "$T/c.json" > "$SR/meta/v-$C.json"
check "C's record is now larger than the reader accepts" [ "$(stat -c %s "$SR/meta/v-$C.json")" -gt 1048576 ]
vc Volume.destroy "\"key\":\"$A\""
expect_ok "Volume.destroy of A while C's record is unreadable"
CIMG=$(jq -r .image "$T/c.json")
check "C's leaf is still there" [ -n "$(ls "$SR/images/$CIMG".* 2>/dev/null)" ]
check "the shared base is still there" [ -n "$(ls "$SR/images/$BASE".* 2>/dev/null)" ]
cp "$T/c.json" "$SR/meta/v-$C.json"
check "repaired: detach + attach" reattach
check "C reads its data" reads_5a "$(vol_image "$C")"

# 3. a Volume.resize killed after the image grew, before the record
if [ "$(jq -r '."image-format"' "$SR/meta/v-$C.json")" = vhd ]; then
	skip "killed resize: VHD volumes cannot be resized"
else
	vcall Volume.resize "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$C\",\"new_size\":$((128 << 20))}"
	expect_ok "a plain resize"
	XSNG_FAULT=resize-after-image vcall Volume.resize "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$C\",\"new_size\":$((256 << 20))}"
	check "the resize was killed mid-way" [ "$RC" -eq 137 ]
	vc Volume.stat "\"key\":\"$C\""
	check "Volume.stat reports the image's real size" jqt ".virtual_size == $((256 << 20))" <<<"$OUT"
	vc SR.ls
	check "SR.ls reports it too" jqt --arg k "$C" ".[] | select(.key == \$k) | .virtual_size == $((256 << 20))" <<<"$OUT"
	vcall Volume.set "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$C\",\"k\":\"x\",\"v\":\"y\"}"
	expect_ok "the next change of the volume"
	check "...settles the record" jqt ".virtual_size == $((256 << 20)) and (has(\"resizing-to\") | not)" < "$SR/meta/v-$C.json"
fi
finish
