#!/bin/bash
# Every bad input gets a clear error record and changes nothing on disk.
# per-plugin
. "$(dirname "$0")/lib.sh"

mk_sr || { fail "SR setup"; finish; exit; }
vol_create 104857600 victim
K=$KEY
state() { (cd "$SR" && find . -path ./.sr/lock -prune -o -type f -print0 | sort -z | xargs -0 sha1sum); }
BEFORE=$(state)
unchanged() { [ "$(state)" = "$BEFORE" ]; }
bad() { # bad METHOD JSON ERRORNAME what
	vcall "$1" "$2"
	expect_err "$4" "$3"
	check "  ...and nothing changed on disk" unchanged
}
raw() { # raw METHOD STDIN ERRORNAME what (stdin given verbatim)
	OUT=$(printf '%s' "$2" | "$XSS/volume/org.xen.xapi.storage.$PLUGIN/$1" --json 2>/dev/null)
	RC=$?
	expect_err "$4" "$3"
	check "  ...and nothing changed on disk" unchanged
}
s="\"dbg\":\"t\",\"sr\":\"$SR\""
long=$(head -c $((17 * 1024)) /dev/zero | tr '\0' 'x')	# over TEXT_MAX (16 KiB)

raw Volume.create '{"dbg":' Invalid_argument "truncated JSON"
raw Volume.create '' Invalid_argument "empty stdin"
raw Volume.create '[1,2]' Invalid_argument "JSON that is not an object"
raw Volume.create "{$s} {}" Invalid_argument "two JSON values"
raw Volume.stat "{$s,\"key\":\"$K\"} trailing" Invalid_argument "trailing garbage"
raw Volume.stat "$(head -c 2000000 /dev/zero | tr '\0' ' ')" Invalid_argument "2 MB of stdin"
bad Volume.create "{$s,\"description\":\"\",\"size\":1048576,\"sharable\":false}" Invalid_argument "missing name"
bad Volume.create "{\"sr\":\"$SR\",\"name\":\"n\",\"description\":\"\",\"size\":1048576,\"sharable\":false}" Invalid_argument "missing dbg"
bad Volume.create "{$s,\"name\":\"n\",\"description\":\"\",\"size\":\"1048576\",\"sharable\":false}" Invalid_argument "size as a string"
bad Volume.create "{$s,\"name\":\"n\",\"description\":\"\",\"size\":1048576.0,\"sharable\":false}" Invalid_argument "size as a float"
bad Volume.create "{$s,\"name\":\"n\",\"description\":\"\",\"size\":1048576,\"sharable\":\"no\"}" Invalid_argument "sharable as a string"
bad Volume.create "{$s,\"name\":5,\"description\":\"\",\"size\":1048576,\"sharable\":false}" Invalid_argument "name as a number"
bad Volume.create "{$s,\"name\":\"n\",\"description\":\"\",\"size\":-1,\"sharable\":false}" Invalid_argument "negative size"
bad Volume.create "{$s,\"name\":\"n\",\"description\":\"\",\"size\":9223372036854775807,\"sharable\":false}" Invalid_argument "absurd size"
bad Volume.create "{$s,\"name\":\"n\",\"description\":\"\",\"size\":99999999999999999999999,\"sharable\":false}" Invalid_argument "size beyond int64"
bad Volume.create "{$s,\"name\":\"$long\",\"description\":\"\",\"size\":1048576,\"sharable\":false}" Invalid_argument "17 KiB name"
bad Volume.create "{$s,\"name\":\"a\\u0000b\",\"description\":\"\",\"size\":1048576,\"sharable\":false}" Invalid_argument "name with NUL"
bad Volume.create "$(printf '{%s,"name":"a\xffb","description":"","size":1048576,"sharable":false}' "$s")" Invalid_argument "name that is not UTF-8"
bad Volume.set_name "{$s,\"key\":\"$K\",\"new_name\":\"$long\"}" Invalid_argument "17 KiB new name"
for key in "../$K" "$K/.." "/etc/passwd" ".." "a/b" "$long" "${K^^}" "" "$K\\u0000"; do
	bad Volume.stat "{$s,\"key\":\"$key\"}" Invalid_argument "key '$(printf %.20s "$key")'"
	bad Volume.destroy "{$s,\"key\":\"$key\"}" Invalid_argument "destroy key '$(printf %.20s "$key")'"
done
bad Volume.set "{$s,\"key\":\"../x\",\"k\":\"a\",\"v\":\"b\"}" Invalid_argument "set on a traversal key"
bad Volume.set "{$s,\"key\":\"$K\",\"k\":\"$long\",\"v\":\"b\"}" Invalid_argument "17 KiB key name"
bad Volume.set "{$s,\"key\":\"$K\",\"k\":\"a\\u0000b\",\"v\":\"b\"}" Invalid_argument "key name with NUL"
bad Volume.set "{$s,\"key\":\"$K\",\"k\":\"a\",\"v\":\"$long\"}" Invalid_argument "17 KiB value"
bad Volume.set "{$s,\"key\":\"$K\",\"k\":\"a\",\"v\":\"x\\u0000y\"}" Invalid_argument "value with NUL"
bad Volume.set "{$s,\"key\":\"$K\",\"k\":\"a\"}" Invalid_argument "set without v"
bad Volume.stat "{$s,\"key\":\"$(cat /proc/sys/kernel/random/uuid)\"}" Volume_does_not_exist "unknown key"
bad Volume.snapshot "{$s,\"key\":\"$(cat /proc/sys/kernel/random/uuid)\"}" Volume_does_not_exist "snapshot of an unknown key"
bad Volume.resize "{$s,\"key\":\"$K\",\"new_size\":1024}" VDI_invalid_size "shrink"
bad Volume.resize "{$s,\"key\":\"$K\",\"new_size\":-5}" Invalid_argument "negative new size"

for sr in "/tmp" "$XSNG_MOUNT_ROOT/../../etc" "$XSNG_MOUNT_ROOT/$(cat /proc/sys/kernel/random/uuid)" "relative/path" ""; do
	bad Volume.create "{\"dbg\":\"t\",\"sr\":\"$sr\",\"name\":\"n\",\"description\":\"\",\"size\":1048576,\"sharable\":false}" Sr_not_attached "SR '$sr'"
done
bad SR.stat "{\"dbg\":\"t\",\"sr\":5}" Invalid_argument "SR handle as a number"

# unknown method: a file named like a method we do not implement
ln -s "$(readlink -f "$XSS/volume/org.xen.xapi.storage.$PLUGIN/SR.ls")" "$T/Volume.compose"
OUT=$(printf '{"dbg":"t"}' | "$T/Volume.compose" --json); RC=$?
expect_err "unknown method name" Unimplemented
OUT=$(printf '{"dbg":"t"}' | "$XSS/volume/org.xen.xapi.storage.$PLUGIN/SR.ls" --bogus); RC=$?
expect_err "unknown command-line option" Invalid_argument

# SR.create with bad devices
U=$(cat /proc/sys/kernel/random/uuid)
cr() { vcall SR.create "{\"dbg\":\"t\",\"uuid\":\"$1\",\"name\":\"n\",\"description\":\"\",\"configuration\":$2}"; }
cr "$U" '{"device":"/dev/does-not-exist"}'
expect_err "SR.create on a missing device" Invalid_argument
cr "$U" "{\"device\":\"$T\"}"
expect_err "SR.create on a directory" Invalid_argument
cr "$U" '{}'
expect_err "SR.create without device" Invalid_argument
cr "not-a-uuid" "{\"device\":\"$DEV\"}"
expect_err "SR.create with a bad uuid" Invalid_argument
cr "$U" "{\"device\":\"$DEV\",\"image-format\":\"vmdk\"}"
expect_err "SR.create with an unknown image format" Invalid_argument
cr "$U" "{\"device\":\"$DEV\",\"imageformat\":\"raw\"}"
expect_err "SR.create with a misspelt key" Invalid_argument
cr "$U" "{\"device\":\"$DEV\",\"force\":\"yes\"}"
expect_err "SR.create with force=yes" Invalid_argument
cr "$U" "{\"device\":\"$DEV\",\"force\":\"true\"}"
expect_err "SR.create on the mounted SR device, even with force" Device_in_use
check "  ...the SR is still mounted and intact" unchanged
D2=$(mk_loop 600M)
mkfs.ext4 -q "$D2"; mkdir "$T/elsewhere"; mount "$D2" "$T/elsewhere"
cr "$U" "{\"device\":\"$D2\",\"force\":\"true\"}"
expect_err "SR.create on a device mounted elsewhere" Device_in_use
check "  ...the other mount is untouched" bash -c "findmnt -rn '$T/elsewhere' >/dev/null"
umount "$T/elsewhere"

# out of space in the middle of a create: nothing half-made stays listed
vcall SR.ls "{$s}"; LS_BEFORE=$(jq -c 'map(.key)|sort' <<<"$OUT")
avail=$(df -B1 --output=avail "$SR" | tail -1)
fallocate -l $((avail - 4096)) "$SR/filler" 2>/dev/null || fallocate -l $((avail - 65536)) "$SR/filler"
while fallocate -l 4096 "$SR/filler.$RANDOM" 2>/dev/null; do :; done
vol_create 1073741824 "no room"
expect_err "Volume.create on a full SR" No_space
vcall SR.ls "{$s}"
check "SR.ls unchanged after the failed create" [ "$(jq -c 'map(.key)|sort' <<<"$OUT")" = "$LS_BEFORE" ]
check "no image or metadata file left behind" [ "$(ls "$SR/images" | wc -l)" = 1 -a "$(ls "$SR/meta" | wc -l)" = 2 ]
vcall Volume.snapshot "{$s,\"key\":\"$K\"}"
expect_err "Volume.snapshot on a full SR" No_space
vcall Volume.stat "{$s,\"key\":\"$K\"}"
check "the volume is intact after the failed snapshot" jqt '.read_write==true' <<<"$OUT"
check "its image is still clean" qemu-img check -q "$(vol_image "$K")"
rm -f "$SR"/filler*
finish
