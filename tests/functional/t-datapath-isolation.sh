#!/bin/bash
# Datapath calls must stay within the SR their URI names (issue 10): run
# directories are keyed by SR and volume, and a URI whose SR does not hold
# the volume is refused, so ngdp://<other SR>/<key> cannot touch a live
# activation.  Also: where the kernel has no NBD client, attach returns Nbd
# alone and says why, in the log and in the volume plugin's diagnostics.
# per-plugin
. "$(dirname "$0")/lib.sh"

mk_sr || { fail "SR A setup"; finish; exit; }
SR_A=$SR
vol_create $((64 * 1024 * 1024)) "disk of A"
K=$KEY
URI_A=$(jqr '.uri[0]' <<<"$VOL")
mk_sr || { fail "SR B setup"; finish; exit; }
SR_B=$SR
URI_B="ngdp://$SR_B/$K"

dp() { dcall "$1" "{\"dbg\":\"t\",\"uri\":\"$2\",\"domain\":\"$3\"}"; }
nbd_uri() { jqr '.implementations[] | select(.[0]=="Nbd") | .[1].uri'; }
server_pid() { jq -r .pid "$SR_A/.sr/active/$K.json" 2>/dev/null; }

XSNG_LOG_STDERR=1 dp Datapath.attach "$URI_A" 7
expect_ok "attach on SR A"
NBD=$(nbd_uri)
ATT=$OUT
cp "$T/stderr" "$T/stderr.attach"
dp Datapath.activate "$URI_A" 7
expect_ok "activate on SR A"
PID=$(server_pid); PIDS+=("$PID")
check "write through NBD" qemu-io -f raw -c "write -P 0x3c 0 1M" "$NBD"

# the same key under SR B: refused with a clear error, nothing touched
dp Datapath.deactivate "$URI_B" 7
expect_err "deactivate with another SR in the URI" Volume_does_not_exist
check "the error names SR B and the key" jqt --arg k "$K" '.params[1] | contains($k)' <<<"$OUT"
dp Datapath.detach "$URI_B" 7
expect_err "detach with another SR in the URI" Volume_does_not_exist
dp Datapath.attach "$URI_B" 7
expect_err "attach with another SR in the URI" Volume_does_not_exist
dp Datapath.activate "$URI_B" 7
expect_err "activate with another SR in the URI" Volume_does_not_exist
check "SR A's server still runs" alive "$PID"
check "SR A's activation still reads its data through its URI" \
	qemu-io -r -f raw -c "read -P 0x3c 0 1M" "$NBD"
check "SR A's activation record is intact" jqt '.domains == {"7": "rw"}' < "$SR_A/.sr/active/$K.json"

# run directories are per SR: <run>/<SR uuid prefix>/<key>
SOCK=$(sed -E 's|^nbd:unix:(.*):exportname=.*$|\1|' <<<"$NBD")
A_UUID=$(jq -r .uuid "$SR_A/.sr/sr.json")
check "the socket lives under the SR's run directory" \
	[ "$(cat "$(dirname "$(dirname "$SOCK")")/sr")" = "$A_UUID" ]

# no kernel NBD client here (or disabled): Nbd only, and the reason is given
if [ -e /sys/module/nbd ]; then
	skip "no-nbd.ko reporting: this kernel has an NBD client"
else
	check "attach without nbd.ko returns Nbd only" jqt \
		'[.implementations[][0]] == ["Nbd"]' <<<"$ATT"
	check "attach says why in its log" grep -q "no /dev/nbdN for blkback.*'modprobe nbd' failed (exit status" "$T/stderr.attach"
	vcall Plugin.diagnostics '{"dbg":"t"}'
	expect_ok "Plugin.diagnostics"
	check "Plugin.diagnostics says why there is no /dev/nbdN" jqt \
		'contains("no /dev/nbdN for blkback") and contains("modprobe nbd")' <<<"$OUT"
fi
XSNG_LOG_STDERR=1 XSNG_NO_KERNEL_NBD=1 dp Datapath.attach "$URI_A" 8
check "with the kernel client disabled: Nbd only" jqt '[.implementations[][0]] == ["Nbd"]' <<<"$OUT"
check "...and the log says it is disabled" grep -q "disabled by XSNG_NO_KERNEL_NBD" "$T/stderr"
dp Datapath.detach "$URI_A" 8

# a dom0 user's domain ("u0_" + xapi's datapath name) too long to fit a
# socket path as it is
LONG=u0_$(printf 'vdi_copy_%.0s' 1 2 3 4 5 6 7)$A_UUID
XSNG_LOG_STDERR=1 dp Datapath.attach "$URI_A" "$LONG"
expect_ok "attach for a domain with a ${#LONG}-character name"
LNBD=$(nbd_uri)
dp Datapath.activate_readonly "$URI_A" "$LONG"
expect_ok "activate_readonly for it"
check "it reads the data through its Nbd URI" \
	qemu-io -r -f raw -c "read -P 0x3c 0 1M" "$LNBD"
dp Datapath.deactivate "$URI_A" "$LONG"
expect_ok "deactivate it"
check "its socket name is gone" [ ! -e "$(sed -E 's|^nbd:unix:(.*):exportname=.*$|\1|' <<<"$LNBD")" ]
dp Datapath.detach "$URI_A" "$LONG"
check "SR A's domain 7 still reads" qemu-io -r -f raw -c "read -P 0x3c 0 1M" "$NBD"

dp Datapath.deactivate "$URI_A" 7
expect_ok "deactivate on SR A"
check "the server is gone" bash -c "$(declare -f alive); ! alive $PID"
dp Datapath.detach "$URI_A" 7
expect_ok "detach on SR A"
check "no run directory left for the volume" [ ! -e "$(dirname "$SOCK")" ]
finish
