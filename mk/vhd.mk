# SPDX-License-Identifier: LGPL-2.1-only
# VHD engine tests: unit (cmocka), shell scenarios, fuzz target.

VHD_UNIT      := $(B)/tests/unit/test-vhd-layout
VHD_TOOL      := $(B)/tests/formats/vhd-tool
VHD_FUZZ      := $(B)/fuzz/fuzz-vhd-open
VHD_FUZZ_TIME ?= $(FUZZ_TIME)
VHD_FUZZ_CC   ?= clang

CHECK_TARGETS += check-vhd
FUZZ_TARGETS  += fuzz-vhd

$(VHD_UNIT): tests/unit/test-vhd-layout.c $(LIBFORMATS) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(LIBFORMATS) $(LIBCOMMON) $(LDFLAGS) -lcmocka $(LIBS_COMMON) $(LIBS_SERVER)

# Small helper for the shell tests: create images, corrupt headers, a
# crash workload (see tests/formats/vhd-tool.c).
$(VHD_TOOL): tests/formats/vhd-tool.c $(LIBFORMATS) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(LIBFORMATS) $(LIBCOMMON) $(LDFLAGS) $(LIBS_COMMON) $(LIBS_SERVER)

# The fuzzer is built with clang straight from the sources (libFuzzer +
# ASan + UBSan), independently of $(B)'s objects.
VHD_FUZZ_SRC := tests/fuzz/fuzz-vhd-open.c $(FORMATS_SRC) src/util/fullio.c src/common/log.c
$(VHD_FUZZ): $(VHD_FUZZ_SRC) include/formats/format.h include/formats/vhd.h
	@mkdir -p $(dir $@)
	$(VHD_FUZZ_CC) $(CPPFLAGS) -g -O1 \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
		-o $@ $(VHD_FUZZ_SRC) -lz

VHD_FUZZ_OPTS := -max_len=65536

check-vhd-unit: $(VHD_UNIT)
	@$(RUN_TESTS) -s vhd-unit $(VHD_UNIT)

# Unit test, fuzz corpus regression and the shell scenarios, in one run of
# tests/run-tests.sh.
check-vhd: $(VHD_UNIT) $(VHD_TOOL) $(B)/ngdp-imgio fuzz-build
	@$(RUN_TESTS) -s vhd $(VHD_UNIT) \
		"$(RUN_FUZZ) regress vhd $(VHD_FUZZ) tests/fuzz/corpus/vhd $(VHD_FUZZ_OPTS)" \
		"B=$(B) tests/formats/vhd-test.sh"

fuzz-vhd: $(VHD_FUZZ)
	$(RUN_FUZZ) fuzz vhd $(VHD_FUZZ) tests/fuzz/corpus/vhd $(VHD_FUZZ_TIME) $(VHD_FUZZ_OPTS)

FUZZ_BINS += $(VHD_FUZZ)
CHECK_FUZZ += "$(RUN_FUZZ) fuzz vhd $(VHD_FUZZ) tests/fuzz/corpus/vhd $(CHECK_FUZZ_TIME) $(VHD_FUZZ_OPTS)"

.PHONY: check-vhd check-vhd-unit fuzz-vhd
