# Job of the PV guest of bench/xen-dom0.sh (busybox sh; fio and its
# libraries packed from dom0's userland by xen_domu_initrd).  /dev/xvda:
# the disk under test (a, b or c); /dev/xvdb: the control disk shared with
# dom0 (domu-lib.sh: sector 0 our phase, sector 1 dom0's answer).
# /data/tests: one line per test, "NAME RW BS QD"; /data/runtime: seconds.
# Phase READY, then for test i: wait for GO-i, run fio, write "fio-rc t_go
# t_end <fio terse v3 line>" (t_: the guest's uptime) into the 4 KiB slot
# at sector 16 + 8*i, phase DONE-i.
. /lib.sh
FIO=/usr/bin/fio
[ -b $X ] || fail "no $X"
mkdir -p /tmp
rt=$(cat $P/runtime)
echo "domU: xvda $(($(cat /sys/block/xvda/size) / 2048)) MiB, runtime ${rt}s per test"
# READY once; then each test waits for dom0's GO-i and ends with DONE-i,
# which stays in sector 0 until dom0 has read it and said GO-(i+1)
mark 0 READY
i=0 bad=0
while read -r tname rw bs qd; do
	n=0
	while [ "$(ctl 1)" != GO-$i ]; do
		sleep 0.2
		n=$((n + 1))
		[ $n -lt 3000 ] || fail "dom0 never said GO-$i"
	done
	t_go=$(cut -d' ' -f1 /proc/uptime)
	$FIO --name="$tname" --filename=$X --direct=1 --ioengine=libaio --rw="$rw" \
		--bs="$bs" --iodepth="$qd" --runtime="$rt" --time_based --thread \
		--disk_util=0 --output-format=terse --terse-version=3 > /tmp/fio.out 2> /tmp/fio.err
	frc=$?
	t_end=$(cut -d' ' -f1 /proc/uptime)
	line=$(grep '^3;' /tmp/fio.out | head -1)
	if [ $frc -ne 0 ] || [ -z "$line" ]; then
		tail -n 5 /tmp/fio.out /tmp/fio.err
		[ $frc -ne 0 ] || frc=1
		bad=$((bad + 1))
	fi
	printf '%s %s %s %s\n' "$frc" "$t_go" "$t_end" "$line" |
		$DD of=$CTL bs=4096 seek=$((2 + i)) count=1 iflag=fullblock conv=sync oflag=direct status=none ||
		fail "writing the result of $tname"
	echo "domU: $tname: fio exit $frc"
	mark 0 DONE-$i
	i=$((i + 1))
done < $P/tests
[ $bad -eq 0 ] || fail "$bad fio runs failed"
