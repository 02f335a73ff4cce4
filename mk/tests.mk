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
	procps psmisc linux-perf \
	qemu-system-x86 busybox-static cpio kmod xen-utils-4.17 xenstore-utils python3

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
COMMON_UNIT := test-names test-json-io test-fileio test-proc test-sr-meta
COMMON_UNIT_BIN := $(addprefix $(B)/tests/unit/,$(COMMON_UNIT))

$(COMMON_UNIT_BIN): $(B)/tests/unit/%: $(B)/tests/unit/%.o $(LIBCOMMON)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) -lcmocka $(LIBS_COMMON)

check-unit: $(COMMON_UNIT_BIN)
	@fail=0; for t in $(COMMON_UNIT_BIN); do $$t || fail=1; done; exit $$fail

# ---------------------------------------------------------------- functional
TEST_ROOT = $(abspath $(B))/test-root

check-functional: all
	@rm -rf $(TEST_ROOT)
	@$(MAKE) --no-print-directory install DESTDIR=$(TEST_ROOT) >/dev/null
	IMGIO=$(abspath $(B))/ngdp-imgio bash tests/functional/run.sh $(TEST_ROOT) $(TESTS)

# ---------------------------------------------------------------- all
# Every suite runs even when one fails; tests/run-suites.sh prints each
# suite's result and one closing "N passed, N failed, N skipped" line.
SUITES = check-unit check-functional $(CHECK_TARGETS)

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

.PHONY: deps check check-unit check-functional demo
