#!/bin/bash
# dom0 side of t-xen-vm (runs in Xen's dom0 under vm_run_xen): for each
# volume plugin given, an SR on a loop device and a QCOW2 volume made by the
# INSTALLED plugins; Datapath.attach + activate for a paused PV guest's
# domid; the XenDisk's /dev/nbdN plugged as the guest's xvda with our
# hotplug script (as xenopsd does for a "vbd" XenDisk); the guest writes and
# reads patterns with O_DIRECT while dom0 takes a Volume.snapshot, then
# while dom0 destroys the snapshot and the datapath server merges its image
# into the leaf (live coalesce); then deactivate + detach and qemu-img
# checks of the snapshot and the leaf against references.   Usage: xen-vm.sh PLUGIN...
set -u
. "$SRCDIR/tests/functional/lib.sh"
. "$VM_DIR/xen-lib.sh"
# cleanup exits with the status it finds in $?: keep the script's
trap 'rc=$?; xen_cleanup; (exit $rc); cleanup' EXIT
MiB=1048576
VOL_SIZE=$((64 * MiB))

# Patterns (random, made once; the guest gets copies in its initrd)
PAT=$T/pat
mkdir -p "$PAT"
for p in A:4 B0:4 B1:4 C:1 E:4 F:1; do head -c $((${p#*:} * MiB)) /dev/urandom > "$PAT/${p%:*}"; done
XEN_INITRD=$T/domu-initrd.cpio
xen_domu_initrd "$XEN_INITRD" "$VM_DIR/guest/domu-disk-job.sh" "xvda xvdb" \
	"$PAT"/A "$PAT"/B0 "$PAT"/B1 "$PAT"/C "$PAT"/E "$PAT"/F || { fail "building the guest's initrd"; finish; exit 1; }

# The reference images (put_ref, xen-lib.sh): what the leaf and the
# snapshot must hold.

# The snapshot (immutable, checked while the guest runs): A whole, zeros
# beyond 12M, B region in some state the guest wrote; nothing of C or E.
check_snapshot() {
	local simg
	simg=$(vol_image "$s_key")
	check "[$PLUGIN] qemu-img check of the snapshot" qemu-img check -q -f "$(vol_qemu_fmt "$s_key")" "$simg"
	qemu-img convert -U -f "$(vol_qemu_fmt "$s_key")" -O raw "$simg" "$T/snap.raw"
	truncate -s $VOL_SIZE "$T/ref-snap"
	put_ref "$T/ref-snap" A 0
	dd if="$T/snap.raw" of="$T/ref-snap" bs=1M skip=8 seek=8 count=4 conv=notrunc status=none
	check "[$PLUGIN] the snapshot holds A and nothing written after it" \
		cmp -s "$T/ref-snap" "$T/snap.raw"
	check "[$PLUGIN] the snapshot's B region holds only what the guest wrote" \
		region_blocks_ok "$T/snap.raw" 8 4 "$PAT/B0" "$PAT/B1"
	rm -f "$T/snap.raw" "$T/ref-snap"
}

# After C and E: check the snapshot, destroy it as a backup does, and wait
# (bounded) until the job and the volume's datapath server have merged its
# image into the leaf, while the guest rewrites F; then tell the guest.
live_merge() {
	local pid0 n
	check "[$PLUGIN] the guest wrote C and E after the snapshot" wait_phase CE-DONE || return
	check_snapshot
	pid0=$(jq -r .pid "$SR/.sr/active/$K.json")
	check "[$PLUGIN] chain of 2 images before the backup's destroy" [ "$(vol_chain_len "$K")" -eq 2 ]
	stamp "[$PLUGIN] Volume.destroy of the snapshot while the guest writes F"
	vcall Volume.destroy "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$s_key\"}"
	expect_ok "[$PLUGIN] Volume.destroy of the snapshot"
	for n in $(seq 1 1500); do
		[ "$(vol_chain_len "$K")" -eq 1 ] && break
		sleep 0.2
	done
	stamp "[$PLUGIN] merge over"
	check "[$PLUGIN] live merge: the leaf stands alone ($(vol_chain_len "$K") image)" [ "$(vol_chain_len "$K")" -eq 1 ]
	check "[$PLUGIN] live merge: by the same datapath server (pid $pid0)" \
		[ "$(jq -r .pid "$SR/.sr/active/$K.json")" = "$pid0" ]
	ctl_put 1 MERGED
}

run_one() {
	local name att xd dev domid rc impls s_key simg limg
	name=xsng-$PLUGIN
	stamp "[$PLUGIN] start"
	mk_sr || { fail "[$PLUGIN] SR.create/attach on a loop device"; return; }
	vol_create $VOL_SIZE "xen guest disk"
	expect_ok "[$PLUGIN] Volume.create ($((VOL_SIZE / MiB)) MiB)"
	local K=$KEY URI
	URI=$(jqr '.uri[0]' <<<"$VOL")
	check "[$PLUGIN] the volume is QCOW2" [ "$(vol_qemu_fmt "$K")" = qcow2 ]

	# the control disk (plain loop device, written by both sides)
	truncate -s 1M "$T/ctl-$PLUGIN"
	CTL=$(losetup -f --show "$T/ctl-$PLUGIN") || { fail "control disk"; return; }

	XEN_CFG_EXTRA="disk = [ 'phy:$CTL,xvdb,w,script=$XEN_HOTPLUG' ]"
	domid=$(xen_domu_create "$name" "$XEN_INITRD" -p)
	check "[$PLUGIN] xl create -p: domain $domid" [ -n "$domid" ]
	[ -n "$domid" ] || return

	dcall Datapath.attach "{\"dbg\":\"t\",\"uri\":\"$URI\",\"domain\":\"$domid\"}"
	expect_ok "[$PLUGIN] Datapath.attach for domain $domid"
	att=$OUT
	impls=$(jq -c '[.implementations[][0]]' <<<"$att" 2>/dev/null)
	xd=$(jq -c '[.implementations[] | select(.[0] == "XenDisk")][0][1] // empty' <<<"$att" 2>/dev/null)
	dev=$(jq -r '.params // empty' <<<"$xd" 2>/dev/null)
	if [ -n "$xd" ] && jqt '.backend_type == "vbd" and (.params | test("^/dev/nbd[0-9]+$")) and (.extra | type == "object")' <<<"$xd"; then
		pass "[$PLUGIN] attach returns XenDisk {backend_type vbd, params $dev}"
	else
		fail "[$PLUGIN] Datapath.attach returned no XenDisk {backend_type \"vbd\", params \"/dev/nbdN\"}: implementations $impls, XenDisk ${xd:-none}; xenopsd could not plug this disk (issue 9). stderr: $(tail -c 400 "$T/stderr")"
		$XL destroy "$name"
		dcall Datapath.detach "{\"dbg\":\"t\",\"uri\":\"$URI\",\"domain\":\"$domid\"}"
		return
	fi
	dcall Datapath.activate "{\"dbg\":\"t\",\"uri\":\"$URI\",\"domain\":\"$domid\"}"
	expect_ok "[$PLUGIN] Datapath.activate for domain $domid"
	check "[$PLUGIN] $dev is connected, $((VOL_SIZE / MiB)) MiB" \
		[ -e "/sys/block/${dev#/dev/}/pid" -a "$(blockdev --getsize64 "$dev" 2>/dev/null)" = "$VOL_SIZE" ]

	# plug it the way xenopsd plugs a vbd XenDisk, then let the guest run
	check "[$PLUGIN] xl block-attach phy:$dev as xvda" \
		$XL block-attach "$domid" "phy:$dev,xvda,w,script=$XEN_HOTPLUG"
	check "[$PLUGIN] blkback took $dev (physical-device in xenstore)" \
		bash -c "xenstore-read /local/domain/0/backend/vbd/$domid/51712/physical-device >/dev/null"
	$XL unpause "$domid"
	stamp "[$PLUGIN] guest $domid running"

	# wait for the guest's first phase, then snapshot while it writes
	if check "[$PLUGIN] the guest wrote and read back A through blkfront" wait_phase A-DONE; then
		stamp "[$PLUGIN] guest wrote A; snapshot"
		vcall Volume.snapshot "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$K\"}"
		expect_ok "[$PLUGIN] Volume.snapshot while the guest writes"
		s_key=$(jqr .key 2>/dev/null)
		ctl_put 1 SNAPPED
		live_merge
	fi
	xen_domu_result "$name" "[$PLUGIN]"

	dcall Datapath.deactivate "{\"dbg\":\"t\",\"uri\":\"$URI\",\"domain\":\"$domid\"}"
	expect_ok "[$PLUGIN] Datapath.deactivate"
	dcall Datapath.detach "{\"dbg\":\"t\",\"uri\":\"$URI\",\"domain\":\"$domid\"}"
	expect_ok "[$PLUGIN] Datapath.detach"
	check "[$PLUGIN] no ngdp-server left" bash -c '! pgrep -x ngdp-server >/dev/null'
	check "[$PLUGIN] no /dev/nbdN left connected" no_nbd_connected
	losetup -d "$CTL"

	# the leaf: A with C over its second MiB and F over its third, E at 8M,
	# zeros elsewhere
	stamp "[$PLUGIN] checking the images"
	limg=$(vol_image "$K")
	truncate -s $VOL_SIZE "$T/ref-leaf"
	put_ref "$T/ref-leaf" A 0; put_ref "$T/ref-leaf" C 1; put_ref "$T/ref-leaf" F 2
	put_ref "$T/ref-leaf" E 8
	check "[$PLUGIN] qemu-img check of the leaf" qemu-img check -q -f qcow2 "$limg"
	check "[$PLUGIN] the leaf holds exactly the guest's final data" \
		qemu-img compare -q -f raw -F qcow2 "$T/ref-leaf" "$limg"
	check "[$PLUGIN] the leaf names no backing file any more" \
		jqt 'has("backing-filename") | not' <<<"$(qemu-img info --output=json -f qcow2 "$limg")"
	rm -f "$T/ref-leaf"
}

for PLUGIN in "$@"; do
	TEST_NAME=t-xen-vm[$PLUGIN]
	run_one
done
TEST_NAME=t-xen-vm
finish
