#!/bin/bash
# The plain guest harness itself: the guest has the host's userland, the
# Debian kernel's modules (nbd), loop devices, mkfs and mount, a writable
# results share, and its script's exit status comes back to the host.
. "$(dirname "$0")/lib.sh"
why=$(vm_cannot); [ -z "$why" ] || { echo "skip: $why"; exit 77; }
fail=0
VM_TIMEOUT=300 vm_run_plain "$VM_DIR/guest/plain-basics.sh"
rc=$?
[ "$rc" -eq 77 ] && exit 77
[ "$rc" -eq 0 ] && echo "  ok: guest basics" || { echo "  FAIL: guest basics (exit $rc)"; fail=1; }
VM_TIMEOUT=300 vm_run_plain "$VM_DIR/guest/exit-with.sh" 42 2>/dev/null
rc=$?
[ "$rc" -eq 42 ] && echo "  ok: the guest's exit status reaches the host" ||
	{ echo "  FAIL: guest exited 42, the host saw $rc"; fail=1; }
exit $fail
