# SPDX-License-Identifier: LGPL-2.1-only
# The datapath benchmark (bench/README.md).
#
#   make bench                 deps + build + the full run (< 30 min, root):
#                              results in bench/results/
#   make bench BENCH_QUICK=1   the same, short (< 5 min)
#   make check-bench           the benchmark's plumbing on tiny images
#                              (part of `make check`; no timing assertions)
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

.PHONY: bench check-bench
