# SPDX-License-Identifier: LGPL-2.1-only
# The format engines (raw, qcow2, VHD): check-formats runs the qcow2 fuzz
# corpus once, run.sh (the qcow2 engine against qemu), meta-test.sh
# (crafted metadata, chain rules) and any tests/formats/t-*.sh, all through
# ngdp-imgio.

IMGIO := $(B)/ngdp-imgio

check-formats: $(IMGIO) $(B)/tests/formats/vhd-tool fuzz-build
	@$(RUN_TESTS) -s formats \
		$(call fuzz_spec,regress,qcow2) \
		$(foreach t,tests/formats/run.sh $(wildcard tests/formats/t-*.sh),"IMGIO=$(abspath $(IMGIO)) B=$(B) $(t)") \
		"IMGIO=$(abspath $(IMGIO)) VHD_TOOL=$(abspath $(B)/tests/formats/vhd-tool) tests/formats/meta-test.sh"

CHECK_TARGETS += check-formats
.PHONY: check-formats
