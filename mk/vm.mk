# SPDX-License-Identifier: LGPL-2.1-only
# Guest tests (tests/vm): a plain guest of Debian 12's kernel and a Xen host
# under qemu (TCG without KVM), running the installed plugins with this
# machine's userland.  The kernel and Xen come from `apt-get download` into
# $(XSNG_VM_CACHE) at test time.
#
#   make check-vm                      every tests/vm/t-*.sh
#   make check-vm VM_TESTS=t-xen-vm    some of them

XSNG_VM_CACHE ?= /var/cache/xsng-vm
VM_ROOT = $(abspath $(B))/vm-root
# The sanitizer pass runs the netlink handoff under ASan in a plain guest;
# the Xen boot (minutes under TCG) runs in the normal pass.
VM_TESTS ?= $(if $(filter 1,$(SANITIZE)),t-nbd-datapath)

# t-xen-blkif and t-xen-handoff read the server's status with ngdp-ctl.
check-vm: all $(B)/tests/server/ngdp-ctl
	@rm -rf $(VM_ROOT)
	@$(MAKE) --no-print-directory install DESTDIR=$(VM_ROOT) >/dev/null
	XSNG_VM_CACHE=$(XSNG_VM_CACHE) INSTALL_ROOT=$(VM_ROOT) \
		IMGIO=$(abspath $(B))/ngdp-imgio SRCDIR=$(CURDIR) \
		NGDP_CTL=$(abspath $(B))/tests/server/ngdp-ctl \
		bash tests/vm/run.sh $(VM_TESTS)

CHECK_TARGETS += check-vm
.PHONY: check-vm
