#!/bin/bash
# SR.create / probe / attach / stat / set_* / detach / attach / destroy.
# per-plugin
. "$(dirname "$0")/lib.sh"
fs=ext4; [ "$PLUGIN" = xfs-ng ] && fs=xfs

DEV=$(mk_loop 1G)
vcall SR.probe "{\"dbg\":\"t\",\"configuration\":{\"device\":\"$DEV\"}}"
expect_ok "SR.probe of an empty device"
check "empty device: complete, no sr_uuid, no sr" jqt \
	'length==1 and .[0].complete==true and (.[0].configuration|has("sr_uuid")|not) and (.[0]|has("sr")|not)' <<<"$OUT"

U=$(cat /proc/sys/kernel/random/uuid)
create() {
	vcall SR.create "{\"dbg\":\"t\",\"uuid\":\"$U\",\"name\":\"my SR\",\"description\":\"first\",\"configuration\":{\"device\":\"$DEV\"$1}}"
}
create ""
expect_ok "SR.create on an empty device"
CONFIG=$OUT
check "SR.create returns device-config with sr_uuid" jqt --arg u "$U" \
	'.sr_uuid==$u and (.device|type=="string")' <<<"$OUT"
check "filesystem is $fs with the SR uuid" \
	[ "$(blkid -o value -s TYPE "$DEV"):$(blkid -o value -s UUID "$DEV")" = "$fs:$U" ]
check "SR.create left nothing mounted" bash -c "! findmnt -rn -S $DEV >/dev/null"

create ""
expect_err "SR.create on a device that holds an SR" Device_not_empty

vcall SR.probe "{\"dbg\":\"t\",\"configuration\":{\"device\":\"$DEV\"}}"
expect_ok "SR.probe of our SR"
check "probe finds the SR with its uuid and name" jqt --arg u "$U" \
	'.[0].complete==true and .[0].configuration.sr_uuid==$u and .[0].sr.uuid==$u and .[0].sr.name=="my SR" and (.[0].sr.total_space>0)' <<<"$OUT"
check "probe left nothing mounted" bash -c "! findmnt -rn -S $DEV >/dev/null"

vcall SR.attach "{\"dbg\":\"t\",\"configuration\":$CONFIG}"
expect_ok "SR.attach"
SR=$(jqr .)
check "SR handle is the mount point" [ "$SR" = "$XSNG_MOUNT_ROOT/$U" ]
check "mounted $fs at the handle" [ "$(findmnt -rn -o FSTYPE "$SR")" = "$fs" ]
vcall SR.attach "{\"dbg\":\"t\",\"configuration\":$CONFIG}"
expect_ok "SR.attach again (idempotent)"
check "still mounted once" [ "$(findmnt -rn -o TARGET | grep -c "^$(readlink -f "$SR")$")" = 1 ]

vcall SR.stat "{\"dbg\":\"t\",\"sr\":\"$SR\"}"
expect_ok "SR.stat"
read -r size avail < <(df -B1 --output=size,avail "$SR" | tail -1)
check "total_space is the filesystem size" [ "$(jqr .total_space)" = "$size" ]
check "free_space is what df says is available" [ "$(jqr .free_space)" = "$avail" ]
check "health Healthy, not clustered, uuid and name" jqt --arg u "$U" \
	'.health==["Healthy",""] and .clustered==false and .uuid==$u and .name=="my SR" and .datasources==[]' <<<"$OUT"

vcall SR.set_name "{\"dbg\":\"t\",\"sr\":\"$SR\",\"new_name\":\"renamed ✓\"}"
expect_ok "SR.set_name"
vcall SR.set_description "{\"dbg\":\"t\",\"sr\":\"$SR\",\"new_description\":\"second\"}"
expect_ok "SR.set_description"
vcall SR.stat "{\"dbg\":\"t\",\"sr\":\"$SR\"}"
check "stat shows the new name and description" jqt \
	'.name=="renamed ✓" and .description=="second"' <<<"$OUT"

vol_create 1073741824
expect_ok "Volume.create"
K1=$KEY
vcall Volume.set "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$K1\",\"k\":\"vdi-type\",\"v\":\"user\"}"
expect_ok "Volume.set"

vcall Plugin.ls '{"dbg":"t"}'
check "Plugin.ls lists the attached SR" jqt --arg s "$SR" 'index($s) != null' <<<"$OUT"

vcall SR.detach "{\"dbg\":\"t\",\"sr\":\"$SR\"}"
expect_ok "SR.detach"
check "unmounted" bash -c "! findmnt -rn '$SR' >/dev/null"
vcall SR.detach "{\"dbg\":\"t\",\"sr\":\"$SR\"}"
expect_ok "SR.detach again (idempotent)"
vcall SR.stat "{\"dbg\":\"t\",\"sr\":\"$SR\"}"
expect_err "SR.stat of a detached SR" Sr_not_attached
vcall Volume.stat "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$K1\"}"
expect_err "Volume.stat on a detached SR" Sr_not_attached

# attach by sr_uuid even when the device path in the config is stale
STALE=$(jq -c '.device="/dev/does-not-exist"' <<<"$CONFIG")
vcall SR.attach "{\"dbg\":\"t\",\"configuration\":$STALE}"
expect_ok "SR.attach finds the device by uuid"
vcall SR.ls "{\"dbg\":\"t\",\"sr\":\"$SR\"}"
check "the volume and its keys survived detach/attach" jqt --arg k "$K1" \
	'length==1 and .[0].key==$k and .[0].keys["vdi-type"]=="user" and .[0].name=="disk"' <<<"$OUT"
vcall SR.stat "{\"dbg\":\"t\",\"sr\":\"$SR\"}"
check "name survived detach/attach" jqt '.name=="renamed ✓"' <<<"$OUT"

vcall SR.destroy "{\"dbg\":\"t\",\"sr\":\"$SR\"}"
expect_ok "SR.destroy"
check "unmounted after destroy" bash -c "! findmnt -rn '$SR' >/dev/null"
check "filesystem signature wiped" bash -c "[ -z \"\$(blkid -p -o value -s TYPE $DEV)\" ]"
vcall SR.probe "{\"dbg\":\"t\",\"configuration\":{\"device\":\"$DEV\"}}"
check "probe sees an empty device again" jqt '.[0].complete==true and (.[0]|has("sr")|not)' <<<"$OUT"
vcall SR.destroy "{\"dbg\":\"t\",\"sr\":\"$SR\"}"
expect_err "SR.destroy of a destroyed SR" Sr_not_attached

# force=true reuses a device holding another filesystem
mkfs.ext4 -q -F "$DEV"
create ""
expect_err "SR.create on a device with a foreign filesystem" Device_not_empty
check "the foreign filesystem is untouched" [ "$(blkid -o value -s TYPE "$DEV")" = ext4 ]
vcall SR.probe "{\"dbg\":\"t\",\"configuration\":{\"device\":\"$DEV\"}}"
check "probe says a foreign filesystem is not complete" jqt '.[0].complete==false and .[0].extra_info.content=="ext4"' <<<"$OUT"
U=$(cat /proc/sys/kernel/random/uuid)
create ',"force":"true"'
expect_ok "SR.create with force=true"
finish
