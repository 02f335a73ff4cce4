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
override CPPFLAGS += -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -Iinclude -Iinclude/proto \
	-DVERSION=\"$(VERSION)\" -DPKGLIBEXEC=\"$(PKGLIBEXEC)\"

ifeq ($(SANITIZE),1)
override CFLAGS  += -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
override LDFLAGS += -fsanitize=address,undefined
endif

PKGS_LIB   := json-c blkid
LIBS_COMMON = $(shell pkg-config --libs $(PKGS_LIB) 2>/dev/null || echo -ljson-c -lblkid)
override CPPFLAGS += $(shell pkg-config --cflags $(PKGS_LIB) 2>/dev/null)
LIBS_SERVER = -laio -luring -lz -lpthread

# ---------------------------------------------------------------- sources
COMMON_SRC  := $(wildcard src/common/*.c src/sr/*.c)
FORMATS_SRC := $(wildcard src/formats/*.c)
VOLUME_SRC  := $(wildcard src/volume-plugin/*.c)
DPPLUG_SRC  := $(wildcard src/datapath-plugin/*.c)
SERVER_SRC  := $(filter-out src/server/main.c,$(wildcard src/server/*.c src/server/*/*.c))
PLUGINS     := ext4-ng xfs-ng

obj = $(patsubst %.c,$(B)/%.o,$(1))

LIBCOMMON  := $(B)/libcommon.a
LIBFORMATS := $(B)/libformats.a
LIBSERVER  := $(B)/libserver.a

PROGRAMS := $(addprefix $(B)/,$(PLUGINS))
ifneq ($(DPPLUG_SRC),)
PROGRAMS += $(B)/ngdp
endif
ifneq ($(wildcard src/server/main.c),)
PROGRAMS += $(B)/ngdp-server
endif

all: $(PROGRAMS)

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(POISON) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

# The engine (formats, the server core) must not see JSON or the plugin
# edge: mk/poison comes first in its include path and holds an #error
# json-c/json.h, json-io.h, call.h and sr.h.  src/server/control*.c is the
# daemon's one door for JSON.
ENGINE_OBJ := $(call obj,$(FORMATS_SRC) src/server/main.c \
	$(filter-out src/server/control%.c,$(SERVER_SRC)))
$(ENGINE_OBJ): POISON := -Imk/poison

$(LIBCOMMON): $(call obj,$(COMMON_SRC))
	@rm -f $@; $(AR) rcs $@ $^
$(LIBFORMATS): $(call obj,$(FORMATS_SRC))
	@rm -f $@; $(AR) rcs $@ $^
$(LIBSERVER): $(call obj,$(SERVER_SRC))
	@rm -f $@; $(AR) rcs $@ $^

# One binary per volume plugin: the shared handlers plus the plugin's descriptor.
# (libformats: the VHD writer for VHD snapshots)
$(B)/%: plugins/%/plugin.c $(call obj,$(VOLUME_SRC)) $(LIBFORMATS) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(call obj,$(VOLUME_SRC)) $(LIBFORMATS) $(LIBCOMMON) $(LDFLAGS) $(LIBS_COMMON) -lz

$(B)/ngdp: $(call obj,$(DPPLUG_SRC)) $(LIBCOMMON)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LIBS_COMMON)

$(B)/ngdp-server: $(call obj,src/server/main.c) $(LIBSERVER) $(LIBFORMATS) $(LIBCOMMON)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LIBS_COMMON) $(LIBS_SERVER)

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

# Test, packaging and tool fragments (mk/tests.mk: deps, check, demo).
-include mk/*.mk
-include $(shell find $(B) -name '*.d' 2>/dev/null)

.PHONY: all install uninstall clean
.DELETE_ON_ERROR:
