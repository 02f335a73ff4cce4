# Job of the PV guest in t-xen-blkif (busybox sh in the guest; GNU dd/cmp in
# /usr/bin for O_DIRECT).  /dev/xvda: the volume under test, through
# blkfront -> ngdp-server's own blkif backend (no blkback, no NBD).
# /dev/xvdb: a control disk shared with dom0 (sector 0: the guest's phase,
# sector 1: dom0's answer, sector 2: the exit status, written by init).
# Layout of xvda in MiB: A (4) at 0, C (1) at 4 written with O_SYNC, K0/K1
# (4) rewritten at 8 while dom0 kills the server with SIGKILL and starts a
# new one, B0/B1 (4) rewritten at 16 while dom0 takes a live snapshot, then
# E (4) at 8 and F (4) at 16.
. /lib.sh

[ -b $X ] || fail "no $X"
echo "domU: xvda is $(($(cat /sys/block/xvda/size) / 2048)) MiB, $(cat /sys/block/xvda/queue/write_cache 2>/dev/null)"
put A 0
get_ok A 0 || fail "A does not read back"
put C 4 sync
get_ok C 4 || fail "C (O_SYNC) does not read back"
echo "domU: A and C (O_SYNC) written and read back"
mark 0 A-DONE
# keep writing while dom0 kills the server and starts a new one
rewrite_until RESTARTED 8 3000 K0 K1
echo "domU: $n K writes across the server's kill -9 and restart"
get_ok $last 8 || fail "the last write across the restart ($last) does not read back"
get_ok A 0 || fail "A does not read back after the restart"
get_ok C 4 || fail "C does not read back after the restart"
mark 0 RESTART-OK
# keep writing while dom0 takes a live snapshot (suspend, new top, resume)
rewrite_until SNAPPED 16 3000 B0 B1
echo "domU: $n B writes while dom0 took a live snapshot"
put E 8
put F 16
get_ok E 8 || fail "E does not read back"
get_ok F 16 || fail "F does not read back"
get_ok A 0 || fail "A does not read back after the snapshot"
get_ok C 4 || fail "C does not read back after the snapshot"
mark 0 DONE
echo "domU: all patterns read back with O_DIRECT"
exit 0
