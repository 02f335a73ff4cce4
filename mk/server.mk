# SPDX-License-Identifier: LGPL-2.1-only
# ngdp-server: check-server runs the NBD fuzz corpus once and
# tests/server/t-*.sh once per I/O engine, with the test helpers and the
# server built with its fault-injection hooks.

SERVER_BIN     := $(B)/ngdp-server
SERVER_HELPERS := $(B)/tests/server/nbd-evil $(B)/tests/server/ngdp-ctl \
		  $(B)/tests/server/blkif-front \
		  $(B)/tests/server/nbd-proxy \
		  $(B)/tests/server/ngdp-server-fault

# The server with its fault-injection hooks ($$NGDP_FAULT), for tests
# only: its own objects, built with NGDP_FAULT_INJECT.
fault_obj = $(patsubst %.c,$(B)/fault/%.o,$(1))
$(B)/fault/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(call layer_inc,$<) $(CPPFLAGS) -DNGDP_FAULT_INJECT $(CFLAGS) -c -o $@ $<

$(B)/tests/server/ngdp-server-fault: $(call fault_obj,src/server/main.c $(NGDP_SRC)) $(LIBFORMATS) $(LIBEDGE) $(LIBUTIL)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LIBS_ALL)

check-server: $(SERVER_BIN) $(SERVER_HELPERS) $(B)/tests/formats/vhd-tool $(B)/ngdp-imgio fuzz-build
	@NGDP_SERVER=$(abspath $(SERVER_BIN)) NGDP_HELPERS=$(abspath $(B)/tests/server) \
		NGDP_IMGIO=$(abspath $(B)/ngdp-imgio) \
		NGDP_VHD_TOOL=$(abspath $(B)/tests/formats/vhd-tool) \
		bash tests/server/run.sh \
		--also $(call fuzz_spec,regress,nbd) \
		$(SERVER_TESTS)

CHECK_TARGETS += check-server
.PHONY: check-server
