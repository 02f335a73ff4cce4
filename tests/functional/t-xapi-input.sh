#!/bin/bash
# Input as xapi really sends it: free-text tags copied by VDI.snapshot as
# Volume.set keys ("tags"^tag), multi-line UTF-8 names and descriptions
# (XenCenter, imported VMs), zero-size volumes (xapi-storage-script's own
# self-test), and error records that stay valid UTF-8 JSON whatever bytes
# the input held.
# per-plugin
. "$(dirname "$0")/lib.sh"

mk_sr || { fail "SR setup"; finish; exit; }
# valid UTF-8 JSON string value: jq -R reads it raw and must not fail
is_utf8() { iconv -f UTF-8 -t UTF-8 >/dev/null 2>&1; }
vset() { # KEY K V (JSON-encoded by jq)
	vcall Volume.set "$(jq -cn --arg sr "$SR" --arg key "$1" --arg k "$2" --arg v "$3" \
		'{dbg:"t",sr:$sr,key:$key,k:$k,v:$v}')"
}

DESC=$'Imported from OVA\n\tline 2: caf\u00e9 \u2713\r\nend'
vcall Volume.create "$(jq -cn --arg sr "$SR" --arg d "$DESC" \
	'{dbg:"t",sr:$sr,name:"web01 — disk 0",description:$d,size:67108864,sharable:false}')"
expect_ok "Volume.create with a multi-line UTF-8 description"
K=$(jqr .key)
check "the description comes back byte for byte" jqt --arg d "$DESC" '.description == $d' <<<"$OUT"

for tag in "my backup tag" "é-ü" "tag/with/../slashes" "a:b=c;d"; do
	vset "$K" "tags$tag" "$tag"
	expect_ok "Volume.set of the tag key 'tags$tag'"
done
vcall Volume.snapshot "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$K\"}"
expect_ok "Volume.snapshot of a tagged volume"
S=$(jqr .key)
# xapi copies the tags onto the snapshot the same way
for tag in "my backup tag" "é-ü"; do
	vset "$S" "tags$tag" "$tag"
	expect_ok "tag '$tag' copied onto the snapshot"
done
vcall Volume.stat "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$S\"}"
check "the snapshot's keys hold the free-text tags" jqt '.keys["tagsmy backup tag"] == "my backup tag" and .keys["tagsé-ü"] == "é-ü"' <<<"$OUT"
check "no file was made from a key" [ ! -e "$SR/meta/slashes" ] && [ -z "$(find "$SR" -name '*slashes*')" ]

vcall Volume.set_description "$(jq -cn --arg sr "$SR" --arg k "$K" --arg d $'two\nlines' '{dbg:"t",sr:$sr,key:$k,new_description:$d}')"
expect_ok "Volume.set_description with a newline"
vcall SR.set_description "$(jq -cn --arg sr "$SR" --arg d $'SR notes\n- local disks' '{dbg:"t",sr:$sr,new_description:$d}')"
expect_ok "SR.set_description with a newline"
vcall SR.stat "{\"dbg\":\"t\",\"sr\":\"$SR\"}"
check "SR.stat shows it" jqt '.description == "SR notes\n- local disks"' <<<"$OUT"

# refused: NUL, invalid UTF-8, absurd sizes; nothing changes
BEFORE=$(cat "$SR/meta/v-$K.json")
vcall Volume.set "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$K\",\"k\":\"a\\u0000b\",\"v\":\"x\"}"
expect_err "a key with NUL" Invalid_argument
vcall Volume.set "$(printf '{"dbg":"t","sr":"%s","key":"%s","k":"bad \xff\xfe key","v":"x"}' "$SR" "$K")"
expect_err "a key that is not UTF-8" Invalid_argument
check "...and its error record is valid UTF-8" is_utf8 <<<"$OUT"
vset "$K" "$(head -c 1025 /dev/zero | tr '\0' k)" v
expect_err "a 1025-byte key" Invalid_argument
vset "$K" "$(head -c 1024 /dev/zero | tr '\0' k)" v
expect_ok "a 1024-byte key"
vcall Volume.unset "$(jq -cn --arg sr "$SR" --arg key "$K" --arg k "$(head -c 1024 /dev/zero | tr '\0' k)" '{dbg:"t",sr:$sr,key:$key,k:$k}')"
expect_ok "Volume.unset of it"
check "the record is as before the refused calls" [ "$(cat "$SR/meta/v-$K.json")" = "$BEFORE" ]

# a message that quotes input and is cut in the middle of a character
LONGKEY="$(head -c 63 /dev/zero | tr '\0' a)éééé"
vcall Volume.stat "$(jq -cn --arg sr "$SR" --arg k "$LONGKEY" '{dbg:"t",sr:$sr,key:$k}')"
expect_err "a key that is not a volume key" Invalid_argument
check "its error record, cut mid-character, is valid UTF-8" is_utf8 <<<"$OUT"
vcall Volume.create "$(printf '{"dbg":"t","sr":"%s","name":"n\xc3","description":"","size":1,"sharable":false}' "$SR")"
expect_err "a name with a broken UTF-8 sequence" Invalid_argument
check "...its error record is valid UTF-8" is_utf8 <<<"$OUT"

# zero-size volumes: the size is a minimum
vcall Volume.create "{\"dbg\":\"t\",\"sr\":\"$SR\",\"name\":\"empty\",\"description\":\"\",\"size\":0,\"sharable\":false}"
expect_ok "Volume.create with size 0"
Z=$(jqr .key)
check "its virtual_size is 0" jqt '.virtual_size == 0' <<<"$OUT"
check "its image is valid" qemu-img check -q -f "$(vol_qemu_fmt "$Z")" "$(vol_image "$Z")"
vcall Volume.create "{\"dbg\":\"t\",\"sr\":\"$SR\",\"name\":\"neg\",\"description\":\"\",\"size\":-1,\"sharable\":false}"
expect_err "Volume.create with a negative size" Invalid_argument
vcall Volume.destroy "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$Z\"}"
expect_ok "Volume.destroy of the empty volume"

# a record never grows past what can be read back
n=0
while [ $n -lt 200 ]; do
	vset "$K" "key-$n-$(head -c 900 /dev/zero | tr '\0' k)" "$(head -c 8000 /dev/zero | tr '\0' v)"
	[ "$RC" -eq 0 ] || break
	n=$((n + 1))
done
expect_err "Volume.set past the record size limit" Invalid_argument
vcall SR.ls "{\"dbg\":\"t\",\"sr\":\"$SR\"}"
expect_ok "SR.ls reads every record after $n large keys"
check "the big volume is listed" jqt --arg k "$K" 'map(.key) | index($k)' <<<"$OUT"
finish
