#!/bin/bash
# dom0 side of t-xen-blkif (runs in Xen's dom0 under vm_run_xen): a QCOW2
# volume made by the INSTALLED ext4-ng plugin on a loop SR, served to a PV
# guest's blkfront by ngdp-server's own blkif backend (--blkif-xen): no
# blkback, no /dev/nbdN.  The vbd's xenstore entries are written by hand,
# as xenopsd would write a "qdisk" one, for a guest created paused; the
# guest writes and reads patterns with O_DIRECT and flushes; dom0 kills the
# server with SIGKILL while the guest writes and starts a new one on the
# same backend directory, which re-adopts the ring; then a live snapshot
# while the guest writes.  After the guest powers off: the backend closed,
# the server's exit, qemu-img check and compare of the snapshot and the
# new top against references.  Twice: blkfront with persistent grants and
# a one-page ring (its defaults), then without persistent grants and with
# a 4-page ring (module parameters).
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

PAT=$T/pat
mkdir -p "$PAT"
for p in A:4 C:1 K0:4 K1:4 B0:4 B1:4 E:4 F:4; do head -c $((${p#*:} * MiB)) /dev/urandom > "$PAT/${p%:*}"; done

# start_server: ngdp-server on the volume with the ring of BE; sets SRV
start_server() {
	rm -f "$W/srv.pid" "$W/nbd.sock" "$W/ctl.sock"
	"$SERVER" --image "$IMG" --format qcow2 --socket "$W/nbd.sock" \
		--control "$W/ctl.sock" --pidfile "$W/srv.pid" --flush-interval 0 \
		--blkif-xen "$BE" $SRV_EXTRA --log-stderr 2>>"$W/server.log" &
	SRV=$!
	PIDS+=("$SRV")
	wait_for 60 test -s "$W/srv.pid"
}
srv_get() { "$NGDP_CTL" "$W/ctl.sock" get "$1"; }
srv_call() { "$NGDP_CTL" "$W/ctl.sock" "$1" >/dev/null; }	# JSON: ok?

# writes_move W0 SECONDS: until the server's write count passes W0; fails
# at once when the backend leaves Connected (the server dropped the ring)
writes_move() {
	local end=$((SECONDS + $2))
	while [ $SECONDS -lt $end ]; do
		[ "$(srv_get writes)" -gt "$1" ] 2>/dev/null && return 0
		[ "$(xs "$BE/state")" = 4 ] || return 1
		sleep 0.2
	done
	return 1
}

# The guest's run, with run_one's variables: connect, A and C, kill -9 and
# restart while the guest writes K, a live snapshot while it writes B.
# Returns 1 at the first step that failed.
scenario() {
	check "the ring is connected (backend and frontend state 4)" \
		wait_for 300 bash -c "[ \"\$(xenstore-read $BE/state)/\$(xenstore-read $FE/state)\" = 4/4 ]" ||
		return 1
	if [ "$MODE" = one-use ]; then
		check "blkfront uses one-use grants and a 4-page ring" \
			[ "$(xs $FE/feature-persistent)/$(xs $FE/ring-page-order)" = 0/2 ]
	else
		check "blkfront uses persistent grants and a 1-page ring" \
			[ "$(xs $FE/feature-persistent)/$(xs $FE/ring-page-order)" = 1/ ]
	fi
	check "the guest wrote and read back A and C" wait_phase A-DONE || return 1
	stamp "guest wrote A and C"
	check "flushes reached the server (fsync, O_SYNC)" [ "$(srv_get flushes)" -gt 0 ]
	# the guest's O_DIRECT reads landed in its granted pages, no copy
	check "reads went straight into the granted pages ($(srv_get direct_reads))" \
		[ "$(srv_get direct_reads)" -gt 0 ]
	# the guest writes K0/K1 in a loop: kill while writes are flowing,
	# when the server has requests in flight (a moment before)
	check "the guest is writing through the ring" writes_move "$(srv_get writes)" 120 ||
		return 1
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
		[ "$SRV" != "$old" -a "$(cat "$W/srv.pid" 2>/dev/null)" = "$SRV" ] || return 1
	check "the new server serves the ring (guest writes arrive)" \
		writes_move "$(srv_get writes)" 300 || return 1
	check "the backend is still Connected" [ "$(xs $BE/state)" = 4 ]
	ctl_put 1 RESTARTED
	stamp "new server $SRV serving"
	check "the guest's writes across the restart read back" wait_phase RESTART-OK ||
		return 1
	check "flushes reached the new server" [ "$(srv_get flushes)" -gt 0 ]
	# a live snapshot while the guest rewrites B0/B1, the way the volume
	# plugin takes one of an active volume: suspend (drain, flush), a new
	# QCOW2 top over the image (a plain name: same directory), resume on it
	writes_move "$(srv_get writes)" 120
	stamp "live snapshot"
	check "suspend while the guest writes" srv_call '{"op":"suspend","timeout_ms":120000}' &&
	check "a new QCOW2 top over the image" \
		qemu-img create -q -f qcow2 -b "$(basename "$IMG")" -F qcow2 "$TOP" &&
	check "resume on the new top" srv_call "{\"op\":\"resume\",\"image\":\"$TOP\"}" ||
		return 1
	ctl_put 1 SNAPPED
	check "the guest wrote and read back through the new top" wait_phase DONE ||
		return 1
	# the restarted server's 16-page cache ran full and dropped pages
	# while reads held others, and every check above still passed
	[ "$MODE" != small-cache ] ||
		check "the grant cache evicted pages ($(srv_get grant_cache_evictions) times)" \
			[ "$(srv_get grant_cache_evictions)" -gt 0 ]
}

# run_one MODE: persistent or one-use (blkfront's grants), or small-cache:
# persistent grants with the server's grant cache at 16 pages, so that it
# evicts while reads hold pages (reads of up to 8 pages direct, the rest
# copied)
run_one() {
	local W=$T/$MODE name=xsng-blkif-$MODE domid BE FE IMG TOP CTL SRV old w0 f i rc
	mkdir -p "$W"
	SRV_EXTRA=
	case $MODE in
	persistent) XEN_DOMU_MODPARAMS= ;;
	small-cache) XEN_DOMU_MODPARAMS= SRV_EXTRA="--blkif-grant-cache 16" ;;
	one-use) XEN_DOMU_MODPARAMS="xen-blkfront feature_persistent=0 max_ring_page_order=2" ;;
	*) fail "unknown mode $MODE (XEN_BLKIF_MODES: persistent, small-cache, one-use)"; return ;;
	esac
	xen_domu_initrd "$W/initrd.cpio" "$VM_DIR/guest/domu-blkif-job.sh" "xvda xvdb" \
		"$PAT"/A "$PAT"/C "$PAT"/K0 "$PAT"/K1 "$PAT"/B0 "$PAT"/B1 "$PAT"/E "$PAT"/F ||
		{ fail "building the guest's initrd"; return; }
	stamp "start"
	vol_create $VOL_SIZE "xen blkif disk"
	expect_ok "Volume.create ($((VOL_SIZE / MiB)) MiB)"
	IMG=$(vol_image "$KEY")
	TOP=$(dirname "$IMG")/top-$(basename "$IMG")	# after the live snapshot
	check "the volume is QCOW2" [ "$(vol_qemu_fmt "$KEY")" = qcow2 ]

	# the control disk (plain loop device through blkback, written by both sides)
	truncate -s 1M "$W/ctl"
	CTL=$(losetup -f --show "$W/ctl") || { fail "control disk"; return; }
	XEN_CFG_EXTRA="disk = [ 'phy:$CTL,xvdb,w,script=$XEN_HOTPLUG' ]"
	domid=$(xen_domu_create "$name" "$W/initrd.cpio" -p)
	check "xl create -p: domain $domid" [ -n "$domid" ] || return

	# the vbd's xenstore entries, as xenopsd writes them for a "qdisk" backend
	check "frontend and backend directories written" xen_qdisk_vbd "$domid" $DEVID "$IMG"

	start_server
	check "ngdp-server --blkif-xen started (pid $SRV)" [ "$(cat "$W/srv.pid" 2>/dev/null)" = "$SRV" ]
	check "the backend waits for the frontend (state 2, InitWait)" [ "$(xs $BE/state)" = 2 ]
	check "the backend offers persistent grants, flush, indirect segments" \
		[ "$(xs $BE/feature-persistent)/$(xs $BE/feature-flush-cache)/$(xs $BE/feature-max-indirect-segments)" = 1/1/256 ]
	check "the backend publishes the size in sectors" [ "$(xs $BE/sectors)" = $((VOL_SIZE / 512)) ]
	$XL unpause "$domid"
	stamp "guest $domid running"

	# a step that fails ends the scenario and destroys the guest (a guest
	# whose disk is stuck would only time out)
	scenario || { stamp "scenario stopped: destroying the guest"; $XL destroy "$name"; }
	xen_domu_result "$name"
	# the toolstack removed the frontend: the backend closes, the server stays
	check "the backend closed when the frontend went (state 6)" \
		wait_for 60 bash -c "[ \"\$(xenstore-read $BE/state)\" = 6 ]"
	check "the server outlived the frontend" kill -0 "$SRV"
	kill -TERM "$SRV"
	wait "$SRV"
	check "the server exits 0 on SIGTERM" [ $? -eq 0 ]
	xenstore-rm "$BE"
	losetup -d "$CTL"

	stamp "checking the images"
	# the snapshot: A, C, one whole K, and in B's region only what the guest
	# wrote (each 4 KiB block zero, B0 or B1)
	check "qemu-img check of the snapshot" qemu-img check -q -f qcow2 "$IMG"
	qemu-img convert -f qcow2 -O raw "$IMG" "$W/snap.raw"
	truncate -s $VOL_SIZE "$W/ref"
	put_ref "$W/ref" A 0; put_ref "$W/ref" C 4
	dd if="$W/snap.raw" of="$W/ref" bs=1M skip=8 seek=8 count=4 conv=notrunc status=none
	dd if="$W/snap.raw" of="$W/ref" bs=1M skip=16 seek=16 count=4 conv=notrunc status=none
	check "the snapshot holds A, C and nothing written after it" cmp -s "$W/ref" "$W/snap.raw"
	check "the snapshot holds K0 or K1 whole" bash -c "
		dd if='$W/snap.raw' bs=1M skip=8 count=4 status=none | cmp -s - '$PAT/K0' ||
		dd if='$W/snap.raw' bs=1M skip=8 count=4 status=none | cmp -s - '$PAT/K1'"
	check "the snapshot's B region holds only what the guest wrote" \
		region_blocks_ok "$W/snap.raw" 16 4 "$PAT/B0" "$PAT/B1"
	rm -f "$W/snap.raw"
	# the top: A, C, E, F over the snapshot
	truncate -s 0 "$W/ref"; truncate -s $VOL_SIZE "$W/ref"
	put_ref "$W/ref" A 0; put_ref "$W/ref" C 4; put_ref "$W/ref" E 8; put_ref "$W/ref" F 16
	check "qemu-img check of the new top" qemu-img check -q -f qcow2 "$TOP"
	check "the new top holds exactly the guest's final data" \
		qemu-img compare -q -f raw -F qcow2 "$W/ref" "$TOP"
	if [ "$FAIL" -gt "$fail0" ]; then
		echo "  server log (last 40 lines):"
		tail -n 40 "$W/server.log" | sed 's/^/    /'
	fi
}

mk_sr || { fail "SR.create/attach on a loop device"; finish; }
for MODE in ${XEN_BLKIF_MODES:-persistent small-cache one-use}; do
	TEST_NAME=t-xen-blkif[$MODE]
	fail0=$FAIL
	run_one
done
TEST_NAME=t-xen-blkif
finish
