# SPDX-License-Identifier: LGPL-2.1-only
# Sourced by the VHD tests, with TOP set to the source tree: the tools'
# paths (B, the build directory, relative to TOP unless absolute; IMGIO
# and VHD_TOOL override them), and libvhdi as an independent reader of VHD
# chains (mount points go under $VHDI_MNT_BASE/mnt-*: the caller's cleanup
# unmounts what is left there).

B=${B:-build}
case $B in /*) BD=$B ;; *) BD=$TOP/$B ;; esac
IMGIO=${IMGIO:-$BD/ngdp-imgio}
TOOL=${VHD_TOOL:-$BD/tests/formats/vhd-tool}

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
