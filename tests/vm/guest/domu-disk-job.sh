# Job of the PV guest in t-xen-vm (busybox sh in the guest; GNU dd/cmp in
# /usr/bin for O_DIRECT).  /dev/xvda: the volume under test, through
# blkfront -> blkback -> /dev/nbdN -> ngdp-server.  /dev/xvdb: a control
# disk shared with dom0 (sector 0: the guest's phase, sector 1: dom0's
# answer, sector 2: the exit status, written by init).
# Layout of xvda in MiB: A (4) at 0, then B0/B1 (4) rewritten at 8 while
# dom0 takes the snapshot, then C (1) at 1 and E (4) at 8, then F (1)
# rewritten at 2 while dom0 destroys the snapshot and the datapath server
# merges the snapshot's image into the leaf (live coalesce).
. /lib.sh

[ -b $X ] || fail "no $X"
echo "domU: xvda is $(($(cat /sys/block/xvda/size) / 2048)) MiB"
put A 0
get_ok A 0 || fail "A does not read back"
echo "domU: A written and read back"
mark 0 A-DONE
# keep writing while dom0 snapshots, until it says it is done
rewrite_until SNAPPED 8 3000 B0 B1
echo "domU: $n B writes while dom0 took the snapshot"
put C 1
put E 8
get_ok A 0 && fail "A still whole after C overwrote its second MiB"
get_ok C 1 || fail "C does not read back"
get_ok E 8 || fail "E does not read back"
mark 0 CE-DONE
# dom0 destroys the snapshot: our datapath server merges the old leaf
# down into the new one while we rewrite A's third MiB with F
rewrite_until MERGED 2 6000 F
echo "domU: $n F writes while dom0 merged the snapshot's image away"
$DD if=$P/A of=$P/A3 bs=1M skip=3 count=1 status=none
get_ok F 2 || fail "F does not read back after the merge"
get_ok A3 3 || fail "A's last MiB does not read back after the merge"
get_ok C 1 || fail "C does not read back after the merge"
get_ok E 8 || fail "E does not read back after the merge"
mark 0 DONE
echo "domU: all patterns read back with O_DIRECT"
exit 0
