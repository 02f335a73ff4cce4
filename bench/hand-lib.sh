# SPDX-License-Identifier: LGPL-2.1-only
# hand-lib.sh: what the hand measurements (hand-1m.sh, hand-ring.sh) share.
# Sourced.  hand_setup NAME SIZE: a work directory W, a RAM-backed file
# of SIZE under /dev/shm on a loop device (LOOP, --direct-io=on) with a
# fresh XFS mounted on $W/mnt; everything, and the PIDS started, is
# removed on exit, on Ctrl-C and on SIGTERM.
LOOP= PIDS=()

hand_cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	mountpoint -q "$W/mnt" && umount "$W/mnt"
	[ -n "$LOOP" ] && losetup -d "$LOOP"
	rm -f "/dev/shm/${W##*/}.img"
	rm -rf "$W"
}

hand_setup() { # NAME SIZE
	W=$(mktemp -d "/tmp/$1.XXXXXX") || exit 1
	trap hand_cleanup EXIT
	trap "exit 1" INT TERM HUP
	truncate -s "$2" "/dev/shm/${W##*/}.img" || exit 1
	LOOP=$(losetup -f --show --direct-io=on "/dev/shm/${W##*/}.img") || exit 1
	mkdir "$W/mnt"
	mkfs.xfs -q -f "$LOOP" && mount "$LOOP" "$W/mnt" || exit 1
}
