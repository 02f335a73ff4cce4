# SPDX-License-Identifier: LGPL-2.1-only
# Format layer (raw, qcow2): the ngdp-imgio test tool, unit tests, the
# shell tests (check-formats) and the qcow2 fuzzer (fuzz-qcow2).

IMGIO := $(B)/ngdp-imgio
LIBS_FORMATS := -lz

all: $(IMGIO)

# libformats.a is an archive: format.c must reference format_vhd strongly
# for vhd.o to be pulled in, and only when vhd.c exists (else weak/NULL).
ifneq ($(wildcard src/formats/vhd.c),)
$(B)/src/formats/format.o: override CPPFLAGS += -DHAVE_FORMAT_VHD
$(B)/src/formats/format.o: src/formats/vhd.c
endif

$(IMGIO): $(call obj,src/tools/ngdp-imgio.c) $(LIBFORMATS) $(LIBCOMMON)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LIBS_FORMATS)

# ---------------------------------------------------------------- unit tests
FORMATS_UNIT_SRC := $(wildcard tests/unit/test-qcow2-*.c)
FORMATS_UNIT_BIN := $(patsubst tests/unit/%.c,$(B)/tests/unit/%,$(FORMATS_UNIT_SRC))

$(B)/tests/unit/test-qcow2-%: $(call obj,tests/unit/test-qcow2-%.c) $(LIBFORMATS) $(LIBCOMMON)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) -lcmocka $(LIBS_FORMATS)

check-formats-unit: $(FORMATS_UNIT_BIN)
	@set -e; for t in $(FORMATS_UNIT_BIN); do echo "== $$t"; $$t; done

# ---------------------------------------------------------------- fuzzing
FUZZ_CC    ?= clang
FUZZ_FLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
FUZZ_QCOW2 := $(B)/fuzz/fuzz-qcow2-open
FUZZ_TIME  ?= 60

$(FUZZ_QCOW2): tests/fuzz/fuzz-qcow2-open.c $(FORMATS_SRC) tests/fuzz/qcow2-fuzz-log.c include/formats/format.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) $(if $(wildcard src/formats/vhd.c),-DHAVE_FORMAT_VHD) \
		$(FUZZ_FLAGS) -o $@ tests/fuzz/fuzz-qcow2-open.c $(FORMATS_SRC) \
		tests/fuzz/qcow2-fuzz-log.c -lz

fuzz-qcow2: $(FUZZ_QCOW2)
	@mkdir -p $(B)/fuzz/corpus-qcow2 $(B)/fuzz/artifacts/
	$(FUZZ_QCOW2) -max_total_time=$(FUZZ_TIME) -max_len=65536 \
		-artifact_prefix=$(B)/fuzz/artifacts/ \
		$(B)/fuzz/corpus-qcow2 tests/fuzz/corpus/qcow2

# ---------------------------------------------------------------- check
check-formats: $(IMGIO) $(FORMATS_UNIT_BIN)
	@$(MAKE) --no-print-directory check-formats-unit
	@if command -v $(FUZZ_CC) >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory $(FUZZ_QCOW2) >/dev/null && \
		echo "== fuzz corpus regression" && \
		$(FUZZ_QCOW2) -runs=0 tests/fuzz/corpus/qcow2 2>&1 | tail -2; \
	else echo "skip: fuzz corpus regression ($(FUZZ_CC) not found)"; fi
	IMGIO=$(abspath $(IMGIO)) bash tests/formats/run.sh
	@$(MAKE) --no-print-directory $(B)/tests/formats/vhd-tool >/dev/null
	IMGIO=$(abspath $(IMGIO)) VHD_TOOL=$(abspath $(B)/tests/formats/vhd-tool) \
		bash tests/formats/meta-test.sh

CHECK_TARGETS += check-formats
FUZZ_TARGETS += fuzz-qcow2
.PHONY: check-formats check-formats-unit fuzz-qcow2
