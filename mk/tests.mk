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
	qemu-system-x86 busybox-static cpio kmod xen-utils-4.17 xenstore-utils \
	libxen-dev qemu-system-xen

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

# ---------------------------------------------------------------- programs
# One rule builds every unit test (tests/unit/test-*.c, cmocka), one every
# test helper, one every fuzzer (below); all link the same libraries.
UNIT_SRC   := $(wildcard tests/unit/test-*.c)
UNIT_BIN   := $(patsubst tests/unit/%.c,$(B)/tests/unit/%,$(UNIT_SRC))
TEST_TOOLS := $(B)/tests/server/nbd-evil $(B)/tests/server/ngdp-ctl \
	      $(B)/tests/server/blkif-front \
	      $(B)/tests/server/nbd-proxy \
	      $(B)/tests/formats/vhd-tool $(B)/tests/functional/fd-handoff

# (objects first: a test's extra objects use the libraries)
$(UNIT_BIN): $(B)/tests/unit/%: $(B)/tests/unit/%.o $(ALL_LIBS)
	$(CC) $(CFLAGS) -o $@ $(filter %.o,$^) $(filter-out %.o,$^) $(LDFLAGS) -lcmocka $(LIBS_ALL)

# test-dp-ring: the datapath plugin's attach decision (ring.c alone; the
# test stubs its one call into the rest of the plugin).
$(B)/tests/unit/test-dp-ring: $(B)/src/datapath-plugin/ring.o

# test-util scripts short transfers and EINTR through fullio.c's calls.
$(B)/tests/unit/test-util: override LDFLAGS += -Wl,--wrap=pread64,--wrap=pwrite64

$(TEST_TOOLS): $(B)/%: $(B)/%.o $(ALL_LIBS)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LIBS_ALL)

# Every suite runs its test programs through tests/run-tests.sh (protocol:
# tests/README.md): exit 0 pass, 1 fail, 77 skip; one closing line.
RUN_TESTS = bash tests/run-tests.sh

# Unit tests, and the proof that the layering rules fail the build.
check-unit: $(UNIT_BIN)
	@$(RUN_TESTS) -s unit $(UNIT_BIN) "CC=$(CC) tests/layers/t-layers.sh"

# ---------------------------------------------------------------- functional
TEST_ROOT = $(abspath $(B))/test-root

check-functional: all $(B)/tests/functional/fd-handoff
	@rm -rf $(TEST_ROOT)
	@$(MAKE) --no-print-directory install DESTDIR=$(TEST_ROOT) >/dev/null
	IMGIO=$(abspath $(B))/ngdp-imgio \
	FUNC_HELPERS=$(abspath $(B))/tests/functional bash tests/functional/run.sh $(TEST_ROOT) $(TESTS)

# ---------------------------------------------------------------- fuzz
# Every tests/fuzz/fuzz-NAME.c is a libFuzzer target, built with clang,
# ASan and UBSan from its own objects ($(B)/fuzz/obj) of the engine, the
# daemon and its JSON door, with logging silenced (syslog per input is
# slow); its seeds are tests/fuzz/corpus/NAME.  `make fuzz-NAME` fuzzes
# for FUZZ_TIME seconds; `make check` runs each for CHECK_FUZZ_TIME (0:
# the suite is skipped) and the suites of the formats and the server run
# every seed once.  Every crash, leak or timeout is a failure; logs, the
# kept corpus and crashing inputs stay in $(B)/fuzz/ and the crashing
# input's path is printed (tests/fuzz/run-fuzz.sh).
FUZZ_CC         ?= clang
FUZZ_FLAGS      := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
FUZZ_TIME       ?= 60
CHECK_FUZZ_TIME ?= 60
FUZZ_NAMES      := $(patsubst tests/fuzz/fuzz-%.c,%,$(wildcard tests/fuzz/fuzz-*.c))
FUZZ_BINS       := $(addprefix $(B)/fuzz/fuzz-,$(FUZZ_NAMES))
FUZZ_LIB_SRC    := $(filter-out src/util/log.c,$(UTIL_SRC)) tests/fuzz/silent-log.c \
		   $(FORMATS_SRC) $(NGDP_SRC) src/edge/json-io.c
FUZZ_OPTS_nbd   := -max_len=8192 -timeout=10
FUZZ_OPTS_qcow2 := -max_len=65536
FUZZ_OPTS_vhd   := -max_len=65536
RUN_FUZZ         = FUZZ_DIR=$(B)/fuzz tests/fuzz/run-fuzz.sh
# $(call fuzz_spec,regress|fuzz,NAME[,SECONDS]): one run-tests.sh spec
fuzz_spec = "$(RUN_FUZZ) $1 $2 $(B)/fuzz/fuzz-$2 tests/fuzz/corpus/$2 $3 $(FUZZ_OPTS_$2)"

fuzz_obj = $(patsubst %.c,$(B)/fuzz/obj/%.o,$(1))
$(B)/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(call layer_inc,$<) $(CPPFLAGS) $(FUZZ_FLAGS) -MMD -MP -c -o $@ $<

$(FUZZ_BINS): $(B)/fuzz/fuzz-%: $(B)/fuzz/obj/tests/fuzz/fuzz-%.o $(call fuzz_obj,$(FUZZ_LIB_SRC))
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $^ $(LIBS_ALL)

$(addprefix fuzz-,$(FUZZ_NAMES)): fuzz-%: $(B)/fuzz/fuzz-%
	$(RUN_FUZZ) fuzz $* $< tests/fuzz/corpus/$* $(FUZZ_TIME) $(FUZZ_OPTS_$*)

# Build the fuzzers when clang is there; run-fuzz.sh skips (77) when it is
# not, and fails when a fuzzer did not build (a build error does not stop
# the suite's other tests: .DELETE_ON_ERROR removes the binary).
fuzz-build:
	@if command -v $(FUZZ_CC) >/dev/null 2>&1; then \
		$(MAKE) -k --no-print-directory $(FUZZ_BINS) >/dev/null || \
		echo "a fuzzer did not build: its tests fail"; \
	else echo "$(FUZZ_CC) not found: the fuzzers are not built"; fi

check-fuzz: fuzz-build
	@$(RUN_TESTS) -s fuzz -t $$(( $(CHECK_FUZZ_TIME) + 300 )) \
		$(foreach n,$(FUZZ_NAMES),$(call fuzz_spec,fuzz,$n,$(CHECK_FUZZ_TIME)))

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

.PHONY: deps check check-unit check-functional check-fuzz fuzz-build demo \
	$(addprefix fuzz-,$(FUZZ_NAMES))
