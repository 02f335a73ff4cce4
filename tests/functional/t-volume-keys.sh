#!/bin/bash
# Volume.set / unset / set_name / set_description: every key comes back in
# Volume.stat and SR.ls, as xapi needs (vdi-type, snapshot flags, tags...).
# per-plugin
. "$(dirname "$0")/lib.sh"

mk_sr || { fail "SR setup"; finish; exit; }
vol_create 104857600 "keys ✓ test"
expect_ok "Volume.create"
set_key() {
	vcall Volume.set "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$KEY\",\"k\":\"$1\",\"v\":\"$2\"}"
}
set_key vdi-type user;                  expect_ok "set vdi-type"
set_key snapshot_time 20261128T10:00:00Z; expect_ok "set snapshot_time"
set_key is_a_snapshot false;            expect_ok "set is_a_snapshot"
set_key _sm_config_x "a b/c ✓";         expect_ok "set an sm-config key"
set_key tagsfoo foo;                    expect_ok "set a tag"
set_key content_id "";                  expect_ok "set an empty value"
set_key vdi-type system;                expect_ok "overwrite a key"
vcall Volume.unset "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$KEY\",\"k\":\"tagsfoo\"}"
expect_ok "unset"
vcall Volume.unset "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$KEY\",\"k\":\"never-set\"}"
expect_ok "unset of an absent key is a no-op"
want='{"vdi-type":"system","snapshot_time":"20261128T10:00:00Z","is_a_snapshot":"false","_sm_config_x":"a b/c ✓","content_id":""}'
vcall Volume.stat "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$KEY\"}"
check "Volume.stat returns every key" jqt --argjson w "$want" '.keys==$w' <<<"$OUT"
vcall SR.ls "{\"dbg\":\"t\",\"sr\":\"$SR\"}"
check "SR.ls returns every key" jqt --argjson w "$want" --arg k "$KEY" '.[] | select(.key==$k) | .keys==$w' <<<"$OUT"

vcall Volume.set_name "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$KEY\",\"new_name\":\"web/db .. ✓\"}"
expect_ok "set_name (names are text, never paths)"
vcall Volume.set_description "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$KEY\",\"new_description\":\"line\\ttab\"}"
expect_ok "set_description"
vcall Volume.stat "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$KEY\"}"
check "name and description round-trip" jqt '.name=="web/db .. ✓" and .description=="line\ttab"' <<<"$OUT"
check "a name with / made no path" [ ! -e "$SR/web" ]

# clone-on-boot temporaries (xapi's reset-on-boot) are hidden from SR.ls
vcall Volume.clone "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$KEY\"}"
tmp=$(jqr .key)
set_key clone-on-boot "$tmp"
vcall SR.ls "{\"dbg\":\"t\",\"sr\":\"$SR\"}"
check "clone-on-boot temporary is hidden from SR.ls" jqt --arg t "$tmp" 'map(.key) | index($t) == null and length == 1' <<<"$OUT"
vcall Volume.stat "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$tmp\"}"
expect_ok "the temporary is still there for Volume.stat"
finish
