#!/bin/bash
# Plugin.Query / diagnostics / ls, and the installed method set.
# per-plugin
. "$(dirname "$0")/lib.sh"

dir=$XSS/volume/org.xen.xapi.storage.$PLUGIN
vcall Plugin.Query '{"dbg":"t"}'
expect_ok "Plugin.Query"
check "plugin equals the directory's SR type" [ "$(jqr .plugin)" = "$PLUGIN" ]
check "required_api_version is 5.0" [ "$(jqr .required_api_version)" = 5.0 ]
check "query_result has every field" jqt '
	(.name|type=="string") and (.description|type=="string") and
	(.vendor|type=="string") and (.copyright|type=="string") and
	(.version|type=="string") and (.features|type=="array") and
	(.configuration|type=="object") and (.required_cluster_stack|type=="array")' \
	<<<"$OUT"
check "features name only strings xapi knows" jqt '.features | all(
	IN("SR_ATTACH","SR_DETACH","SR_CREATE","SR_DELETE","SR_PROBE","SR_UPDATE",
	   "SR_SCAN","VDI_CREATE","VDI_DELETE","VDI_ATTACH","VDI_DETACH",
	   "VDI_ACTIVATE","VDI_DEACTIVATE","VDI_UPDATE","VDI_CLONE","VDI_SNAPSHOT",
	   "VDI_RESIZE","THIN_PROVISIONING","LARGE_VDI","VDI_ACTIVATE_READONLY",
	   "VDI_CONFIG_CBT","VDI_MIRROR","VDI_MIRROR_IN",
	   "VDI_RESET_ON_BOOT/2"))' <<<"$OUT"
# the installed files are the capabilities: exactly the implemented methods
check "installed methods = methods.list" \
	diff <(ls "$dir" | sort) <(sort "$SRCDIR/src/volume-plugin/methods.list")
check "every method file is executable" \
	bash -c 'for f in "$1"/*; do [ -x "$f" ] || exit 1; done' _ "$dir"
# xapi-storage-script matches file names case-insensitively
call volume "$PLUGIN" plugin.query '{"dbg":"t"}' 2>/dev/null
[ -e "$dir/plugin.query" ] || { OUT=$(printf '{"dbg":"t"}' | "$dir/Plugin.Query" --json); RC=$?; }
expect_ok "Plugin.query via the installed Plugin.Query"

vcall Plugin.diagnostics '{"dbg":"t"}'
expect_ok "Plugin.diagnostics"
check "diagnostics is text naming the plugin" jqt --arg p "$PLUGIN" \
	'type=="string" and contains($p) and contains("qemu-img")' <<<"$OUT"
vcall Plugin.ls '{"dbg":"t"}'
expect_ok "Plugin.ls"
check "Plugin.ls is a list" jqt 'type=="array"' <<<"$OUT"
finish
