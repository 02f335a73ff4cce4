# Job of the PV guest in t-xen-handoff (busybox sh in the guest; GNU dd/cmp
# in /usr/bin for O_DIRECT).  /dev/xvda: the volume, through blkfront ->
# the qdisk device that ngdp-server claimed after Datapath.attach offered
# it; /dev/xvdb: the control disk (domu-lib.sh).  A (4 MiB) at 0, C (1 MiB)
# at 4 with O_SYNC, each followed by a flush; dom0 kills the server with
# SIGKILL and activates again: A and C read back and A written again
# through the new server; then dom0 unplugs xvda the way xenopsd does, and
# the disk must go away; dom0 plugs it again: D (1 MiB) at 8 MiB, written
# with O_DIRECT and no flush, reads back; then the guest streams R (8 MiB)
# in 16 KiB writes from 16 MiB on, O_DIRECT and no flush, one at a time,
# recording in sector 3 how many completed; dom0 deactivates the volume
# while it streams: a write then fails, and the disk must go away.  Then
# the same again at 32 MiB (counted in sector 4), where dom0 deactivates
# the ring's domain while the server stays for a dom0 user.  Before those,
# between the unplug and the second plug, two more plugs each cut by a
# shutdown-request (normal, then force) while the guest streams R at 48
# and 56 MiB (counted in sectors 5 and 6).
. /lib.sh
# wait_answer TEXT: until dom0 writes TEXT in sector 1 (10 minutes)
wait_answer() {
	i=0
	while [ "$(ctl 1)" != "$1" ]; do
		sleep 0.2
		i=$((i + 1))
		[ $i -lt 3000 ] || fail "dom0 never answered $1"
	done
}
# disk_is present|absent SECONDS: until $X is (or is not) a block device
disk_is() {
	i=0
	while [ $i -lt $(($2 * 10)) ]; do
		if [ -b $X ]; then [ $1 = present ] && return 0
		else [ $1 = absent ] && return 0; fi
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# stream SEEK SECTOR: R in 16 KiB writes from block SEEK on, O_DIRECT and
# no flush, one at a time, until a write fails (dom0 deactivates) or R is
# all written, counting those that completed in control sector SECTOR
stream() {
	n=0
	while [ $n -lt 512 ] &&
	      $DD if=$P/R of=$X bs=16k skip=$n seek=$(($1 + n)) count=1 \
		oflag=direct conv=notrunc status=none 2>/dev/null; do
		n=$((n + 1))
		mark $2 $n
	done
	echo "domU: $n writes of R completed, then $([ $n -lt 512 ] && echo "one failed" || echo "R was all written")"
}
[ -b $X ] || fail "no $X"
echo "domU: xvda is $(($(cat /sys/block/xvda/size) / 2048)) MiB"
put A 0
get_ok A 0 || fail "A does not read back"
put C 4 sync
get_ok C 4 || fail "C (O_SYNC) does not read back"
get_ok A 0 || fail "A does not read back after C"
echo "domU: A and C (O_SYNC) written and read back with O_DIRECT"
mark 0 DATA-DONE
wait_answer RESTARTED
get_ok A 0 || fail "A does not read back through the new server"
get_ok C 4 || fail "C does not read back through the new server"
put A 0
get_ok A 0 || fail "A written again does not read back"
echo "domU: A and C read back, A written again, through the new server"
mark 0 RESTART-DONE
wait_answer UNPLUGGED
disk_is absent 30 || fail "xvda is still there after the unplug"
echo "domU: xvda went away with the unplug"
mark 0 GONE
# xenopsd's ShutdownRequest mode, normal then force: a stream each, cut by
# dom0's shutdown-request
for c in SRN:3072:5 SRF:3584:6; do
	name=${c%%:*} c=${c#*:}
	disk_is present 120 || fail "xvda did not come back for $name"
	stream ${c%:*} ${c#*:}
	mark 0 $name-DONE
	wait_answer $name-CLOSED
	disk_is absent 30 || fail "xvda is still there after $name"
	echo "domU: xvda went away with $name"
	mark 0 GONE-$name
done
disk_is present 120 || fail "xvda did not come back when dom0 plugged it again"
# no flush: deactivate must flush what the guest saw completed
$DD if=$P/D of=$X bs=1M seek=8 oflag=direct conv=notrunc status=none ||
	fail "O_DIRECT write of D at 8M after the second plug"
get_ok D 8 || fail "D does not read back after the second plug"
echo "domU: xvda plugged again, D written (no flush) and read back"
mark 0 REPLUG-DONE
stream 1024 3
mark 0 STREAM-DONE
wait_answer DEACTIVATED
disk_is absent 30 || fail "xvda is still there after dom0 deactivated it"
echo "domU: xvda went away with the deactivation"
mark 0 GONE2
# the ring's domain deactivated while the server stays for another domain
disk_is present 120 || fail "xvda did not come back for the release test"
stream 2048 4
mark 0 STREAM2-DONE
wait_answer RELEASED
disk_is absent 30 || fail "xvda is still there after its ring was released"
echo "domU: xvda went away with the release of its ring"
exit 0
