#!/bin/bash
# The main job, end to end on a loop-backed SR, calling the installed
# plugins exactly as xapi-storage-script does: SR.create/attach, a QCOW2
# volume, a snapshot and a clone, Datapath.attach/activate, real I/O over
# NBD, a snapshot of the live disk, then everything torn down.
# Usage: demo.sh INSTALL_ROOT [ext4-ng|xfs-ng]
set -eu
root=$1 type=${2:-ext4-ng}
xss=$root/usr/libexec/xapi-storage-script
vol=$xss/volume/org.xen.xapi.storage.$type
dpp=$xss/datapath/ngdp
T=$(mktemp -d /tmp/xsng-demo.XXXXXX)
export XSNG_MOUNT_ROOT=$T/mnt XSNG_RUN_DIR=$T/run
mkdir -p "$XSNG_MOUNT_ROOT" "$XSNG_RUN_DIR"
LOOP=

cleanup() {
	set +e
	for r in "$T"/mnt/*/.sr/active/*.json; do
		[ -e "$r" ] && kill -9 "$(jq -r .pid "$r")" 2>/dev/null
	done
	for m in $(findmnt -rn -o TARGET | grep "^$T/" | sort -r); do umount "$m"; done
	[ -n "$LOOP" ] && losetup -d "$LOOP"
	rm -rf "$T"
}
trap cleanup EXIT

COLOR=; [ -t 1 ] && COLOR=-C
say() { if [ -t 1 ]; then printf '\n\033[1m== %s\033[0m\n' "$*"; else printf '\n== %s\n' "$*"; fi; }
# call DIR METHOD JSON: as xapi-storage-script does (stdin without newline)
call() {
	local out
	echo "\$ $2 <<< $3" | cut -c1-160
	out=$(printf '%s' "$3" | "$1/$2" --json) || { echo "FAILED: $out"; exit 1; }
	echo "$out" | jq $COLOR . 2>/dev/null | head -25 || echo "$out"
	OUT=$out
}

say "a 2 GiB loop device stands in for a disk"
truncate -s 2G "$T/disk.img"
LOOP=$(losetup -f --show --direct-io=on "$T/disk.img")
echo "$LOOP"

U=$(cat /proc/sys/kernel/random/uuid)
say "xe sr-create type=$type device-config:device=$LOOP"
call "$vol" Plugin.Query '{"dbg":"demo"}'
call "$vol" SR.create "{\"dbg\":\"demo\",\"uuid\":\"$U\",\"name\":\"demo SR\",\"description\":\"made by make demo\",\"configuration\":{\"device\":\"$LOOP\"}}"
CONFIG=$OUT
call "$vol" SR.attach "{\"dbg\":\"demo\",\"configuration\":$CONFIG}"
SR=$(jq -r . <<<"$OUT")
call "$vol" SR.stat "{\"dbg\":\"demo\",\"sr\":\"$SR\"}"

say "xe vdi-create virtual-size=10GiB (QCOW2)"
call "$vol" Volume.create "{\"dbg\":\"demo\",\"sr\":\"$SR\",\"name\":\"demo disk\",\"description\":\"\",\"size\":10737418240,\"sharable\":false}"
KEY=$(jq -r .key <<<"$OUT") URI=$(jq -r '.uri[0]' <<<"$OUT")
call "$vol" Volume.set "{\"dbg\":\"demo\",\"sr\":\"$SR\",\"key\":\"$KEY\",\"k\":\"vdi-type\",\"v\":\"user\"}"

say "VM start: Datapath.attach + Datapath.activate (one ngdp-server for this disk)"
call "$dpp" Datapath.attach "{\"dbg\":\"demo\",\"uri\":\"$URI\",\"domain\":\"1\"}"
NBD=$(jq -r '.implementations[] | select(.[0]=="Nbd") | .[1].uri' <<<"$OUT")
call "$dpp" Datapath.activate "{\"dbg\":\"demo\",\"uri\":\"$URI\",\"domain\":\"1\"}"
echo "server: pid $(jq -r .pid "$SR/.sr/active/$KEY.json")"

say "the guest writes 64 MiB over NBD ($NBD)"
# set -e: a failed write stops the demo (no pipe hides qemu-io's status)
out=$(qemu-io -f raw -c 'write -P 0xaa 0 64M' "$NBD"); echo "${out%%$'\n'*}"
say "xe vdi-snapshot while the disk is in use"
call "$vol" Volume.snapshot "{\"dbg\":\"demo\",\"sr\":\"$SR\",\"key\":\"$KEY\"}"
SNAP=$(jq -r .key <<<"$OUT")
say "the guest keeps writing: 64 MiB of new data"
out=$(qemu-io -f raw -c 'write -P 0xbb 0 64M' "$NBD"); echo "${out%%$'\n'*}"
say "random 4k I/O for 5 s (fio over NBD, verified)"
out=$(fio --name=demo --ioengine=nbd --uri="$(sed -E 's|^nbd:unix:(.*):exportname=(.*)$|nbd+unix:///\2?socket=\1|' <<<"$NBD")" \
	--rw=randrw --bs=4k --iodepth=32 --size=1G --offset=1G --time_based --runtime=5 \
	--verify=crc32c --verify_fatal=1 --verify_state_save=0 --output-format=terse --terse-version=3)
awk -F';' '$8 != "" {printf "read %s IOPS, write %s IOPS\n", $8, $49}' <<<"$out"

say "xe vdi-clone of the snapshot"
call "$vol" Volume.clone "{\"dbg\":\"demo\",\"sr\":\"$SR\",\"key\":\"$SNAP\"}"
CLONE=$(jq -r .key <<<"$OUT")

say "VM shutdown: Datapath.deactivate + Datapath.detach"
call "$dpp" Datapath.deactivate "{\"dbg\":\"demo\",\"uri\":\"$URI\",\"domain\":\"1\"}"
call "$dpp" Datapath.detach "{\"dbg\":\"demo\",\"uri\":\"$URI\",\"domain\":\"1\"}"

say "check: the snapshot and the clone hold the first data, the disk the second"
img() { jq -r '"'"$SR"'/images/" + .image + "." + ."image-format"' "$SR/meta/v-$1.json"; }
for k in "$SNAP:0xaa" "$CLONE:0xaa" "$KEY:0xbb"; do
	# qemu-io exits 1 on a pattern mismatch
	qemu-io -r -f qcow2 -c "read -P ${k#*:} 0 64M" "$(img "${k%%:*}")" >/dev/null ||
		{ echo "content check FAILED for ${k%%:*}"; exit 1; }
	echo "${k%%:*}: 64 MiB of ${k#*:} ✓"
done
for f in "$SR"/images/*.qcow2; do
	qemu-img check -q "$f" || { echo "qemu-img check FAILED for $f"; exit 1; }
done
echo "qemu-img check: all images clean ✓"

say "SR.ls (what xe sr-scan sees)"
call "$vol" SR.ls "{\"dbg\":\"demo\",\"sr\":\"$SR\"}" >/dev/null
jq -r '.[] | "\(.key)  \(.name)  rw=\(.read_write)  \(.virtual_size/1073741824) GiB  \(.physical_utilisation/1048576|floor) MiB used"' <<<"$OUT"

say "tear down: destroy the volumes, SR.detach, SR.destroy"
for k in "$CLONE" "$SNAP" "$KEY"; do
	call "$vol" Volume.destroy "{\"dbg\":\"demo\",\"sr\":\"$SR\",\"key\":\"$k\"}" >/dev/null
done
call "$vol" SR.destroy "{\"dbg\":\"demo\",\"sr\":\"$SR\"}"
echo
echo "demo finished: SR created, volume written over NBD, snapshot + clone checked, everything removed"
