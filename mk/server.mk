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
SERVER_FUZZ_TIME ?= 120
SERVER_FUZZ_FLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all

$(B)/tests/server/%: tests/server/%.c include/server/nbd-proto.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(LDFLAGS)

# The server with its fault-injection hooks ($$NGDP_FAULT), for tests only.
$(B)/tests/server/ngdp-server-fault: src/server/main.c $(SERVER_SRC) $(wildcard src/server/io/*.h include/server/*.h) $(LIBFORMATS) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -DNGDP_FAULT_INJECT $(filter-out -MMD -MP,$(CFLAGS)) -o $@ \
		src/server/main.c $(SERVER_SRC) $(LIBFORMATS) $(LIBCOMMON) \
		$(LDFLAGS) $(LIBS_COMMON) $(LIBS_SERVER)

$(B)/tests/unit/test-nbd-%: tests/unit/test-nbd-%.c $(LIBSERVER) $(LIBFORMATS) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $^ $(LDFLAGS) -lcmocka $(LIBS_COMMON) $(LIBS_SERVER)

# The fuzzer is built from sources with clang (libFuzzer), not from the
# gcc archives.
$(SERVER_FUZZ): tests/fuzz/fuzz-nbd.c $(SERVER_SRC) $(FORMATS_SRC) src/common/log.c
	@mkdir -p $(dir $@)
	$(SERVER_FUZZ_CC) $(CPPFLAGS) $(if $(wildcard src/formats/vhd.c),-DHAVE_FORMAT_VHD) \
		$(SERVER_FUZZ_FLAGS) -o $@ $^ $(LIBS_COMMON) $(LIBS_SERVER)

fuzz-nbd: $(SERVER_FUZZ)
	@mkdir -p $(B)/fuzz/corpus-nbd $(B)/fuzz/artifacts-nbd/
	$(SERVER_FUZZ) -max_total_time=$(SERVER_FUZZ_TIME) -max_len=8192 \
		-timeout=10 -artifact_prefix=$(B)/fuzz/artifacts-nbd/ \
		$(B)/fuzz/corpus-nbd tests/fuzz/corpus/nbd

check-server-unit: $(SERVER_UNIT_BIN)
	@set -e; for t in $(SERVER_UNIT_BIN); do echo "== $$t"; $$t; done

check-server-fuzz-corpus:
	@if command -v $(SERVER_FUZZ_CC) >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory $(SERVER_FUZZ) >/dev/null && \
		echo "== fuzz-nbd corpus regression" && \
		$(SERVER_FUZZ) -runs=0 tests/fuzz/corpus/nbd 2>&1 | tail -1; \
	else echo "skip: fuzz-nbd corpus regression ($(SERVER_FUZZ_CC) not found)"; fi

check-server: $(SERVER_BIN) $(SERVER_HELPERS) $(SERVER_UNIT_BIN)
	@$(MAKE) --no-print-directory check-server-unit
	@$(MAKE) --no-print-directory check-server-fuzz-corpus
	@# the VHD engineer's tool creates differencing images (mk/vhd.mk)
	@if [ -n "$(VHD_TOOL)" ]; then $(MAKE) --no-print-directory $(VHD_TOOL) >/dev/null; fi
	NGDP_SERVER=$(abspath $(SERVER_BIN)) NGDP_HELPERS=$(abspath $(B)/tests/server) \
		NGDP_VHD_TOOL=$(if $(VHD_TOOL),$(abspath $(VHD_TOOL))) \
		bash tests/server/run.sh $(SERVER_TESTS)

CHECK_TARGETS += check-server
FUZZ_TARGETS += fuzz-nbd
.PHONY: check-server check-server-unit check-server-fuzz-corpus fuzz-nbd
