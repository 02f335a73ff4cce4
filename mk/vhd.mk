# SPDX-License-Identifier: LGPL-2.1-only
# The VHD engine: check-vhd runs the VHD fuzz corpus once and the shell
# scenarios of tests/formats/vhd-test.sh (vhd-tool makes and corrupts
# images, and runs a crash workload).

VHD_TOOL := $(B)/tests/formats/vhd-tool

check-vhd: $(VHD_TOOL) $(B)/ngdp-imgio fuzz-build
	@$(RUN_TESTS) -s vhd \
		$(call fuzz_spec,regress,vhd) \
		"B=$(B) tests/formats/vhd-test.sh"

CHECK_TARGETS += check-vhd
.PHONY: check-vhd
