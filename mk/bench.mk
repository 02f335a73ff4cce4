# SPDX-License-Identifier: LGPL-2.1-only
# The datapath benchmark (bench/README.md).
#
#   make bench                 deps + build + the full run (< 30 min, root):
#                              results in bench/results/
#   make bench BENCH_QUICK=1   the same, short (< 5 min)
#   make check-bench           the benchmark's plumbing on tiny images
#                              (part of `make check`; no timing assertions)
#   make bench-xen             issue 17 part 4: a PV guest's fio through
#                              (a) our blkif backend, (b) blkback on
#                              /dev/nbdN, (c) qemu's qdisk, in the Xen test
#                              host of tests/vm (root; ~20 min under TCG;
#                              BENCH_QUICK=1: a short smoke run); results in
#                              bench/results-xen/ (BENCH_RESULTS)
# BENCH_* variables (bench/README.md) pass through the environment.

BENCH_ROOT = $(abspath $(B))/bench-root
# the machine's memory copy rate by working set (bench/memcopy.c)
MEMCOPY    = $(B)/bench/memcopy

$(MEMCOPY): $(B)/bench/memcopy.o
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS)

bench:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory all $(B)/tests/server/ngdp-ctl $(B)/tests/server/blkif-front $(MEMCOPY)
	@rm -rf $(BENCH_ROOT)
	@$(MAKE) --no-print-directory install DESTDIR=$(BENCH_ROOT) >/dev/null
	NGDP_SERVER=$(abspath $(B))/ngdp-server NGDP_IMGIO=$(abspath $(B))/ngdp-imgio \
		NGDP_CTL=$(abspath $(B))/tests/server/ngdp-ctl BLKIF_FRONT=$(abspath $(B))/tests/server/blkif-front \
		MEMCOPY=$(abspath $(MEMCOPY)) bash bench/bench.sh $(BENCH_ROOT)

check-bench: all $(B)/tests/server/ngdp-ctl $(B)/tests/server/blkif-front $(MEMCOPY)
	@rm -rf $(BENCH_ROOT)-check
	@$(MAKE) --no-print-directory install DESTDIR=$(BENCH_ROOT)-check >/dev/null
	@$(RUN_TESTS) -s bench -t 1800 "NGDP_SERVER=$(abspath $(B))/ngdp-server NGDP_IMGIO=$(abspath $(B))/ngdp-imgio NGDP_CTL=$(abspath $(B))/tests/server/ngdp-ctl BLKIF_FRONT=$(abspath $(B))/tests/server/blkif-front MEMCOPY=$(abspath $(MEMCOPY)) bench/t-bench.sh $(BENCH_ROOT)-check"

CHECK_TARGETS += check-bench

# not part of `make check`: a timing run.  The installed tree as check-vm
# makes it; the guests use this machine's userland (fio, qemu-system-xen).
BENCH_XEN_ROOT = $(abspath $(B))/bench-xen-root
bench-xen:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory all $(B)/tests/server/ngdp-ctl
	@rm -rf $(BENCH_XEN_ROOT)
	@$(MAKE) --no-print-directory install DESTDIR=$(BENCH_XEN_ROOT) >/dev/null
	XSNG_VM_CACHE=$(XSNG_VM_CACHE) INSTALL_ROOT=$(BENCH_XEN_ROOT) SRCDIR=$(CURDIR) \
		IMGIO=$(abspath $(B))/ngdp-imgio NGDP_CTL=$(abspath $(B))/tests/server/ngdp-ctl \
		bash bench/xen.sh

.PHONY: bench check-bench bench-xen
