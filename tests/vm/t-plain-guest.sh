#!/bin/bash
# The plain guest harness itself: the guest has the host's userland, the
# Debian kernel's modules (nbd), loop devices, mkfs and mount, a writable
# results share, and its script's exit status comes back to the host.
. "$(dirname "$0")/lib.sh"
why=$(vm_cannot); [ -z "$why" ] || { echo "skip: $why"; exit 77; }
# one boot: the guest script exits 42 when all its checks pass, so that
# the status seen here proves both the checks and its way back to the host
VM_OK_RC=42 VM_TIMEOUT=300 vm_run_plain "$VM_DIR/guest/plain-basics.sh" 42
rc=$?
case $rc in
42) echo "  ok: guest basics, and the guest's exit status reaches the host"; exit 0 ;;
77) exit 77 ;;
*) echo "  FAIL: guest basics: exit $rc, expected 42"; exit 1 ;;
esac
