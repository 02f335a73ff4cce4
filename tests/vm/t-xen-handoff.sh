#!/bin/bash
# Issue 17's handoff in a real Xen host (qemu, TCG without KVM): with the
# ring switched on, the INSTALLED datapath plugin's Datapath.attach offers a
# "qdisk" XenDisk, activate starts ngdp-server told to expect that domain's
# ring (--blkif-xen-domain), and the server claims the device that dom0
# writes into xenstore exactly as xenopsd would from that XenDisk; the
# guest's data checks pass, the unplug and deactivate + detach leave
# nothing behind; the switch off, or a dom0 user, gets today's vbd XenDisk.
# See guest/xen-handoff.sh.
. "$(dirname "$0")/lib.sh"
why=$(vm_cannot); [ -z "$why" ] || { echo "skip: $why"; exit 77; }
[ -x "${NGDP_CTL:-}" ] || { echo "skip: no NGDP_CTL (build/tests/server/ngdp-ctl)"; exit 77; }
VM_ENV="${VM_ENV:-} NGDP_CTL" \
VM_TIMEOUT=${VM_TIMEOUT_XEN:-1500} vm_run_xen "$VM_DIR/guest/xen-handoff.sh"
