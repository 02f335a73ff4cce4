#!/bin/bash
# Issue 17's proof in a real Xen host (qemu, TCG without KVM): a PV guest's
# disk is served by ngdp-server's own blkif backend (--blkif-xen), with no
# blkback and no NBD hop: patterns with O_DIRECT, flushes, and kill -9 of the
# server with a restart while the guest writes, a live snapshot; see
# guest/xen-blkif.sh.  XEN_BLKIF_MODES="persistent small-cache one-use" (the default)
# picks blkfront's grant modes.
. "$(dirname "$0")/lib.sh"
why=$(vm_cannot); [ -z "$why" ] || { echo "skip: $why"; exit 77; }
[ -x "${NGDP_CTL:-}" ] || { echo "skip: no NGDP_CTL (build/tests/server/ngdp-ctl)"; exit 77; }
VM_ENV="${VM_ENV:-} NGDP_CTL XEN_BLKIF_MODES" \
VM_TIMEOUT=${VM_TIMEOUT_XEN:-1500} vm_run_xen "$VM_DIR/guest/xen-blkif.sh"
