# SPDX-License-Identifier: LGPL-2.1-only
# Debian packages, unit and functional tests, the demo, the RPM.
#
#   make deps         install the Debian packages we need (root, apt-get)
#   make check        deps + build + every test suite (root: loop devices)
#   make check SANITIZE=1   the same under ASan+UBSan (build-san/)
#   make demo         deps + build + a lifecycle on a loop-backed SR

# Everything the build, the tests, the demo and `make bench` use.
DEB_PACKAGES := build-essential pkg-config libjson-c-dev libblkid-dev \
	libaio-dev liburing-dev libcmocka-dev zlib1g-dev clang libfuzzer-14-dev \
	libclang-rt-14-dev qemu-utils qemu-system-common xfsprogs e2fsprogs \
	util-linux fio libnbd-bin nbdkit jq rpm libvhdi-utils gnuplot-nox \
	procps psmisc linux-perf python3 time \
	qemu-system-x86 busybox-static cpio kmod xen-utils-4.17 xenstore-utils

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | \
	    grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" -ne 0 ]; then \
	    echo "missing Debian packages: $$missing (run 'make deps' as root)"; \
	    exit 1; \
	  fi; \
	  echo "installing:" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# ---------------------------------------------------------------- unit
COMMON_UNIT := test-names test-json-io test-fileio test-proc test-sr-meta \
	test-util
COMMON_UNIT_BIN := $(addprefix $(B)/tests/unit/,$(COMMON_UNIT))

# test-util scripts short transfers and EINTR through fullio.c's calls.
$(B)/tests/unit/test-util: override LDFLAGS += -Wl,--wrap=pread64,--wrap=pwrite64

$(COMMON_UNIT_BIN): $(B)/tests/unit/%: $(B)/tests/unit/%.o $(LIBCOMMON)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) -lcmocka $(LIBS_COMMON)

# Every suite runs its test programs through tests/run-tests.sh (protocol:
# tests/README.md): exit 0 pass, 1 fail, 77 skip; one closing line.
RUN_TESTS = bash tests/run-tests.sh

check-unit: $(COMMON_UNIT_BIN)
	@$(RUN_TESTS) -s unit $(COMMON_UNIT_BIN)

# ---------------------------------------------------------------- functional
TEST_ROOT = $(abspath $(B))/test-root

check-functional: all
	@rm -rf $(TEST_ROOT)
	@$(MAKE) --no-print-directory install DESTDIR=$(TEST_ROOT) >/dev/null
	IMGIO=$(abspath $(B))/ngdp-imgio bash tests/functional/run.sh $(TEST_ROOT) $(TESTS)

# ---------------------------------------------------------------- fuzz
# The fuzzers run for CHECK_FUZZ_TIME seconds each in `make check` (0: the
# suite is skipped).  Every crash, leak or timeout is a failure; logs,
# the kept corpus and crashing inputs stay in $(B)/fuzz/ and the crashing
# input's path is printed (tests/fuzz/run-fuzz.sh).  Each mk/*.mk adds its
# fuzzer to FUZZ_BINS and one run-tests.sh spec to CHECK_FUZZ.
CHECK_FUZZ_TIME ?= 60
FUZZ_CC ?= clang
RUN_FUZZ = FUZZ_DIR=$(B)/fuzz tests/fuzz/run-fuzz.sh

# Build the fuzzers (clang) when clang is there; run-fuzz.sh skips (77)
# when it is not, and fails when a fuzzer did not build (a build error
# does not stop the suite's other tests: .DELETE_ON_ERROR removes the binary).
fuzz-build:
	@if command -v $(FUZZ_CC) >/dev/null 2>&1; then \
		$(MAKE) -k --no-print-directory $(FUZZ_BINS) >/dev/null || \
		echo "a fuzzer did not build: its tests fail"; \
	else echo "$(FUZZ_CC) not found: the fuzzers are not built"; fi

check-fuzz: fuzz-build
	@$(RUN_TESTS) -s fuzz -t $$(( $(CHECK_FUZZ_TIME) + 300 )) $(CHECK_FUZZ)

# ---------------------------------------------------------------- all
# Every suite runs even when one fails; tests/run-suites.sh prints each
# suite's result and one closing "N passed, N failed, N skipped" line.
# The fuzzers are built with ASan+UBSan in any case: the sanitizer pass
# (SANITIZE=1) does not run them a second time.
# The sanitizer pass (CI's second) leaves out what sanitizers add nothing
# to and that would double CI's time: the benchmark's plumbing (timings
# under ASan mean nothing) and the fuzzers (always built with ASan+UBSan);
# of the guest tests it keeps the /dev/nbdN handoff (mk/vm.mk).
SUITES = check-unit check-functional \
	$(if $(filter 1,$(SANITIZE)),$(filter-out check-bench,$(CHECK_TARGETS)),$(CHECK_TARGETS) check-fuzz)

check:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory all
	@bash tests/run-suites.sh $(MAKE) $(SUITES)

demo:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory all
	@rm -rf $(TEST_ROOT)
	@$(MAKE) --no-print-directory install DESTDIR=$(TEST_ROOT) >/dev/null
	bash tests/demo.sh $(TEST_ROOT)

.PHONY: deps check check-unit check-functional check-fuzz fuzz-build demo
