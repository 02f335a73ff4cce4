# SPDX-License-Identifier: LGPL-2.1-only
# Format layer (raw, qcow2): the ngdp-imgio test tool, unit tests, the
# shell tests (check-formats) and the qcow2 fuzzer (fuzz-qcow2).

IMGIO := $(B)/ngdp-imgio
LIBS_FORMATS := -lz

all: $(IMGIO)

$(IMGIO): $(call obj,src/tools/ngdp-imgio.c) $(LIBFORMATS) $(LIBCOMMON)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LIBS_FORMATS)

# ---------------------------------------------------------------- unit tests
FORMATS_UNIT_SRC := $(wildcard tests/unit/test-qcow2-*.c) tests/unit/test-format-dispatch.c
FORMATS_UNIT_BIN := $(patsubst tests/unit/%.c,$(B)/tests/unit/%,$(FORMATS_UNIT_SRC))

$(B)/tests/unit/test-qcow2-%: $(call obj,tests/unit/test-qcow2-%.c) $(LIBFORMATS) $(LIBCOMMON)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) -lcmocka $(LIBS_FORMATS)
$(B)/tests/unit/test-format-dispatch: $(call obj,tests/unit/test-format-dispatch.c) $(LIBFORMATS) $(LIBCOMMON)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) -lcmocka $(LIBS_FORMATS)

check-formats-unit: $(FORMATS_UNIT_BIN)
	@$(RUN_TESTS) -s formats-unit $(FORMATS_UNIT_BIN)

# ---------------------------------------------------------------- fuzzing
FUZZ_CC    ?= clang
FUZZ_FLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
FUZZ_QCOW2 := $(B)/fuzz/fuzz-qcow2-open
FUZZ_TIME  ?= 60

$(FUZZ_QCOW2): tests/fuzz/fuzz-qcow2-open.c $(FORMATS_SRC) src/util/fullio.c tests/fuzz/qcow2-fuzz-log.c include/formats/format.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_FLAGS) -o $@ tests/fuzz/fuzz-qcow2-open.c $(FORMATS_SRC) \
		src/util/fullio.c tests/fuzz/qcow2-fuzz-log.c -lz

FUZZ_QCOW2_OPTS := -max_len=65536

fuzz-qcow2: $(FUZZ_QCOW2)
	$(RUN_FUZZ) fuzz qcow2 $(FUZZ_QCOW2) tests/fuzz/corpus/qcow2 $(FUZZ_TIME) $(FUZZ_QCOW2_OPTS)

FUZZ_BINS += $(FUZZ_QCOW2)
CHECK_FUZZ += "$(RUN_FUZZ) fuzz qcow2 $(FUZZ_QCOW2) tests/fuzz/corpus/qcow2 $(CHECK_FUZZ_TIME) $(FUZZ_QCOW2_OPTS)"

# ---------------------------------------------------------------- check
# Unit tests, the fuzz corpus regression (every seed once), run.sh (the
# qcow2 engine against qemu), meta-test.sh (crafted metadata, chain rules)
# and any tests/formats/t-*.sh.
check-formats: $(IMGIO) $(FORMATS_UNIT_BIN) fuzz-build $(B)/tests/formats/vhd-tool
	@$(RUN_TESTS) -s formats $(FORMATS_UNIT_BIN) \
		"$(RUN_FUZZ) regress qcow2 $(FUZZ_QCOW2) tests/fuzz/corpus/qcow2 $(FUZZ_QCOW2_OPTS)" \
		$(foreach t,tests/formats/run.sh $(wildcard tests/formats/t-*.sh),"IMGIO=$(abspath $(IMGIO)) B=$(B) $(t)") \
		"IMGIO=$(abspath $(IMGIO)) VHD_TOOL=$(abspath $(B)/tests/formats/vhd-tool) tests/formats/meta-test.sh"

CHECK_TARGETS += check-formats
FUZZ_TARGETS += fuzz-qcow2
.PHONY: check-formats check-formats-unit fuzz-qcow2
