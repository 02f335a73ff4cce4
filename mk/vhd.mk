# SPDX-License-Identifier: LGPL-2.1-only
# VHD engine tests: unit (cmocka), shell scenarios, fuzz target.

VHD_UNIT      := $(B)/tests/unit/test-vhd-layout
VHD_TOOL      := $(B)/tests/formats/vhd-tool
VHD_FUZZ      := $(B)/fuzz/fuzz-vhd-open
VHD_FUZZ_TIME ?= 60
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
VHD_FUZZ_SRC := tests/fuzz/fuzz-vhd-open.c $(FORMATS_SRC) src/common/log.c
$(VHD_FUZZ): $(VHD_FUZZ_SRC) include/formats/format.h include/formats/vhd.h
	@mkdir -p $(dir $@)
	$(VHD_FUZZ_CC) $(CPPFLAGS) -DHAVE_FORMAT_VHD -g -O1 \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
		-o $@ $(VHD_FUZZ_SRC) -lz

check-vhd-unit: $(VHD_UNIT)
	$(VHD_UNIT)

check-vhd: $(VHD_UNIT) $(VHD_TOOL) $(B)/ngdp-imgio
	$(VHD_UNIT)
	@if command -v $(VHD_FUZZ_CC) >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory $(VHD_FUZZ) >/dev/null && \
		echo "== vhd fuzz corpus regression" && \
		{ $(VHD_FUZZ) -runs=0 tests/fuzz/corpus/vhd >$(B)/fuzz/vhd-corpus.log 2>&1 || \
		  { cat $(B)/fuzz/vhd-corpus.log; exit 1; }; } && \
		tail -1 $(B)/fuzz/vhd-corpus.log; \
	else echo "skip: vhd fuzz corpus regression ($(VHD_FUZZ_CC) not found)"; fi
	B=$(B) bash tests/formats/vhd-test.sh

fuzz-vhd: $(VHD_FUZZ)
	@mkdir -p $(B)/fuzz/corpus-vhd
	@mkdir -p $(B)/fuzz/artifacts/
	$(VHD_FUZZ) -max_total_time=$(VHD_FUZZ_TIME) -max_len=65536 \
		-artifact_prefix=$(B)/fuzz/artifacts/ \
		$(B)/fuzz/corpus-vhd tests/fuzz/corpus/vhd

.PHONY: check-vhd check-vhd-unit fuzz-vhd
