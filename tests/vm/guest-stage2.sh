#!/bin/bash
# Second stage of the test guests, PID 1 in the host's userland (see
# guest-init): mount the usual file systems, start Xen's services in a dom0,
# run /xsng-vm/job.sh with its output in /xsng-vm/output and its exit
# status in /xsng-vm/rc, then power off.
con=$1
exec >"$con" 2>&1 <"$con"
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb
R=/xsng-vm
mount -t proc proc /proc
mount -t sysfs sys /sys
echo "stage2: up at $(cut -d" " -f1 /proc/uptime)s"
mkdir -p /dev/pts /dev/shm
# what udev would add: bash's process substitution needs /dev/fd
ln -sfn /proc/self/fd /dev/fd
ln -sfn /proc/self/fd/0 /dev/stdin
ln -sfn /proc/self/fd/1 /dev/stdout
ln -sfn /proc/self/fd/2 /dev/stderr
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/lock /var/lock 2>/dev/null
hostname xsng-vm
ip link set lo up 2>/dev/null
modprobe loop max_loop=16

off() { sync; busybox poweroff -f; sleep 10; echo o > /proc/sysrq-trigger; }

if [ "$(cat $R/mode)" = xen ]; then
	if ! bash /xsng-vm/xen-dom0-up.sh >> $R/output 2>&1; then
		echo "stage2: starting Xen's services failed" | tee -a $R/output
		echo 125 > $R/rc
		off
	fi
fi
echo "stage2: job starts at $(cut -d" " -f1 /proc/uptime)s"
bash $R/job.sh >> $R/output 2>&1 < /dev/null
echo $? > $R/rc.tmp && mv $R/rc.tmp $R/rc
echo "stage2: job exited $(cat $R/rc) at $(cut -d" " -f1 /proc/uptime)s"
off
