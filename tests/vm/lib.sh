# SPDX-License-Identifier: LGPL-2.1-only
# Guest harness: run a script inside a guest of Debian 12's own kernel under
# qemu (TCG when there is no KVM), either as a plain guest or as the PV dom0
# of a real Xen hypervisor.  The guest sees this machine's whole userland:
# the host's / is shared read-only over 9p under an overlay on tmpfs, and
# /lib/modules comes from the unpacked Debian kernel, so `modprobe nbd`,
# losetup, mkfs and mount work there.  Source this file from bash.
#
#   vm_prepare                 fetch/unpack kernel (and Xen), build initrds
#   vm_run_plain SCRIPT [ARGS] run SCRIPT in a plain guest; returns its status
#   vm_run_xen SCRIPT [ARGS]   run SCRIPT in Xen's dom0 (Xen services started)
#
# Environment:
#   XSNG_VM_CACHE   cache of kernel, Xen and initrds (/var/cache/xsng-vm)
#   VM_TIMEOUT      hard limit in seconds for one guest run (600)
#   VM_BOOT_TIMEOUT seconds for the guest's kernel to reach our stage2
#                   (300); a boot that has not by then is killed and
#                   started once more (an early-boot hang under TCG, before
#                   any of our code, was seen on 2026-12-03)
#   VM_MEM, VM_SMP  guest RAM in MiB (2048) and CPUs (2)
#   VM_XEN_DOM0_MEM dom0's share of VM_MEM under Xen, MiB (1024)
#   VM_LOG_DIR      keep each run's console log and output here (else a
#                   temp dir, removed after a passing run, printed on failure)
#   VM_OK_RC        statuses after which the logs are not kept ("0 77")
#   VM_ENV          names of host variables to export into the guest
#                   (INSTALL_ROOT, SRCDIR, PLUGIN, IMGIO, TESTS are always passed)
# Exit status of vm_run_*: the script's, 124 on timeout, 125 when the guest
# died before reporting one, 77 when this machine cannot run qemu.
set -u
VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${XSNG_VM_CACHE:=/var/cache/xsng-vm}"
: "${VM_TIMEOUT:=600}" "${VM_BOOT_TIMEOUT:=300}" "${VM_MEM:=2048}" "${VM_SMP:=2}" "${VM_XEN_DOM0_MEM:=1024}"
: "${VM_ENV:=}"
VM_QEMU_PID=

# Modules the first-stage initrd loads (with their dependencies), in order.
VM_INITRD_MODULES="virtio_pci 9pnet_virtio 9p overlay"
# Modules of the small PV guest initrd (xl create).
VM_DOMU_MODULES="xen-blkfront"

vm_log() { echo "vm: $*" >&2; }

# Why this machine cannot run the guests; empty when it can.
vm_cannot() {
	[ "$(id -u)" -eq 0 ] || { echo "needs root (apt-get download, loop devices)"; return; }
	command -v qemu-system-x86_64 >/dev/null || { echo "qemu-system-x86_64 missing (package qemu-system-x86)"; return; }
	[ -x /bin/busybox ] || { echo "/bin/busybox missing (package busybox-static)"; return; }
	command -v cpio >/dev/null || { echo "cpio missing"; return; }
	command -v depmod >/dev/null || { echo "depmod missing (package kmod)"; return; }
	qemu-system-x86_64 -machine help 2>/dev/null | grep -q '^pc' ||
		{ echo "qemu-system-x86_64 cannot emulate a pc"; return; }
}

# Name and version of the package apt would install for $1.
_vm_candidate() {
	apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ { print $2 }'
}

# _vm_fetch PKG DESTDIR: apt-get download PKG's candidate into DESTDIR/dl and
# unpack it into DESTDIR/root (once; DESTDIR/.done marks a finished tree).
_vm_fetch() {
	local pkg=$1 dest=$2 deb
	[ -e "$dest/.done" ] && return 0
	rm -rf "$dest" && mkdir -p "$dest/dl" || return 1
	( cd "$dest/dl" && apt-get download -q "$pkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' ) >&2
	deb=$(ls "$dest"/dl/*.deb 2>/dev/null | head -1)
	[ -n "$deb" ] || { vm_log "apt-get download $pkg failed"; return 1; }
	dpkg-deb -x "$deb" "$dest/root" || return 1
	rm -f "$deb"
	touch "$dest/.done"
}

# _vm_copy_mods ROOT KVER DEST MODULE...: copy MODULEs and their
# dependencies into DEST, and their insmod order into DEST/order.
_vm_copy_mods() {
	local root=$1 kver=$2 dest=$3 m f; shift 3
	mkdir -p "$dest"; : > "$dest/order"
	for m in "$@"; do
		modprobe -d "$root" -S "$kver" --show-depends "$m" | while read -r w f _; do
			[ "$w" = insmod ] || continue
			f=$(basename "$f")
			grep -qx "$f" "$dest/order" && continue
			cp "$root/lib/modules/$kver"/kernel/*/"$f" "$dest/" 2>/dev/null ||
				find "$root/lib/modules/$kver" -name "$f" -exec cp {} "$dest/" \;
			echo "$f" >> "$dest/order"
		done
	done
	[ -s "$dest/order" ]
}

# _vm_pack DIR OUT: a gzipped newc cpio of DIR
_vm_pack() {
	( cd "$1" && find . | cpio -o -H newc --quiet ) | gzip -1 > "$2.tmp" && mv "$2.tmp" "$2"
}

# vm_prepare [xen]: sets VM_KERNEL VM_KVER VM_MODULES VM_INITRD (and VM_XEN,
# VM_DOMU_BASE with "xen").  Everything is cached under
# $XSNG_VM_CACHE/<package>_<version>, never in the source tree.
vm_prepare() {
	local why kpkg kver_pkg kdir xver xdir ini
	why=$(vm_cannot); [ -z "$why" ] || { vm_log "cannot run guests: $why"; return 77; }
	mkdir -p "$XSNG_VM_CACHE" || return 1
	exec {_vm_lockfd}>"$XSNG_VM_CACHE/.lock"
	flock "$_vm_lockfd"
	kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
	kver_pkg=$(_vm_candidate "$kpkg")
	if [ -z "$kpkg" ] || [ -z "$kver_pkg" ]; then
		apt-get update -qq >&2
		kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
		kver_pkg=$(_vm_candidate "$kpkg")
	fi
	[ -n "$kpkg" ] && [ -n "$kver_pkg" ] ||
		{ vm_log "apt knows no linux-image-amd64 kernel"; flock -u "$_vm_lockfd"; return 1; }
	kdir=$XSNG_VM_CACHE/${kpkg}_$kver_pkg
	_vm_fetch "$kpkg" "$kdir" || { flock -u "$_vm_lockfd"; return 1; }
	VM_KVER=$(ls "$kdir/root/lib/modules" | head -1)
	VM_KERNEL=$kdir/root/boot/vmlinuz-$VM_KVER
	VM_MODULES=$kdir/root/lib/modules
	[ -e "$VM_MODULES/$VM_KVER/modules.dep.bin" ] || depmod -b "$kdir/root" "$VM_KVER"
	# first-stage initrd: busybox, the 9p/overlay modules, our init
	VM_INITRD=$kdir/initrd-$(cksum < "$VM_DIR/guest-init" | cut -d' ' -f1).gz
	if [ ! -e "$VM_INITRD" ]; then
		ini=$(mktemp -d) || return 1
		mkdir -p "$ini/bin" "$ini/proc" "$ini/sys" "$ini/dev" "$ini/newroot" "$ini/lower" "$ini/upper"
		cp /bin/busybox "$ini/bin/busybox" && ln -s busybox "$ini/bin/sh" &&
		_vm_copy_mods "$kdir/root" "$VM_KVER" "$ini/mods" $VM_INITRD_MODULES &&
		cp "$VM_DIR/guest-init" "$ini/init" && chmod 755 "$ini/init" &&
		_vm_pack "$ini" "$VM_INITRD"
		rm -rf "$ini"
		[ -e "$VM_INITRD" ] || { vm_log "building the initrd failed"; flock -u "$_vm_lockfd"; return 1; }
	fi
	if [ "${1:-}" = xen ]; then
		xver=$(_vm_candidate xen-hypervisor-4.17-amd64)
		[ -n "$xver" ] || { vm_log "apt knows no xen-hypervisor-4.17-amd64"; flock -u "$_vm_lockfd"; return 1; }
		xdir=$XSNG_VM_CACHE/xen-hypervisor-4.17-amd64_$xver
		_vm_fetch xen-hypervisor-4.17-amd64 "$xdir" || { flock -u "$_vm_lockfd"; return 1; }
		VM_XEN=$xdir/xen
		if [ ! -e "$VM_XEN" ]; then
			zcat "$xdir"/root/boot/xen-4.17-amd64.gz > "$VM_XEN.tmp" && mv "$VM_XEN.tmp" "$VM_XEN" ||
				{ flock -u "$_vm_lockfd"; return 1; }
		fi
		# the PV guest's initrd without its job (dom0 adds /job)
		VM_DOMU_BASE=$kdir/domu-base
		if [ ! -e "$VM_DOMU_BASE/.done" ]; then
			rm -rf "$VM_DOMU_BASE"
			mkdir -p "$VM_DOMU_BASE/bin" &&
			cp /bin/busybox "$VM_DOMU_BASE/bin/busybox" &&
			_vm_copy_mods "$kdir/root" "$VM_KVER" "$VM_DOMU_BASE/mods" $VM_DOMU_MODULES &&
			touch "$VM_DOMU_BASE/.done" ||
				{ vm_log "building the PV guest's initrd base failed"; flock -u "$_vm_lockfd"; return 1; }
		fi
	fi
	flock -u "$_vm_lockfd"
	export VM_KERNEL VM_KVER VM_MODULES VM_INITRD
	export VM_XEN="${VM_XEN:-}" VM_DOMU_BASE="${VM_DOMU_BASE:-}"
}

_vm_kill() {
	if [ -n "$VM_QEMU_PID" ]; then
		kill -9 "$VM_QEMU_PID" 2>/dev/null
		wait "$VM_QEMU_PID" 2>/dev/null
		VM_QEMU_PID=
	fi
}

# _vm_run MODE SCRIPT [ARGS]: MODE plain or xen
_vm_run() {
	local mode=$1 script=$2 res keep rc accel=tcg cpu=max tailpid i name prevtrap t0 done_at
	local boots=1
	local -a q
	shift 2
	[ -f "$script" ] || { vm_log "no script $script"; return 1; }
	script=$(realpath "$script")
	vm_prepare ${mode/plain/} || return $?
	name=$(basename "$script" .sh)
	if [ -n "${VM_LOG_DIR:-}" ]; then
		mkdir -p "$VM_LOG_DIR" && res=$(mktemp -d "$VM_LOG_DIR/$name.XXXXXX") keep=1
	else
		res=$(mktemp -d /tmp/xsng-vm.XXXXXX) keep=0
	fi
	# the job: environment, script, arguments; the guest runs it with bash
	{
		echo "cd $(printf '%q' "$PWD")"
		for i in INSTALL_ROOT SRCDIR PLUGIN IMGIO TESTS $VM_ENV; do
			[ -n "${!i+x}" ] && printf 'export %s=%q\n' "$i" "${!i}"
		done
		printf 'export VM_DIR=%q VM_KVER=%q VM_MODE=%q VM_DOMU_BASE=%q VM_KERNEL=%q\n' \
			"$VM_DIR" "$VM_KVER" "$mode" "${VM_DOMU_BASE:-}" "$VM_KERNEL"
		printf 'exec bash %q' "$script"
		for i in "$@"; do printf ' %q' "$i"; done
		echo
	} > "$res/job.sh"
	cp "$VM_DIR/guest-stage2.sh" "$res/stage2.sh" && cp "$VM_DIR/xen-dom0-up.sh" "$res/" || return 1
	: > "$res/output"
	echo "$mode" > "$res/mode"
	# TCG unless VM_ACCEL=kvm: a /dev/kvm may be there and still not run
	# these guests (seen 2026-12-03 on a host whose KVM is itself nested:
	# -cpu host aborts on MSR 0x10a, Xen's boot dies with "KVM internal
	# error. Suberror: 1"); the tests' timeouts are set for TCG.
	if [ "${VM_ACCEL:-tcg}" = kvm ]; then accel=kvm cpu=host; fi
	q=(qemu-system-x86_64 -machine pc,accel=$accel -m "$VM_MEM" -smp "$VM_SMP"
	   -display none -vga none -monitor none -nodefaults -no-reboot
	   -serial "file:$res/console.log"
	   -virtfs "local,path=/,mount_tag=hostroot,security_model=passthrough,readonly=on,multidevs=remap,id=hostroot"
	   -virtfs "local,path=$VM_MODULES,mount_tag=modules,security_model=passthrough,readonly=on,id=modules"
	   -virtfs "local,path=$res,mount_tag=results,security_model=passthrough,id=results")
	if [ "$mode" = xen ]; then
		q+=(-cpu Nehalem -kernel "$VM_XEN"
		    -append "console=com1 com1=115200,8n1 dom0_mem=${VM_XEN_DOM0_MEM}M,max:${VM_XEN_DOM0_MEM}M loglvl=warning guest_loglvl=warning noreboot=false"
		    -initrd "$VM_KERNEL console=hvc0 earlyprintk=xen panic=-1 loglevel=4 xsng_console=hvc0,$VM_INITRD")
	else
		q+=(-cpu "$cpu" -kernel "$VM_KERNEL" -initrd "$VM_INITRD"
		    -append "console=ttyS0 panic=-1 loglevel=4 xsng_console=ttyS0")
	fi
	# qemu dies with this shell even when the caller's cleanup never runs
	t0=$SECONDS
	setpriv --pdeathsig KILL "${q[@]}" &
	VM_QEMU_PID=$!
	prevtrap=$(trap -p EXIT)
	trap _vm_kill EXIT
	tail -n +1 -F --pid="$VM_QEMU_PID" "$res/output" 2>/dev/null &
	tailpid=$!
	rc=124 done_at=
	while [ $((SECONDS - t0)) -lt "$VM_TIMEOUT" ]; do
		kill -0 "$VM_QEMU_PID" 2>/dev/null || { rc=; break; }
		# stuck before stage2 (no job has run): boot once more
		if [ "$boots" = 1 ] && [ $((SECONDS - t0)) -ge "$VM_BOOT_TIMEOUT" ] &&
		   ! grep -q '^stage2: up at' "$res/console.log" 2>/dev/null; then
			vm_log "$name: the guest's kernel did not reach stage2 in ${VM_BOOT_TIMEOUT}s; booting it again (first console kept in console.1.log)"
			_vm_kill
			mv "$res/console.log" "$res/console.1.log"
			boots=2 t0=$SECONDS
			setpriv --pdeathsig KILL "${q[@]}" &
			VM_QEMU_PID=$!
			wait "$tailpid" 2>/dev/null	# it followed the first qemu
			tail -n +1 -F --pid="$VM_QEMU_PID" "$res/output" 2>/dev/null &
			tailpid=$!
			continue
		fi
		# the status is in: give the power-off two minutes, no more
		if [ -e "$res/rc" ]; then
			: "${done_at:=$SECONDS}"
			if [ $((SECONDS - done_at)) -ge 120 ]; then
				vm_log "$name: the guest reported but did not power off; killed"
				rc=; break
			fi
		fi
		sleep 0.5
	done
	if [ "$rc" = 124 ]; then
		vm_log "$name: guest still running after ${VM_TIMEOUT}s, killed"
	fi
	_vm_kill
	if [ -n "$prevtrap" ]; then eval "$prevtrap"; else trap - EXIT; fi
	wait "$tailpid" 2>/dev/null
	if [ -z "$rc" ]; then
		rc=$(cat "$res/rc" 2>/dev/null)
		case $rc in
		[0-9]|[0-9][0-9]|[0-9][0-9][0-9]) ;;
		*) vm_log "$name: the guest stopped without reporting an exit status"; rc=125 ;;
		esac
	fi
	vm_log "$name: exit $rc after $((SECONDS - t0))s in the $mode guest"
	if [[ " ${VM_OK_RC:-0 77} " != *" $rc "* ]]; then
		vm_log "$name: exit $rc; last lines of the guest console ($res/console.log):"
		tail -n 40 "$res/console.log" | sed 's/^/  console: /' >&2
		keep=1
	fi
	if [ "$keep" = 1 ]; then vm_log "$name: logs kept in $res"; else rm -rf "$res"; fi
	return "$rc"
}

vm_run_plain() { _vm_run plain "$@"; }
vm_run_xen() { _vm_run xen "$@"; }
