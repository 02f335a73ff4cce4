#!/bin/bash
# Guest side of t-plain-guest: what the functional tests need in the guest.
# Exits $1 when every check passes, 1 otherwise.
set -u
fail=0
ok() { echo "  ok: $*"; }
bad() { echo "  FAIL: $*"; fail=1; }
[ "$(uname -r)" = "$VM_KVER" ] && ok "running the Debian kernel $VM_KVER" || bad "kernel $(uname -r), expected $VM_KVER"
[ -x "$INSTALL_ROOT/usr/libexec/xapi-storage-ng/ngdp" ] && ok "installed plugins visible" ||
	bad "no $INSTALL_ROOT/usr/libexec/xapi-storage-ng/ngdp in the guest"
[ -e /sys/module/nbd ] && bad "nbd is loaded before anyone asked" || ok "nbd not loaded at boot"
modprobe nbd nbds_max=2 && [ -b /dev/nbd0 ] && ok "modprobe nbd gives /dev/nbd0" || bad "modprobe nbd"
rmmod nbd || bad "rmmod nbd"
T=$(mktemp -d /tmp/basics.XXXXXX)
truncate -s 512M "$T/disk"
if dev=$(losetup -f --show "$T/disk"); then
	ok "loop device $dev"
	if mkfs.ext4 -q "$dev" && mkdir "$T/m" && mount "$dev" "$T/m"; then
		ok "mkfs.ext4 and mount"
		head -c 4M /dev/urandom > "$T/ref"
		dd if="$T/ref" of="$T/m/f" bs=1M oflag=direct status=none &&
			dd if="$T/m/f" bs=1M iflag=direct status=none | cmp - "$T/ref" &&
			ok "O_DIRECT write and read back" || bad "O_DIRECT round trip"
		umount "$T/m" || bad umount
	else bad "mkfs.ext4/mount on $dev"; fi
	losetup -d "$dev" || bad "losetup -d"
else bad "losetup"; fi
mkfs.xfs -q -f "$T/disk" && ok "mkfs.xfs" || bad "mkfs.xfs"
echo hello > /xsng-vm/probe && [ "$(cat /xsng-vm/probe)" = hello ] && ok "results share writable" || bad "results share"
cmp -s <(echo same) <(echo same) && ok "process substitution (/dev/fd)" || bad "process substitution (/dev/fd)"
for m in /proc /sys /dev /dev/pts /run; do mountpoint -q $m || bad "$m not mounted"; done
rm -rf "$T"
[ $fail -eq 0 ] && exit "${1:-0}"
exit 1
