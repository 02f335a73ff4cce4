# SPDX-License-Identifier: LGPL-2.1-only
# ngdp-server: test helpers, cmocka unit tests, shell tests (check-server)
# and the NBD protocol fuzzer (fuzz-nbd).

SERVER_BIN      := $(B)/ngdp-server
SERVER_HELPERS  := $(B)/tests/server/nbd-evil $(B)/tests/server/ngdp-ctl \
		   $(B)/tests/server/ngdp-server-fault
SERVER_UNIT_SRC := $(wildcard tests/unit/test-nbd-*.c)
SERVER_UNIT_BIN := $(patsubst tests/unit/%.c,$(B)/tests/unit/%,$(SERVER_UNIT_SRC))
SERVER_FUZZ     := $(B)/fuzz/fuzz-nbd
SERVER_FUZZ_CC  ?= clang
SERVER_FUZZ_TIME ?= $(FUZZ_TIME)
SERVER_FUZZ_FLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all

$(B)/tests/server/%: tests/server/%.c include/proto/nbd-proto.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(LDFLAGS)

# The server with its fault-injection hooks ($$NGDP_FAULT), for tests only.
# (sources and headers of the daemon, for the two recipes below)
SERVER_HDR := $(wildcard src/server/*.h src/server/io/*.h include/server/*.h include/proto/*.h)

$(B)/tests/server/ngdp-server-fault: src/server/main.c $(SERVER_SRC) $(SERVER_HDR) $(LIBFORMATS) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -DNGDP_FAULT_INJECT $(filter-out -MMD -MP,$(CFLAGS)) -o $@ \
		src/server/main.c $(SERVER_SRC) $(LIBFORMATS) $(LIBCOMMON) \
		$(LDFLAGS) $(LIBS_COMMON) $(LIBS_SERVER)

$(B)/tests/unit/test-nbd-%: tests/unit/test-nbd-%.c $(LIBSERVER) $(LIBFORMATS) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $^ $(LDFLAGS) -lcmocka $(LIBS_COMMON) $(LIBS_SERVER)

# The fuzzer is built from sources with clang (libFuzzer), not from the
# gcc archives.
# (control-record.c, the volume record reader, needs fileio.c and json-io.c)
$(SERVER_FUZZ): tests/fuzz/fuzz-nbd.c $(SERVER_SRC) $(FORMATS_SRC) src/common/log.c src/common/fileio.c src/common/json-io.c $(SERVER_HDR)
	@mkdir -p $(dir $@)
	$(SERVER_FUZZ_CC) $(CPPFLAGS) $(if $(wildcard src/formats/vhd.c),-DHAVE_FORMAT_VHD) \
		$(SERVER_FUZZ_FLAGS) -o $@ $(filter %.c,$^) $(LIBS_COMMON) $(LIBS_SERVER)

SERVER_FUZZ_OPTS := -max_len=8192 -timeout=10

fuzz-nbd: $(SERVER_FUZZ)
	$(RUN_FUZZ) fuzz nbd $(SERVER_FUZZ) tests/fuzz/corpus/nbd $(SERVER_FUZZ_TIME) $(SERVER_FUZZ_OPTS)

FUZZ_BINS += $(SERVER_FUZZ)
CHECK_FUZZ += "$(RUN_FUZZ) fuzz nbd $(SERVER_FUZZ) tests/fuzz/corpus/nbd $(CHECK_FUZZ_TIME) $(SERVER_FUZZ_OPTS)"

check-server-unit: $(SERVER_UNIT_BIN)
	@$(RUN_TESTS) -s server-unit $(SERVER_UNIT_BIN)

check-server-fuzz-corpus: fuzz-build
	@$(RUN_TESTS) -s server-fuzz \
		"$(RUN_FUZZ) regress nbd $(SERVER_FUZZ) tests/fuzz/corpus/nbd $(SERVER_FUZZ_OPTS)"

# Unit tests, the fuzz corpus regression and tests/server/t-*.sh once per
# engine, in one run of tests/run-tests.sh.
check-server: $(SERVER_BIN) $(SERVER_HELPERS) $(SERVER_UNIT_BIN) fuzz-build
	@# the VHD engineer's tool creates differencing images (mk/vhd.mk)
	@if [ -n "$(VHD_TOOL)" ]; then $(MAKE) --no-print-directory $(VHD_TOOL) >/dev/null; fi
	@NGDP_SERVER=$(abspath $(SERVER_BIN)) NGDP_HELPERS=$(abspath $(B)/tests/server) \
		NGDP_VHD_TOOL=$(if $(VHD_TOOL),$(abspath $(VHD_TOOL))) \
		bash tests/server/run.sh $(foreach t,$(SERVER_UNIT_BIN),--also $(t)) \
		--also "$(RUN_FUZZ) regress nbd $(SERVER_FUZZ) tests/fuzz/corpus/nbd $(SERVER_FUZZ_OPTS)" \
		$(SERVER_TESTS)

CHECK_TARGETS += check-server
FUZZ_TARGETS += fuzz-nbd
.PHONY: check-server check-server-unit check-server-fuzz-corpus fuzz-nbd
