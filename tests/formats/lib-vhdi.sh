# SPDX-License-Identifier: LGPL-2.1-only
# libvhdi as an independent reader of VHD chains (sourced by the VHD
# tests).  Mount points go under $VHDI_MNT_BASE/mnt-*: the caller's
# cleanup unmounts what is left there.

# vhdi_equals IMAGE RAW: vhdimount the top of a chain; compare its view
# with a raw file.
vhdi_equals() {
	local m="${VHDI_MNT_BASE:?}/mnt-$$-$RANDOM" f r
	mkdir -p "$m"
	vhdimount "$1" "$m" >/dev/null 2>&1 || { rmdir "$m"; return 1; }
	# vhdimount lists the chain base first: the last file is the top.
	f=$(ls "$m" | sort -V | tail -1)
	cmp -s "$m/$f" "$2"; r=$?
	umount "$m"; rmdir "$m"
	return $r
}
