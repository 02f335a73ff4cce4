#!/bin/bash
# dom0 side of t-xen-handoff (runs in Xen's dom0 under vm_run_xen): the
# handoff of docs/blkif-handoff.md section 4 through the INSTALLED plugins.
#  1. The switch off (XSNG_DATAPATH_CONF, the test's stand-in for
#     /etc/xapi-storage-ng/datapath.conf), and on for a dom0 user: today's
#     XenDisk {vbd, /dev/nbdN}.
#  2. On, for a paused PV guest: Datapath.attach returns exactly XenDisk
#     {qdisk, ngdp:<key>, {ngdp-sr, ngdp-volume}} and Nbd; activate starts
#     the server with --blkif-xen-domain and connects no /dev/nbdN.
#  3. dom0 writes the VBD's frontend and backend as xenopsd does for kind
#     qdisk (device.ml Vbd.add: params = the Nbd uri, qemu-params = the
#     XenDisk's params, sm-data/* = its extra + backend-kind, and what the
#     block script adds), beside an unmarked qdisk device of the same guest
#     that the server must never touch; the server claims ours (InitWait).
#  4. The guest writes and reads patterns with O_DIRECT and flushes; dom0
#     kills the server with SIGKILL and activates again: the new server
#     claims the Connected device and re-adopts its ring, the guest reads
#     and writes through it.
#  5. Classic clean unplug (online=0 and state=5 in one transaction, wait
#     for Closed, remove the frontend and the backend); the server releases
#     the device, the guest's xvda goes away.
#  5b. Twice more plugged, the guest streaming, and unplugged in xenopsd's
#     ShutdownRequest mode (shutdown-request normal after online=0, then
#     force): the server flushes, closes the device (6) and writes
#     shutdown-done; the stream is cut; the server stays and claims the
#     next plug.
#  6. The device plugged again: the same server claims it, the guest
#     writes D with no flush, then streams R in 16 KiB writes (no flush),
#     counting those that completed; Datapath.deactivate while it streams
#     and the ring is Connected: the server drains, flushes and closes the
#     device (state 6) before it exits; the guest's next write fails, its
#     xvda goes away, and every write it saw complete is in the image.
#  6b. The same again, with a dom0 user of the volume activated beside the
#     ring (/dev/nbdN): Datapath.deactivate of the guest's domain closes
#     its ring (control op blkif_release) and the server stays: the stream
#     is cut, the status says "released", the record keeps the dom0 user
#     alone, who still reads through the server; its deactivate stops it.
#  7. Datapath.deactivate again (idempotent) + detach: no server, no ring
#     mark, no run directory; the image holds exactly what the guest wrote.
# Before the guest runs (1b): a second volume whose ring cannot be
# connected (dom0 plays a frontend whose ring-ref the paused guest never
# granted): the server fails the device (state 6, the reason in xenstore's
# error node, its status counts it) and writes the volume's failure mark;
# the next attach offers today's vbd XenDisk, and the ring again once the
# mark is removed.
set -u
PLUGIN=ext4-ng
. "$SRCDIR/tests/functional/lib.sh"
. "$VM_DIR/xen-lib.sh"
# cleanup exits with the status it finds in $?: keep the script's
trap 'rc=$?; xen_cleanup; (exit $rc); cleanup' EXIT
MiB=1048576
VOL_SIZE=$((64 * MiB))
DEVID=51712	# xvda
DECOY=51728	# xvdb's number: a qdisk device without our marks

PAT=$T/pat
mkdir -p "$PAT"
for p in A:4 C:1 D:1 R:8; do head -c $((${p#*:} * MiB)) /dev/urandom > "$PAT/${p%:*}"; done
dpu() { dcall "$1" "{\"dbg\":\"t\",\"uri\":\"$2\",\"domain\":\"$3\"}"; }
dp() { dpu "$1" "$URI" "$2"; }
kinds() { jq -c '[.implementations[][0]]' <<<"$1" 2>/dev/null; }
xendisk() { jq -c '[.implementations[] | select(.[0] == "XenDisk")][0][1] // empty' <<<"$1" 2>/dev/null; }
srv_get() { "$NGDP_CTL" "$(jq -r .control "$SR/.sr/active/${2:-$K}.json")" get "$1"; }
# serving DEVICE RINGS: the server's status says blkif_device is DEVICE
# (the backend directory it claimed, or null) and blkif_rings RINGS
serving() { [ "$(srv_get blkif_device)/$(srv_get blkif_rings)" = "$1/$2" ]; }
# xs_has PATH: the key exists in xenstore
xs_has() { xenstore-read "$1" >/dev/null 2>&1; }
# streamed_at SECTOR N: the guest's stream counting in control sector
# SECTOR has completed at least N writes
streamed_at() { [ "$(ctl_get "$1")" -ge "$2" ] 2>/dev/null; }
conf() { printf '# t-xen-handoff\nblkif-ring = %s\n' "$1" > "$T/datapath.conf"; }
export XSNG_DATAPATH_CONF=$T/datapath.conf
# no flush of the server's own (every 5 s when written): 5b sees who flushed
export XSNG_DATAPATH_FLUSH_INTERVAL=0

mk_sr || { fail "SR.create/attach on a loop device"; finish; }
SR_UUID=$(jq -r .uuid "$SR/.sr/sr.json")
vol_create $VOL_SIZE "xen handoff disk"
expect_ok "Volume.create ($((VOL_SIZE / MiB)) MiB)"
K=$KEY
URI=$(jqr '.uri[0]' <<<"$VOL")
check "the volume is QCOW2" [ "$(vol_qemu_fmt "$K")" = qcow2 ]
xen_domu_initrd "$T/initrd.cpio" "$VM_DIR/guest/domu-handoff-job.sh" "xvda xvdb" \
	"$PAT"/A "$PAT"/C "$PAT"/D "$PAT"/R || { fail "building the guest's initrd"; finish; }
truncate -s 1M "$T/ctl"
CTL=$(losetup -f --show "$T/ctl") || { fail "control disk"; finish; }
XEN_CFG_EXTRA="disk = [ 'phy:$CTL,xvdb,w,script=$XEN_HOTPLUG' ]"
name=xsng-handoff
domid=$(xen_domu_create "$name" "$T/initrd.cpio" -p)
check "xl create -p: domain $domid" [ -n "$domid" ] || finish
stamp "guest $domid created, paused"

# 1. today's answer: the switch off; on, but for a dom0 user
conf off
dp Datapath.attach "$domid"
expect_ok "attach with blkif-ring = off"
check "blkif-ring = off: today's XenDisk vbd + BlockDevice + Nbd ($(kinds "$OUT"))" \
	jqt '[.implementations[][0]] == ["XenDisk","BlockDevice","Nbd"] and .implementations[0][1].backend_type == "vbd"' <<<"$OUT"
dp Datapath.detach "$domid"
expect_ok "detach (switch off)"
conf on
dp Datapath.attach u0_handoff
expect_ok "attach for a dom0 user with blkif-ring = on"
check "a dom0 user gets today's vbd XenDisk ($(kinds "$OUT"))" \
	jqt '.implementations[0][1].backend_type == "vbd"' <<<"$OUT"
dp Datapath.detach u0_handoff
expect_ok "detach (dom0 user)"

# 1b. a ring that cannot be connected (docs/blkif-handoff.md section 4.5)
vol_create $((16 * MiB)) "xen handoff: a ring that fails"
expect_ok "Volume.create of a second volume"
K2=$KEY
URI2=$(jqr '.uri[0]' <<<"$VOL")
dpu Datapath.attach "$URI2" "$domid"
expect_ok "attach of the second volume"
XD2=$(xendisk "$OUT")
NBD2=$(jq -r '.implementations[] | select(.[0] == "Nbd") | .[1].uri' <<<"$OUT")
check "the second volume is offered the ring ($XD2)" jqt '.backend_type == "qdisk"' <<<"$XD2"
dpu Datapath.activate "$URI2" "$domid"
expect_ok "activate of the second volume"
SRV2=$(jq -r .pid "$SR/.sr/active/$K2.json")
FMARK=$(dirname "$(dirname "$(jq -r .socket "$SR/.sr/active/$K2.json")")")/$K2.ring-failed
sm2=()
while IFS=$'\t' read -r k v; do sm2+=("sm-data/$k" "$v"); done < \
	<(jq -r '.extra + {"backend-kind": .backend_type} | to_entries[] | "\(.key)\t\(.value)"' <<<"$XD2")
FAILDEV=51744	# xvdc
check "frontend and backend directories of the failing device" \
	xen_qdisk_vbd "$domid" "$FAILDEV" "$NBD2" qemu-params "$(jq -r .params <<<"$XD2")" "${sm2[@]}"
BE2=$BE FE2=$FE
ERR2=/local/domain/0/error/backend/qdisk/$domid/$FAILDEV/error
# dom0 plays the frontend: the paused guest granted nothing, so its ring
# cannot be mapped
check "a frontend whose ring-ref was never granted (Initialised)" \
	xenstore-write "$FE2/ring-ref" 30000 "$FE2/event-channel" 9 \
	"$FE2/protocol" x86_64-abi "$FE2/state" 3
check "the server failed the device (backend state 6)" \
	wait_for 60 bash -c "[ \"\$(xenstore-read $BE2/state 2>/dev/null)\" = 6 ]"
check "the error node says why ($(xs "$ERR2"))" \
	bash -c "[[ \"\$(xenstore-read '$ERR2')\" == 'ngdp-server: cannot map the ring'* ]]"
check "the server's status counts the failure" [ "$(srv_get blkif_failures "$K2")" = 1 ]
check "the failure mark names the device ($(cat "$FMARK" 2>/dev/null))" \
	bash -c "[[ \"\$(cat '$FMARK')\" == *' domain $domid device $FAILDEV: cannot map the ring'* ]]"
check "the server still runs" kill -0 "$SRV2"
xenstore-rm "$FE2"; xenstore-rm "$BE2"
xenstore-rm "/local/domain/0/error/backend/qdisk/$domid"
dpu Datapath.deactivate "$URI2" "$domid"
expect_ok "deactivate of the second volume"
dpu Datapath.detach "$URI2" "$domid"
expect_ok "detach of the second volume"
check "its server is gone" wait_for 30 test ! -e "/proc/$SRV2"
check "the failure mark outlives detach" [ -s "$FMARK" ]
dpu Datapath.attach "$URI2" "$domid"
expect_ok "attach of the second volume again"
check "with the mark, attach falls back to today's vbd XenDisk ($(kinds "$OUT"))" \
	jqt '.implementations[0][1].backend_type == "vbd"' <<<"$OUT"
dpu Datapath.detach "$URI2" "$domid"
expect_ok "detach (fallback)"
rm -f "$FMARK"
dpu Datapath.attach "$URI2" "$domid"
expect_ok "attach once the mark is removed"
check "without the mark, the ring is offered again ($(kinds "$OUT"))" \
	jqt '.implementations[0][1].backend_type == "qdisk"' <<<"$OUT"
dpu Datapath.detach "$URI2" "$domid"
expect_ok "detach of the second volume (last)"

# 2. the ring
dp Datapath.attach "$domid"
expect_ok "attach for domain $domid with blkif-ring = on"
ATT=$OUT
XD=$(xendisk "$ATT")
NBD=$(jq -r '.implementations[] | select(.[0] == "Nbd") | .[1].uri' <<<"$ATT")
check "attach returns exactly XenDisk + Nbd ($(kinds "$ATT"))" \
	jqt '[.implementations[][0]] == ["XenDisk","Nbd"]' <<<"$ATT"
check "the XenDisk is {qdisk, ngdp:$K, {ngdp-sr, ngdp-volume}} ($XD)" \
	jqt --arg k "$K" --arg sr "$SR_UUID" \
	'.backend_type == "qdisk" and .params == ("ngdp:" + $k) and .extra == {"ngdp-sr": $sr, "ngdp-volume": $k}' <<<"$XD"
dp Datapath.activate "$domid"
expect_ok "activate for domain $domid"
check "the activation record names the ring's domain" \
	jqt --arg d "$domid" '.ring == {"domain": $d, "mode": "rw"}' "$SR/.sr/active/$K.json"
SRV=$(jq -r .pid "$SR/.sr/active/$K.json")
RUNDIR=$(dirname "$(jq -r .socket "$SR/.sr/active/$K.json")")
check "the server (pid $SRV) expects the ring: --blkif-xen-domain $domid:w:$SR_UUID:$K" \
	bash -c "tr '\\0' ' ' < /proc/$SRV/cmdline | grep -q -- '--blkif-xen-domain $domid:w:$SR_UUID:$K'"
check "no /dev/nbdN connected for the ring" no_nbd_connected

# 3. the VBD as xenopsd writes it for kind qdisk (one transaction each side;
#    the frontend first: blkfront starts on the frontend's state)
DBE=/local/domain/0/backend/qdisk/$domid/$DECOY
sm=()
while IFS=$'\t' read -r k v; do sm+=("sm-data/$k" "$v"); done < \
	<(jq -r '.extra + {"backend-kind": .backend_type} | to_entries[] | "\(.key)\t\(.value)"' <<<"$XD")
check "an unmarked qdisk device of the same guest (not ours)" bash -c "
	xenstore-write $DBE/frontend /local/domain/$domid/device/vbd/$DECOY \
		$DBE/frontend-id $domid $DBE/online 1 $DBE/state 1 $DBE/mode w \
		$DBE/params x $DBE/sm-data/backend-kind qdisk"
sock=${NBD#nbd:unix:}
# plug: the VBD's frontend and backend, as xenopsd writes them from the
# XenDisk (the backend gets the block script's keys too)
plug() {
	xen_qdisk_vbd "$domid" "$DEVID" "$NBD" qemu-params "$(jq -r .params <<<"$XD")" \
		"${sm[@]}" physical-device-path "${sock%:exportname=*}" hotplug-status connected
}
# ring_up: both sides Connected (4/4)
ring_up() { [ "$(xs "$BE/state")/$(xs "$FE/state")" = 4/4 ]; }
check "frontend and backend directories written from the XenDisk" plug
check "the server claimed the device (backend state 2, InitWait)" \
	wait_for 60 bash -c "[ \"\$(xenstore-read $BE/state)\" = 2 ]"
check "the backend offers persistent grants, flush, indirect segments" \
	[ "$(xs $BE/feature-persistent)/$(xs $BE/feature-flush-cache)/$(xs $BE/feature-max-indirect-segments)" = 1/1/256 ]
check "the backend publishes the size in sectors" [ "$(xs $BE/sectors)" = $((VOL_SIZE / 512)) ]
$XL unpause "$domid"
stamp "guest $domid running"

# 4. the guest's data
check "the ring is connected (backend and frontend state 4)" \
	wait_for 300 bash -c "[ \"\$(xenstore-read $BE/state)/\$(xenstore-read $FE/state)\" = 4/4 ]"
check "the server's status names the device it claimed, one ring connected" \
	serving "$BE" 1
if check "the guest wrote and read back A and C with O_DIRECT" wait_phase DATA-DONE; then
	stamp "guest wrote A and C"
	check "the guest's writes and flushes reached the server ($(srv_get writes) writes, $(srv_get flushes) flushes)" \
		[ "$(srv_get writes)" -gt 0 -a "$(srv_get flushes)" -gt 0 ]
	# the next activate of a domain whose server died starts a new one,
	# told again to expect the ring (the mark); the device is Connected,
	# so it is claimed in state 4 and its ring re-adopted (section 5.3)
	kill -9 "$SRV"
	check "kill -9 of the server (pid $SRV): gone" wait_for 30 test ! -e "/proc/$SRV"
	dp Datapath.activate "$domid"
	expect_ok "activate again after the kill"
	old=$SRV
	SRV=$(jq -r .pid "$SR/.sr/active/$K.json")
	check "a new server started (pid $SRV, was $old)" [ "$SRV" != "$old" ]
	check "the new server claimed the Connected device again" \
		wait_for 60 serving "$BE" 1
	check "the backend is still Connected" [ "$(xs $BE/state)" = 4 ]
	ctl_put 1 RESTARTED
	check "the guest read A and C and wrote A again through the new server" \
		wait_phase RESTART-DONE &&
	check "the guest's writes reached the new server ($(srv_get writes))" [ "$(srv_get writes)" -gt 0 ]
	# 5. xenopsd's Classic clean unplug (device.ml clean_shutdown_async/wait,
	#    rm_device_state)
	check "unplug: online=0 and state=5 in one transaction" \
		xenstore-write "$BE/online" 0 "$BE/state" 5
	check "the frontend closed and the server answered Closed (6/6)" \
		wait_for 120 bash -c "[ \"\$(xenstore-read $BE/state)/\$(xenstore-read $FE/state)\" = 6/6 ]"
	xenstore-rm "$FE"
	xenstore-rm "$BE"
	check "the server released the device (status: no device, no ring)" \
		wait_for 30 serving null 0
	check "the server still runs after the unplug" kill -0 "$SRV"
	ctl_put 1 UNPLUGGED
	# 5b. xenopsd's ShutdownRequest mode (device.ml request_shutdown):
	#     normal (online=0, then shutdown-request), then force; the
	#     server drains, flushes, closes the device and writes
	#     shutdown-done, and stays for the next plug
	prev=GONE
	for c in SRN:normal:5 SRF:force:6; do
		sr=${c%%:*} mode=${c#*:}; sector=${mode#*:} mode=${mode%:*}
		check "$sr: the guest's xvda went away" wait_phase $prev 120 &&
		check "$sr: the device written again as xenopsd plugs it" plug &&
		check "$sr: the same server claimed it and connected its ring (4/4)" \
			wait_for 120 ring_up &&
		check "$sr: the guest is streaming R (8 of its writes completed)" \
			wait_for 120 streamed_at "$sector" 8 || break
		flushes=$(srv_get flushes)
		if [ "$mode" = normal ]; then
			xenstore-write "$BE/online" 0
		fi
		xenstore-write "$BE/shutdown-request" "$mode"
		check "$sr: shutdown-request $mode answered: shutdown-done" \
			wait_for 60 xs_has "$BE/shutdown-done"
		check "$sr: the device is closed (backend state 6)" [ "$(xs $BE/state)" = 6 ]
		check "$sr: the server flushed before shutdown-done ($flushes -> $(srv_get flushes) flushes, dirty: $(srv_get dirty))" \
			[ "$(srv_get flushes)/$(srv_get dirty)" = "$((flushes + 1))/false" ]
		check "$sr: the stream ended (a write failed, or R was all written)" \
			wait_phase $sr-DONE 120
		n=$(ctl_get $sector)
		check "$sr: the shutdown cut the stream ($n of 512 writes completed)" [ "$n" -lt 512 ]
		eval "N$sr=$n"
		# the toolstack's rm_device_state
		xenstore-rm "$FE"
		xenstore-rm "$BE"
		check "$sr: the server released the device and still runs" \
			wait_for 30 serving null 0
		ctl_put 1 $sr-CLOSED
		prev=GONE-$sr
	done
	# 6. plugged again, then deactivated under the connected guest
	check "the guest's xvda went away" wait_phase "$prev" 120 &&
	check "the device written again as xenopsd plugs it" plug &&
	check "the same server claimed it and connected its ring (4/4)" \
		wait_for 120 ring_up &&
	check "the guest wrote D (no flush) through it" wait_phase REPLUG-DONE &&
	check "the guest is streaming R (8 of its writes completed)" \
		wait_for 120 streamed_at 3 8 &&
	{
		dp Datapath.deactivate "$domid"
		expect_ok "Datapath.deactivate while the ring is Connected and busy"
		check "the stream ended (a write failed, or R was all written)" wait_phase STREAM-DONE 120
		NSTREAM=$(ctl_get 3)
		check "the deactivation cut the stream ($NSTREAM of 512 writes completed)" \
			[ "$NSTREAM" -lt 512 ]
		check "the server (pid $SRV) exited" wait_for 30 test ! -e "/proc/$SRV"
		check "it closed the device on its way out (backend state 6)" [ "$(xs $BE/state)" = 6 ]
		check "blkfront saw it and closed (frontend state 5 or 6)" \
			wait_for 60 bash -c "case \"\$(xenstore-read $FE/state)\" in 5|6) ;; *) false; esac"
		# the toolstack's rm_device_state
		xenstore-rm "$FE"
		xenstore-rm "$BE"
		ctl_put 1 DEACTIVATED
	} &&
	# 6b. the ring's domain deactivated while the server stays for
	#     another domain, a dom0 user of the volume (/dev/nbdN)
	check "the guest's xvda went away" wait_phase GONE2 120 &&
	{ dp Datapath.activate "$domid"; expect_ok "activate for domain $domid again"; } &&
	SRV=$(jq -r .pid "$SR/.sr/active/$K.json") &&
	{ dp Datapath.attach u0_handoff; expect_ok "attach for a dom0 user beside the ring"; } &&
	UDEV=$(jq -r '.implementations[] | select(.[0] == "BlockDevice") | .[1].path' <<<"$OUT") &&
	{ dp Datapath.activate u0_handoff; expect_ok "activate for the dom0 user ($UDEV)"; } &&
	check "one server serves both (pid $SRV)" \
		[ "$(jq -r .pid "$SR/.sr/active/$K.json")" = "$SRV" ] &&
	check "the device written again as xenopsd plugs it" plug &&
	check "the server claimed it and connected its ring (4/4)" \
		wait_for 120 ring_up &&
	check "the guest is streaming R at 32 MiB (8 of its writes completed)" \
		wait_for 120 streamed_at 4 8 &&
	{
		dp Datapath.deactivate "$domid"
		expect_ok "Datapath.deactivate of the ring's domain, the dom0 user staying"
		check "the stream ended (a write failed, or R was all written)" wait_phase STREAM2-DONE 120
		NSTREAM2=$(ctl_get 4)
		check "the release cut the stream ($NSTREAM2 of 512 writes completed)" \
			[ "$NSTREAM2" -lt 512 ]
		check "the server (pid $SRV) still runs for the dom0 user" kill -0 "$SRV"
		check "its status: ring released, no device, no ring connected ($(srv_get blkif_ring)/$(srv_get blkif_device)/$(srv_get blkif_rings))" \
			[ "$(srv_get blkif_ring)/$(srv_get blkif_device)/$(srv_get blkif_rings)" = released/null/0 ]
		check "it closed the device (backend state 6)" [ "$(xs $BE/state)" = 6 ]
		check "blkfront saw it and closed (frontend state 5 or 6)" \
			wait_for 60 bash -c "case \"\$(xenstore-read $FE/state)\" in 5|6) ;; *) false; esac"
		check "the activation record: no ring, the dom0 user alone" \
			jqt '(has("ring") | not) and (.domains | keys) == ["u0_handoff"]' "$SR/.sr/active/$K.json"
		check "the dom0 user still reads D through $UDEV" \
			bash -c "dd if=$UDEV bs=1M skip=8 count=1 iflag=direct status=none | cmp -s - $PAT/D"
		xenstore-rm "$FE"
		xenstore-rm "$BE"
		ctl_put 1 RELEASED
		dp Datapath.deactivate u0_handoff
		expect_ok "Datapath.deactivate of the dom0 user (the last: the server stops)"
		check "the server (pid $SRV) exited" wait_for 30 test ! -e "/proc/$SRV"
		dp Datapath.detach u0_handoff
		expect_ok "Datapath.detach of the dom0 user"
	}
fi
xen_domu_result "$name"
check "the unmarked device was never touched (state 1, no feature-* keys)" \
	[ "$(xs $DBE/state)/$(xenstore-list "$DBE" | grep -c '^feature-')" = 1/0 ]
if [ "$FAIL" -gt 0 ]; then
	echo "  server log (last 40 lines):"
	tail -n 40 "$RUNDIR/server.log" | sed 's/^/    /'
fi

# 7. deactivate (again: idempotent) + detach leave nothing behind
dp Datapath.deactivate "$domid"
expect_ok "Datapath.deactivate (again)"
dp Datapath.detach "$domid"
expect_ok "Datapath.detach"
check "no ngdp-server left" bash -c '! pgrep -x ngdp-server >/dev/null'
check "no activation record left" [ ! -e "$SR/.sr/active/$K.json" ]
check "no run directory left (ring mark, sockets)" [ ! -e "$RUNDIR" ]
check "no /dev/nbdN left connected" no_nbd_connected
check "nothing of ours left in xenstore" [ -z "$(xenstore-list /local/domain/0/backend/qdisk/$domid 2>/dev/null | grep -v "^$DECOY\$")" ]
xenstore-rm "/local/domain/0/backend/qdisk/$domid"
losetup -d "$CTL"

stamp "checking the image"
IMG=$(vol_image "$K")
truncate -s $VOL_SIZE "$T/ref"
put_ref "$T/ref" A 0; put_ref "$T/ref" C 4; put_ref "$T/ref" D 8
# each stream: the writes the guest saw complete; the one after them may
# have been done before the device closed, or not at all
qemu-img convert -f qcow2 -O raw "$IMG" "$T/img.raw"
for s in 1024:${NSTREAM:-0} 2048:${NSTREAM2:-0} 3072:${NSRN:-0} 3584:${NSRF:-0}; do
	at=${s%:*} n=${s#*:}
	dd if="$PAT/R" of="$T/ref" bs=16k count="$n" seek="$at" conv=notrunc status=none
	dd if="$T/img.raw" bs=16k skip=$((at + n)) count=1 status=none > "$T/next"
	if [ "$n" -lt 512 ] && dd if="$PAT/R" bs=16k skip="$n" count=1 status=none | cmp -s - "$T/next"; then
		dd if="$T/next" of="$T/ref" bs=16k seek=$((at + n)) conv=notrunc status=none
	fi
done
rm -f "$T/img.raw"
check "qemu-img check of the image" qemu-img check -q -f qcow2 "$IMG"
check "the image holds exactly the guest's data, with the ${NSTREAM:-0} + ${NSTREAM2:-0} + ${NSRN:-0} + ${NSRF:-0} stream writes it saw complete" qemu-img compare -q -f raw -F qcow2 "$T/ref" "$IMG"
TEST_NAME=t-xen-handoff
finish
