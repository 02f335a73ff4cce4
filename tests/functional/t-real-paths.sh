#!/bin/bash
# The SR lifecycle with the real default paths, as on XCP-ng and Debian:
# SRs under /var/run/sr-mount (where /var/run is a symlink to /run, so
# /proc/self/mountinfo names /run/sr-mount/...) and the run directory under
# /var/run/xapi-storage-ng.  Detach must really unmount, attach twice must
# work, destroy must find its mount, probe must find the SR attached or not.
# Also: concurrent SR.set_name and SR.set_description lose no update.
# per-plugin
. "$(dirname "$0")/lib.sh"

unset XSNG_MOUNT_ROOT XSNG_RUN_DIR
REAL_MNT=
real_cleanup() {
	[ -n "$REAL_MNT" ] && mountpoint -q "$REAL_MNT" && umount "$REAL_MNT"
	[ -n "$REAL_MNT" ] && rmdir "$REAL_MNT" 2>/dev/null
	cleanup
}
trap real_cleanup EXIT
if [ "$(readlink -f /var/run)" != /run ]; then
	echo "  note: /var/run is not a symlink to /run here; testing the default paths anyway"
fi
vp() { vcall "$1" "{\"dbg\":\"t\",\"sr\":\"$SR\"${2:+,$2}}"; }
mounted() { findmnt -rn --mountpoint "$(readlink -f "$1")" >/dev/null; }

DEV=$(mk_loop 1G)
SR_UUID=$(cat /proc/sys/kernel/random/uuid)
vcall SR.create "{\"dbg\":\"t\",\"uuid\":\"$SR_UUID\",\"name\":\"real paths\",\"description\":\"\",\"configuration\":{\"device\":\"$DEV\"}}"
expect_ok "SR.create"
CONFIG=$OUT
vcall SR.attach "{\"dbg\":\"t\",\"configuration\":$CONFIG}"
expect_ok "SR.attach"
SR=$(jqr .)
REAL_MNT=/run/sr-mount/$SR_UUID
check "the handle is /var/run/sr-mount/<uuid>" [ "$SR" = "/var/run/sr-mount/$SR_UUID" ]
check "it is mounted" mounted "$SR"
vcall SR.attach "{\"dbg\":\"t\",\"configuration\":$CONFIG}"
expect_ok "SR.attach again (idempotent)"
vcall SR.probe "{\"dbg\":\"t\",\"configuration\":{\"device\":\"$DEV\"}}"
expect_ok "SR.probe of the attached SR"
check "probe finds it: complete, sr_uuid, sr stat" jqt --arg u "$SR_UUID" '.[0].complete == true and .[0].configuration.sr_uuid == $u and .[0].sr.uuid == $u' <<<"$OUT"

# volumes and a datapath with the default run directory
vol_create $((64 << 20)) d1
vp Volume.snapshot "\"key\":\"$KEY\""
expect_ok "Volume.snapshot"
URI=$(jq -r '.uri[0]' <<<"$VOL")
dcall Datapath.attach "{\"dbg\":\"t\",\"uri\":\"$URI\",\"domain\":\"3\"}"
expect_ok "Datapath.attach (run dir /var/run/xapi-storage-ng)"
dcall Datapath.activate "{\"dbg\":\"t\",\"uri\":\"$URI\",\"domain\":\"3\"}"
expect_ok "Datapath.activate"
PID=$(jq -r .pid "$SR/.sr/active/$KEY.json" 2>/dev/null)
[ -n "$PID" ] && [ "$PID" != null ] && PIDS+=("$PID")
vp SR.detach
expect_err "SR.detach with an active volume" SR_in_use
check "...left it mounted" mounted "$SR"
dcall Datapath.deactivate "{\"dbg\":\"t\",\"uri\":\"$URI\",\"domain\":\"3\"}"
expect_ok "Datapath.deactivate"
dcall Datapath.detach "{\"dbg\":\"t\",\"uri\":\"$URI\",\"domain\":\"3\"}"
expect_ok "Datapath.detach"
check "no server left" bash -c "! ps -o stat= -p $PID | grep -qv Z"

# SR.set_name and SR.set_description at once: each keeps the other's update
lost=0
for i in $(seq 1 15); do
	vp SR.set_description "\"new_description\":\"d$i\"" &
	vp SR.set_name "\"new_name\":\"n$i\""
	wait
	[ "$(jq -r .name "$SR/.sr/sr.json")" = "n$i" ] && [ "$(jq -r .description "$SR/.sr/sr.json")" = "d$i" ] || lost=$((lost + 1))
done
check "concurrent SR.set_name/SR.set_description lost no update ($lost lost)" [ "$lost" -eq 0 ]

vp SR.detach
expect_ok "SR.detach"
check "...really unmounted" bash -c "! findmnt -rn --mountpoint $REAL_MNT >/dev/null"
vcall SR.probe "{\"dbg\":\"t\",\"configuration\":{\"device\":\"$DEV\"}}"
expect_ok "SR.probe of the detached SR"
check "probe finds it: complete, sr_uuid, sr stat" jqt --arg u "$SR_UUID" '.[0].complete == true and .[0].configuration.sr_uuid == $u and .[0].sr.name == "n15"' <<<"$OUT"
check "...and left nothing mounted" bash -c "! findmnt -rn -S $DEV >/dev/null"
vcall SR.attach "{\"dbg\":\"t\",\"configuration\":$CONFIG}"
expect_ok "SR.attach after detach"
check "mounted again" mounted "$SR"
vp SR.destroy
expect_ok "SR.destroy"
check "...unmounted" bash -c "! findmnt -rn --mountpoint $REAL_MNT >/dev/null"
check "...and wiped the device" bash -c "[ -z \"\$(blkid -p -o value -s TYPE $DEV)\" ]"
finish
