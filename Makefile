# SPDX-License-Identifier: LGPL-2.1-only
# xapi-storage-ng: native SMAPIv3 volume plugins (ext4-ng, xfs-ng) and the
# ngdp datapath.  Plain GNU make; see README.md for the targets.

PREFIX     ?= /usr
LIBEXECDIR ?= $(PREFIX)/libexec
# Where xapi-storage-script looks for plugins.
XSS_ROOT   ?= $(LIBEXECDIR)/xapi-storage-script
# Where our binaries live; the plugin directories hold symlinks to them.
PKGLIBEXEC ?= $(LIBEXECDIR)/xapi-storage-ng
DESTDIR    ?=
VERSION    := 0.1.0

CC      ?= cc
CFLAGS  ?= -O2 -g
# Sanitizer builds live apart so objects never mix.
ifeq ($(SANITIZE),1)
B       ?= build-san
else
B       ?= build
endif

WARN := -Wall -Wextra -Werror -Wshadow -Wvla -Wformat=2 -Wstrict-prototypes \
	-Wmissing-prototypes -Wwrite-strings -Wpointer-arith -Wno-format-nonliteral \
	-Wno-format-truncation
override CFLAGS   += -std=gnu11 $(WARN) -fno-common -fstack-protector-strong -MMD -MP
override CPPFLAGS += -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 \
	-DVERSION=\"$(VERSION)\" -DPKGLIBEXEC=\"$(PKGLIBEXEC)\"

ifeq ($(SANITIZE),1)
override CFLAGS  += -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
override LDFLAGS += -fsanitize=address,undefined
endif

# ---------------------------------------------------------------- layers
# Libraries, lowest first.  Each compiles with the include directories of
# what it may use and nothing else, so a wrong #include fails to build:
#
#   libutil.a     src/util/      include/util/   libc only: logging, files,
#                                                 processes, locks, names, bytes
#   libedge.a     src/edge/      include/edge/   the plugins' edge: calls and
#                                                 error records, JSON, control client
#   libsr.a       src/sr/        include/sr/     the on-disk SR model
#   libformats.a  src/formats/   include/engine/formats/   the image engines
#   libngdp.a     src/server/    include/engine/server/    the daemon's core
#
# include/proto/ (the NBD and control-socket wire vocabulary) is open to all.
# A layer's include path starts with the mk/poison/ directories of what it
# must not use, whose headers are #errors (json-c sits in the system's
# include path, so leaving its directory out would not be enough):
#   json  json-c and json-io.h: libutil and the engine (formats, the
#         daemon's core, tools).  JSON enters the daemon only through its
#         control socket, src/server/control*.c ("the door").
#   edge  call.h, ctl-client.h: the SR model and the daemon.
#   sr    sr.h, active.h: the daemon.
# tests/layers/t-layers.sh proves each rule fails the build.
PKGS_JSON     := json-c blkid
JSON_CPPFLAGS := $(shell pkg-config --cflags $(PKGS_JSON))
LIBS_JSON     := $(shell pkg-config --libs $(PKGS_JSON))
LIBS_ENGINE   := -laio -luring -lz -lpthread
# The blkif ring's Xen transport (src/server/blkif/xen.c): Debian's libxen-dev.
LIBS_XEN      := -lxenstore -lxengnttab -lxenevtchn

# A missing library is an error, not a smaller build ('make deps' installs it).
ifeq ($(LIBS_JSON),)
ifneq ($(filter-out deps check demo bench bench-xen clean,$(or $(MAKECMDGOALS),all)),)
$(error pkg-config finds no json-c or libblkid: run 'make deps' as root)
endif
endif

UTIL_DIRS  := -Iinclude/util -Iinclude/proto
INC_UTIL   := -Imk/poison/json $(UTIL_DIRS)
INC_EDGE   := $(UTIL_DIRS) -Iinclude/edge $(JSON_CPPFLAGS)
INC_SR     := -Imk/poison/edge $(UTIL_DIRS) -Iinclude/edge -Iinclude/sr $(JSON_CPPFLAGS)
INC_ENGINE := -Imk/poison/json -Imk/poison/edge -Imk/poison/sr $(UTIL_DIRS) -Iinclude/engine
INC_DOOR   := -Imk/poison/edge -Imk/poison/sr $(UTIL_DIRS) -Iinclude/engine \
	      -Iinclude/edge $(JSON_CPPFLAGS)
INC_PLUGIN := $(UTIL_DIRS) -Iinclude/edge -Iinclude/sr -Iinclude/engine \
	      -Isrc/volume-plugin $(JSON_CPPFLAGS)
# (tests/unit/test-dp-ring.c tests the datapath plugin's ring.c)
INC_TESTS  := $(INC_PLUGIN) -Isrc/datapath-plugin

# The daemon's JSON door.
DOOR_SRC := src/server/control%

# The include flags of a source file's layer (tests see everything).
layer_inc = $(strip \
	$(if $(filter src/util/%,$1),$(INC_UTIL), \
	$(if $(filter src/edge/%,$1),$(INC_EDGE), \
	$(if $(filter src/sr/%,$1),$(INC_SR), \
	$(if $(filter $(DOOR_SRC),$1),$(INC_DOOR), \
	$(if $(filter src/formats/% src/server/% src/tools/%,$1),$(INC_ENGINE), \
	$(if $(filter src/volume-plugin/% src/datapath-plugin/% plugins/%,$1),$(INC_PLUGIN), \
	$(INC_TESTS))))))))

# ---------------------------------------------------------------- sources
UTIL_SRC    := $(wildcard src/util/*.c)
EDGE_SRC    := $(wildcard src/edge/*.c)
SR_SRC      := $(wildcard src/sr/*.c)
FORMATS_SRC := $(wildcard src/formats/*.c)
NGDP_SRC    := $(filter-out src/server/main.c,$(wildcard src/server/*.c src/server/io/*.c \
	       src/server/blkif/*.c))
VOLUME_SRC  := $(wildcard src/volume-plugin/*.c)
DPPLUG_SRC  := $(wildcard src/datapath-plugin/*.c)
PLUGINS     := ext4-ng xfs-ng

obj = $(patsubst %.c,$(B)/%.o,$(1))

LIBUTIL    := $(B)/libutil.a
LIBEDGE    := $(B)/libedge.a
LIBSR      := $(B)/libsr.a
LIBFORMATS := $(B)/libformats.a
LIBNGDP    := $(B)/libngdp.a
# Link order: users before what they use.
ALL_LIBS   := $(LIBNGDP) $(LIBFORMATS) $(LIBSR) $(LIBEDGE) $(LIBUTIL)
LIBS_ALL    = $(LIBS_JSON) $(LIBS_ENGINE) $(LIBS_XEN)

# What `make install` installs; ngdp-imgio is a test tool.
PROGRAMS := $(addprefix $(B)/,$(PLUGINS)) $(B)/ngdp $(B)/ngdp-server

all: $(PROGRAMS) $(B)/ngdp-imgio

# The include flags of FILE's layer (tests/layers/t-layers.sh).
layer-inc:
	@echo $(call layer_inc,$(FILE))

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(call layer_inc,$<) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(LIBUTIL): $(call obj,$(UTIL_SRC))
$(LIBEDGE): $(call obj,$(EDGE_SRC))
$(LIBSR): $(call obj,$(SR_SRC))
$(LIBFORMATS): $(call obj,$(FORMATS_SRC))
$(LIBNGDP): $(call obj,$(NGDP_SRC))
$(ALL_LIBS):
	@rm -f $@; $(AR) rcs $@ $^

# One binary per volume plugin: the shared handlers plus the plugin's
# descriptor (libformats: the VHD writer, for VHD snapshots).
$(addprefix $(B)/,$(PLUGINS)): $(B)/%: $(B)/plugins/%/plugin.o $(call obj,$(VOLUME_SRC)) $(LIBFORMATS) $(LIBSR) $(LIBEDGE) $(LIBUTIL)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LIBS_JSON) -lz

$(B)/ngdp: $(call obj,$(DPPLUG_SRC)) $(LIBSR) $(LIBEDGE) $(LIBUTIL)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LIBS_JSON)

# libedge: the control socket's JSON parser (json-io)
$(B)/ngdp-server: $(call obj,src/server/main.c) $(LIBNGDP) $(LIBFORMATS) $(LIBEDGE) $(LIBUTIL)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LIBS_ALL)

# Runs the format engines synchronously from the command line, for tests.
$(B)/ngdp-imgio: $(call obj,src/tools/ngdp-imgio.c) $(LIBFORMATS) $(LIBUTIL)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) -lz

# ---------------------------------------------------------------- install
# Method names each plugin implements: the set of files is what xapi reads as
# capabilities, so only these get a symlink.
VOLUME_METHODS = $(shell cat src/volume-plugin/methods.list)
DATAPATH_METHODS = $(shell cat src/datapath-plugin/methods.list 2>/dev/null)
DATAPATH_SCHEME := ngdp

# Relative symlinks (plugin dir -> ../../../xapi-storage-ng/<binary>) keep a
# DESTDIR tree runnable in place, which is how the functional tests run it.
install: all
	install -d $(DESTDIR)$(PKGLIBEXEC)
	install -m 0755 $(PROGRAMS) $(DESTDIR)$(PKGLIBEXEC)/
	set -e; for p in $(PLUGINS); do \
	  d=$(DESTDIR)$(XSS_ROOT)/volume/org.xen.xapi.storage.$$p; \
	  install -d $$d; \
	  t=$$(realpath -m --relative-to=$(XSS_ROOT)/volume/x $(PKGLIBEXEC)/$$p); \
	  for m in $(VOLUME_METHODS); do ln -sfn $$t $$d/$$m; done; \
	done
	set -e; if [ -n "$(DATAPATH_METHODS)" ]; then \
	  d=$(DESTDIR)$(XSS_ROOT)/datapath/$(DATAPATH_SCHEME); \
	  install -d $$d; \
	  t=$$(realpath -m --relative-to=$(XSS_ROOT)/datapath/x $(PKGLIBEXEC)/ngdp); \
	  for m in $(DATAPATH_METHODS); do ln -sfn $$t $$d/$$m; done; \
	fi

uninstall:
	rm -rf $(DESTDIR)$(PKGLIBEXEC) \
	  $(foreach p,$(PLUGINS),$(DESTDIR)$(XSS_ROOT)/volume/org.xen.xapi.storage.$(p)) \
	  $(DESTDIR)$(XSS_ROOT)/datapath/$(DATAPATH_SCHEME)

clean:
	rm -rf $(B)

# Tests, benchmark and guest fragments (mk/tests.mk: deps, check, demo).
include mk/tests.mk mk/bench.mk mk/formats.mk mk/server.mk mk/vhd.mk mk/vm.mk
# Dependency files of the objects built so far (none on a fresh tree).
-include $(shell find $(B) -name '*.d' 2>/dev/null)

.PHONY: all install uninstall clean layer-inc
.DELETE_ON_ERROR:
