#!/bin/bash
# Run by guest-stage2.sh in Xen's dom0, before the job: the services a Xen
# host needs for `xl create` (xenfs, devpts, the backend modules, oxenstored,
# xen-init-dom0, xenconsoled).  Exits non-zero, saying what failed, when
# dom0 cannot host guests.
set -u
X=/usr/lib/xen-4.17/bin
step() { echo "dom0: $*"; }
die() { echo "dom0: FAILED: $*"; exit 1; }
[ -x $X/xl ] || die "no $X/xl (package xen-utils-4.17)"
mkdir -p /proc/xen
mountpoint -q /proc/xen || mount -t xenfs xenfs /proc/xen || die "mount -t xenfs"
mountpoint -q /dev/pts || mount -t devpts devpts /dev/pts || die "mount devpts"
modprobe -a xen-evtchn xen-gntdev xen-gntalloc xen-blkback xen-privcmd ||
	die "modprobe of the Xen backend modules"
mkdir -p /run/xen /run/xenstored /var/run/xen /var/run/xenstored /var/lib/xen \
	/var/lib/xenstored /var/log/xen/console
$X/oxenstored --pid-file /run/xenstored.pid || die "oxenstored did not start"
for i in $(seq 50); do xenstore-read /local >/dev/null 2>&1 && break; sleep 0.2; done
xenstore-read /local >/dev/null 2>&1 || xenstore-ls / >/dev/null 2>&1 || die "xenstore does not answer"
$X/xen-init-dom0 || die "xen-init-dom0"
$X/xenconsoled --log=guest --log-dir=/var/log/xen/console --pid-file=/run/xenconsoled.pid ||
	die "xenconsoled"
step "Xen $(xenstore-read /local/domain/0/name 2>/dev/null) up: $($X/xl info 2>/dev/null | awk '/^xen_version/ {print $3}'), free memory $($X/xl info 2>/dev/null | awk '/^free_memory/ {print $3}') MiB"
