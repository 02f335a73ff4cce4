#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-only
# The Makefile's layering rules fail the build.  For a file of each layer, a
# probe that includes a header the layer must not see has to fail to
# compile, and one that includes a header it may use has to compile (so
# that every check can fail).  The include flags come from the Makefile
# itself (make layer-inc FILE=...).
set -u
cd "$(dirname "$0")/../.." || exit 1
CC=${CC:-cc}
ok=0 bad=0

# compiles FILE HEADER: does a file of FILE's layer that includes HEADER build?
compiles() {
	local flags
	flags=$(make -s --no-print-directory layer-inc FILE="$1") || return 2
	printf '#include %s\nint layer_probe;\n' "$2" |
		$CC $flags -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -fsyntax-only -x c - 2>/dev/null
}
# expect yes|no FILE HEADER...: each HEADER compiles in FILE's layer, or not
expect() {
	local want=$1 f=$2 h got
	shift 2
	for h in "$@"; do
		if compiles "$f" "$h"; then got=yes; else got=no; fi
		if [ "$got" = "$want" ]; then
			echo "ok: $f ${h}: $got"; ok=$((ok + 1))
		else
			echo "FAIL: $f ${h}: $got, wanted $want"; bad=$((bad + 1))
		fi
	done
}
allow() { expect yes "$@"; }
refuse() { expect no "$@"; }

allow  src/util/probe.c '"log.h"' '"fileio.h"' '"nbd-proto.h"'
refuse src/util/probe.c '<json-c/json.h>' '"json-io.h"' '"call.h"' '"sr.h"' \
	'"formats/format.h"'
allow  src/edge/probe.c '"call.h"' '"json-io.h"' '<json-c/json.h>' '"log.h"'
refuse src/edge/probe.c '"sr.h"' '"formats/format.h"' '"server/server.h"'
allow  src/sr/probe.c '"sr.h"' '"active.h"' '"json-io.h"'
refuse src/sr/probe.c '"call.h"' '"ctl-client.h"' '"formats/format.h"'
allow  src/formats/probe.c '"formats/format.h"' '"formats/vhd.h"' '"bytes.h"'
refuse src/formats/probe.c '<json-c/json.h>' '<json.h>' '"json-io.h"' \
	'"call.h"' '"sr.h"' '"active.h"' '"ctl-client.h"'
allow  src/server/probe.c '"server/server.h"' '"ctl-proto.h"' '"nbd-proto.h"'
refuse src/server/probe.c '<json-c/json.h>' '"json-io.h"' '"call.h"' '"sr.h"'
allow  src/server/control-probe.c '<json-c/json.h>' '"json-io.h"' \
	'"server/server.h"'
refuse src/server/control-probe.c '"call.h"' '"sr.h"' '"ctl-client.h"'
allow  src/tools/probe.c '"formats/format.h"'
refuse src/tools/probe.c '<json-c/json.h>' '"sr.h"'
allow  src/volume-plugin/probe.c '"call.h"' '"sr.h"' '"formats/vhd.h"' \
	'"volume-plugin.h"'
allow  src/datapath-plugin/probe.c '"call.h"' '"sr.h"' '"ctl-client.h"'

echo "t-layers: $ok ok, $bad failed"
[ $bad -eq 0 ] || exit 1
exit 0
