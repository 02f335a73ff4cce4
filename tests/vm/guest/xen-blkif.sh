#!/bin/bash
# dom0 side of t-xen-blkif (runs in Xen's dom0 under vm_run_xen): a QCOW2
# volume made by the INSTALLED ext4-ng plugin on a loop SR, served to a PV
# guest's blkfront by ngdp-server's own blkif backend (--blkif-xen): no
# blkback, no /dev/nbdN.  The vbd's xenstore entries are written by hand,
# as xenopsd would write a "qdisk" one, for a guest created paused; the
# guest writes and reads patterns with O_DIRECT and flushes; dom0 kills the
# server with SIGKILL while the guest writes and starts a new one on the
# same backend directory, which re-adopts the ring.  After the guest powers
# off: the backend closed, the server's exit, qemu-img check and compare
# against a reference.
set -u
PLUGIN=ext4-ng
. "$SRCDIR/tests/functional/lib.sh"
. "$VM_DIR/xen-lib.sh"
# cleanup exits with the status it finds in $?: keep the script's
trap 'rc=$?; xen_cleanup; (exit $rc); cleanup' EXIT
MiB=1048576
VOL_SIZE=$((64 * MiB))
SERVER=$INSTALL_ROOT/usr/libexec/xapi-storage-ng/ngdp-server
DEVID=51712	# xvda
name=xsng-blkif

PAT=$T/pat
mkdir -p "$PAT"
for p in A:4 C:1 K0:4 K1:4 E:4; do head -c $((${p#*:} * MiB)) /dev/urandom > "$PAT/${p%:*}"; done
XEN_INITRD=$T/domu-initrd.cpio
xen_domu_initrd "$XEN_INITRD" "$VM_DIR/guest/domu-blkif-job.sh" "xvda xvdb" \
	"$PAT"/A "$PAT"/C "$PAT"/K0 "$PAT"/K1 "$PAT"/E || { fail "building the guest's initrd"; finish; }

put_ref() { dd if="$PAT/$2" of="$1" bs=1M seek="$3" conv=notrunc status=none; }
xs() { xenstore-read "$1" 2>/dev/null; }

# wait_for SECONDS COMMAND...: until COMMAND succeeds
wait_for() {
	local end=$((SECONDS + $1)); shift
	while [ $SECONDS -lt $end ]; do "$@" && return 0; sleep 0.2; done
	"$@"
}

# start_server: ngdp-server on the volume with the ring of BE; sets SRV
start_server() {
	rm -f "$T/srv.pid" "$T/nbd.sock" "$T/ctl.sock"
	"$SERVER" --image "$IMG" --format qcow2 --socket "$T/nbd.sock" \
		--control "$T/ctl.sock" --pidfile "$T/srv.pid" --flush-interval 0 \
		--blkif-xen "$BE" --log-stderr 2>>"$T/server.log" &
	SRV=$!
	PIDS+=("$SRV")
	wait_for 60 test -s "$T/srv.pid"
}
srv_get() { "$NGDP_CTL" "$T/ctl.sock" get "$1"; }

stamp "start"
mk_sr || { fail "SR.create/attach on a loop device"; finish; }
vol_create $VOL_SIZE "xen blkif disk"
expect_ok "Volume.create ($((VOL_SIZE / MiB)) MiB)"
IMG=$(vol_image "$KEY")
check "the volume is QCOW2" [ "$(vol_qemu_fmt "$KEY")" = qcow2 ]

# the control disk (plain loop device through blkback, written by both sides)
truncate -s 1M "$T/ctl"
CTL=$(losetup -f --show "$T/ctl") || { fail "control disk"; finish; }
XEN_CFG_EXTRA="disk = [ 'phy:$CTL,xvdb,w,script=$XEN_HOTPLUG' ]"
domid=$(xen_domu_create "$name" "$XEN_INITRD" -p)
check "xl create -p: domain $domid" [ -n "$domid" ] || finish

# the vbd's xenstore entries, as xenopsd writes them for a "qdisk" backend
# (device.ml: Vbd.add); the guest owns its frontend directory and reads ours
BE=/local/domain/0/backend/qdisk/$domid/$DEVID
FE=/local/domain/$domid/device/vbd/$DEVID
check "frontend and backend directories written" bash -c "
	xenstore-write $FE/backend $BE $FE/backend-id 0 $FE/state 1 \
		$FE/virtual-device $DEVID $FE/device-type disk &&
	xenstore-chmod -r $FE n$domid r0 &&
	xenstore-write $BE/frontend $FE $BE/frontend-id $domid $BE/online 1 \
		$BE/removable 0 $BE/state 1 $BE/dev xvda $BE/type phy \
		$BE/mode w $BE/params $IMG &&
	xenstore-chmod -r $BE n0 r$domid"

start_server
check "ngdp-server --blkif-xen started (pid $SRV)" [ "$(cat "$T/srv.pid" 2>/dev/null)" = "$SRV" ]
check "the backend waits for the frontend (state 2, InitWait)" [ "$(xs $BE/state)" = 2 ]
check "the backend offers persistent grants, flush, indirect segments" \
	[ "$(xs $BE/feature-persistent)/$(xs $BE/feature-flush-cache)/$(xs $BE/feature-max-indirect-segments)" = 1/1/256 ]
check "the backend publishes the size in sectors" [ "$(xs $BE/sectors)" = $((VOL_SIZE / 512)) ]
$XL unpause "$domid"
stamp "guest $domid running"

if check "the ring is connected (backend and frontend state 4)" \
	wait_for 300 bash -c "[ \"\$(xenstore-read $BE/state)/\$(xenstore-read $FE/state)\" = 4/4 ]"; then
	check "the guest wrote and read back A and C" wait_phase A-DONE
	stamp "guest wrote A and C"
	check "flushes reached the server (fsync, O_SYNC)" [ "$(srv_get flushes)" -gt 0 ]
	w0=$(srv_get writes)
	# the guest writes K0/K1 in a loop: kill while writes are flowing
	check "the guest is writing through the ring" \
		wait_for 120 bash -c "[ \"\$('$NGDP_CTL' '$T/ctl.sock' get writes)\" -gt $w0 ]"
	# kill when the server has requests in flight (a moment before)
	for i in $(seq 300); do
		f=$(srv_get in_flight) && [ "$f" -gt 0 ] && break
	done
	kill -9 "$SRV"
	stamp "kill -9 of the server (pid $SRV)"
	check "the kill came with requests in flight ($f a moment before)" [ "$f" -gt 0 ]
	wait "$SRV"
	check "the server died of SIGKILL" [ $? -eq 137 ]
	old=$SRV
	start_server
	check "a new server started (pid $SRV) on the same backend" \
		[ "$SRV" != "$old" -a "$(cat "$T/srv.pid" 2>/dev/null)" = "$SRV" ]
	check "the backend is still Connected" [ "$(xs $BE/state)" = 4 ]
	w0=$(srv_get writes)
	check "the new server serves the ring (guest writes arrive)" \
		wait_for 300 bash -c "[ \"\$('$NGDP_CTL' '$T/ctl.sock' get writes)\" -gt $w0 ]"
	ctl_put 1 RESTARTED
	stamp "new server $SRV serving"
	check "the guest's writes across the restart read back" wait_phase DONE
	check "flushes reached the new server" [ "$(srv_get flushes)" -gt 0 ]
fi
xen_domu_wait "$name" 600
stamp "guest gone"
rc=$(ctl_get 2)
check "the guest's job passed ($rc)" [ "$rc" = XSNG-RC=0 ]
if [ "$rc" = XSNG-RC=0 ]; then
	xen_domu_console "$name" | grep '^domU:' | sed 's/^/  guest: /'
else
	xen_domu_console "$name" | tail -n 30 | sed 's/^/  guest console: /'
fi
# the toolstack removed the frontend: the backend closes, the server stays
check "the backend closed when the frontend went (state 6)" \
	wait_for 60 bash -c "[ \"\$(xenstore-read $BE/state)\" = 6 ]"
check "the server outlived the frontend" kill -0 "$SRV"
kill -TERM "$SRV"
wait "$SRV"
check "the server exits 0 on SIGTERM" [ $? -eq 0 ]
xenstore-rm "$BE"
losetup -d "$CTL"

stamp "checking the image"
truncate -s $VOL_SIZE "$T/ref"
put_ref "$T/ref" A 0; put_ref "$T/ref" C 4; put_ref "$T/ref" E 8
check "qemu-img check of the volume" qemu-img check -q -f qcow2 "$IMG"
check "the volume holds exactly the guest's final data" \
	qemu-img compare -q -f raw -F qcow2 "$T/ref" "$IMG"
if [ "$FAIL" -gt 0 ]; then
	echo "  server log (last 40 lines):"
	tail -n 40 "$T/server.log" | sed 's/^/    /'
fi
TEST_NAME=t-xen-blkif
finish
