# SPDX-License-Identifier: LGPL-2.1-only
# Helpers for scripts that vm_run_xen runs in Xen's dom0: boot small PV
# guests (busybox + xen-blkfront + GNU dd/cmp) that run a job script and
# report its status.  Source from bash in dom0.
#
#   xen_domu_initrd OUT JOB DISKS [FILE...]  initrd running JOB (sh) once
#        the disks (e.g. "xvda xvdb") exist; FILEs are packed under /data,
#        domu-lib.sh as /lib.sh; XEN_DOMU_MODPARAMS: "MODULE PARAM=V..."
#        (one module) for insmod, e.g. "xen-blkfront feature_persistent=0";
#        XEN_DOMU_BINS: more of dom0's programs to pack in /usr/bin, with
#        their libraries (e.g. /usr/bin/fio)
#   xen_domu_create NAME INITRD [xl create options]   (config from $XEN_CFG_EXTRA)
#   xen_domu_wait NAME SECONDS   wait until the domain is gone (destroys it
#                                and returns 124 on timeout)
#   xen_domu_console NAME        the guest's console log
#   xen_qdisk_vbd DOMID DEVID PARAMS [KEY VALUE...]   the xenstore entries
#        of a vbd xvda as xenopsd writes a "qdisk" one (plus backend keys),
#        for a backend that is not libxl's (no qemu is started); sets BE and
#        FE (its backend and frontend paths)
#   XEN_HOTPLUG   the hotplug script for phy: disks: phy:DEV,xvda,w,script=$XEN_HOTPLUG
#   ctl_get N, ctl_put N TEXT   a line in sector N of the control disk $CTL
#        that dom0 shares with the guest's job (domu-lib.sh: ctl, mark)
#   wait_phase PHASE [SECONDS]   until the guest $name reports PHASE in
#        sector 0 (at most SECONDS, 600 by default)
#   stamp TEXT         a progress line with dom0's uptime
#   xen_domu_result NAME [LABEL]   wait (10 min) for the guest to be gone,
#        check (tests/functional/lib.sh) that its job passed, show its
#        domU: lines, or its console's tail when it failed
#   put_ref REF NAME OFF_MIB   write pattern $PAT/NAME into the reference
#        image REF at OFF_MIB
#   xs PATH            xenstore-read, quiet ("" when absent)
#   wait_for SECONDS COMMAND...   until COMMAND succeeds (its last status)
#   no_nbd_connected   no /dev/nbdN has a connection (else names one)
#   region_blocks_ok RAW OFF_MIB LEN_MIB FILE...   every 4 KiB block of
#        RAW's region is zeros or the same block of one of the FILEs (a
#        region the guest was rewriting while a snapshot was taken)
set -u
: "${VM_DIR:?}" "${VM_KERNEL:?}" "${VM_DOMU_BASE:?}"
XL=/usr/lib/xen-4.17/bin/xl
XEN_HOTPLUG=$VM_DIR/xen-hotplug-phy
XEN_WORK=$(mktemp -d /tmp/xsng-xen.XXXXXX)

xen_domu_initrd() {
	local out=$1 job=$2 disks=$3 d f l; shift 3
	d=$XEN_WORK/initrd.$$.$RANDOM
	mkdir -p "$d" && cp -a "$VM_DOMU_BASE/." "$d/" && rm -f "$d/.done" || return 1
	mkdir -p "$d/proc" "$d/sys" "$d/dev" "$d/data" "$d/usr/bin" && ln -sf busybox "$d/bin/sh"
	# GNU dd/cmp: O_DIRECT with aligned buffers; their libraries beside them
	for f in /bin/dd /usr/bin/cmp ${XEN_DOMU_BINS:-}; do
		cp -L "$f" "$d/usr/bin/" || return 1
		for l in $(ldd "$f" | grep -o '/[^ ]*'); do
			mkdir -p "$d$(dirname "$l")" && cp -Ln "$l" "$d$l" || return 1
		done
	done
	cp "$VM_DIR/domu-init" "$d/init" && chmod 755 "$d/init" &&
	cp "$VM_DIR/domu-lib.sh" "$d/lib.sh" &&
	cp "$job" "$d/job" && echo "$disks" > "$d/disks" &&
	echo "${XEN_DOMU_MODPARAMS:-}" > "$d/modparams" || return 1
	for f in "$@"; do cp "$f" "$d/data/" || return 1; done
	# not compressed: the patterns are random, and TCG makes gzip slow
	( cd "$d" && find . | cpio -o -H newc --quiet ) > "$out" || return 1
	rm -rf "$d"
}

# xen_domu_create NAME INITRD [xl create args (-p)]; extra config lines in
# XEN_CFG_EXTRA (e.g. disk = [...]).  Prints the domid.
xen_domu_create() {
	local name=$1 initrd=$2 cfg; shift 2
	cfg=$XEN_WORK/$name.cfg
	cat > "$cfg" <<-CFG
	name = "$name"
	type = "pv"
	kernel = "$VM_KERNEL"
	ramdisk = "$initrd"
	extra = "console=hvc0 panic=-1 loglevel=4"
	memory = ${XEN_DOMU_MEM:-256}
	vcpus = 1
	on_poweroff = "destroy"
	on_reboot = "destroy"
	on_crash = "destroy"
	${XEN_CFG_EXTRA:-}
	CFG
	$XL create -q "$@" "$cfg" >&2 || return 1
	$XL domid "$name"
}

xen_domu_wait() {
	local name=$1 t=$2
	local end=$((SECONDS + t))
	while [ $SECONDS -lt $end ]; do
		$XL domid "$name" >/dev/null 2>&1 || return 0
		sleep 0.5
	done
	echo "xen: guest $name still running after ${t}s, destroyed" >&2
	$XL destroy "$name" >&2
	return 124
}

# xen_qdisk_vbd DOMID DEVID PARAMS [KEY VALUE...]: as xenopsd writes a
# "qdisk" vbd (device.ml: Vbd.add), with more backend keys (KEY relative to
# the backend directory, e.g. sm-data/x) in the same write; the guest owns
# its frontend directory and reads the backend's.  xenopsd writes both
# sides in one transaction; the command line cannot, so the order stands
# in for it: a running guest's xenbus probes the frontend at once and needs
# the backend readable by then, and our server claims the backend only
# once its state is there (written last), when the frontend is there too.
xen_qdisk_vbd() {
	local domid=$1 devid=$2 params=$3 extra=()
	shift 3
	BE=/local/domain/0/backend/qdisk/$domid/$devid
	FE=/local/domain/$domid/device/vbd/$devid
	while [ $# -ge 2 ]; do extra+=("$BE/$1" "$2"); shift 2; done
	xenstore-write "$BE/frontend" "$FE" "$BE/frontend-id" "$domid" "$BE/online" 1 \
		"$BE/removable" 0 "$BE/dev" xvda "$BE/type" phy \
		"$BE/mode" w "$BE/params" "$params" "${extra[@]}" &&
	xenstore-chmod -r "$BE" n0 "r$domid" &&
	xenstore-write "$FE/backend" "$BE" "$FE/backend-id" 0 "$FE/state" 1 \
		"$FE/virtual-device" "$devid" "$FE/device-type" disk &&
	xenstore-chmod -r "$FE" "n$domid" r0 &&
	xenstore-write "$BE/state" 1
}

xen_domu_console() { cat "/var/log/xen/console/guest-$1.log" 2>/dev/null; }

xen_cleanup() {
	local n
	for n in $($XL list 2>/dev/null | awk 'NR > 2 { print $1 }'); do $XL destroy "$n"; done
	rm -rf "$XEN_WORK"
}

ctl_get() { dd if="$CTL" bs=512 skip="$1" count=1 iflag=direct status=none | tr -d '\000' | head -1; }
ctl_put() { printf '%s\n' "$2" | dd of="$CTL" bs=512 seek="$1" count=1 conv=sync oflag=direct status=none; }

# progress with dom0's uptime: TCG speed varies a lot with the host's load
stamp() { echo "  [$(cut -d' ' -f1 /proc/uptime)s] $*"; }

# wait_phase PHASE [SECONDS]: until the guest $name reports PHASE on the
# control disk (bounded: 10 min or SECONDS; fails at once when the guest
# is gone)
wait_phase() {
	local end=$((SECONDS + ${2:-600}))
	while [ $SECONDS -lt $end ]; do
		[ "$(ctl_get 0)" = "$1" ] && return 0
		$XL domid "$name" >/dev/null 2>&1 || return 1
		sleep 0.2
	done
	return 1
}

region_blocks_ok() {
	python3 - "$@" <<-'PY'
	import sys
	raw, off, length = sys.argv[1], int(sys.argv[2]) << 20, int(sys.argv[3]) << 20
	region = open(raw, "rb").read()[off:off + length]
	versions = [open(f, "rb").read() for f in sys.argv[4:]]
	bad = 0
	for o in range(0, length, 4096):
	    blk = region[o:o + 4096]
	    if blk != bytes(4096) and all(blk != v[o:o + 4096] for v in versions):
	        bad += 1
	print("  region at %dM: %d of %d blocks match no version" % (off >> 20, bad, length // 4096))
	sys.exit(bad != 0)
	PY
}

put_ref() { dd if="$PAT/$2" of="$1" bs=1M seek="$3" conv=notrunc status=none; }
xs() { xenstore-read "$1" 2>/dev/null; }
wait_for() {
	local end=$((SECONDS + $1)); shift
	while [ $SECONDS -lt $end ]; do "$@" && return 0; sleep 0.2; done
	"$@"
}
no_nbd_connected() {
	local p
	for p in /sys/block/nbd*/pid; do [ -e "$p" ] && { echo "  $(dirname "$p") still connected"; return 1; }; done
	return 0
}

xen_domu_result() {
	local name=$1 label=${2:+$2 } rc
	xen_domu_wait "$name" 600
	stamp "${label}guest gone"
	rc=$(ctl_get 2)
	check "${label}the guest's job passed ($rc)" [ "$rc" = XSNG-RC=0 ]
	if [ "$rc" = XSNG-RC=0 ]; then
		xen_domu_console "$name" | grep '^domU:' | sed 's/^/  guest: /'
	else
		xen_domu_console "$name" | tail -n 30 | sed 's/^/  guest console: /'
	fi
}
