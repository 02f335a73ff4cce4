#!/bin/bash
# Storage migration (SXM) through the installed ngdp datapath plugin, the
# way xapi drives it: on the destination, Datapath.import_activate and the
# NBD connection xapi passes to the import socket (fd-handoff plays xapi);
# on the source, Data.mirror of a running VM's volume to the destination
# through an NBD proxy, Data.stat until complete, Data.ls/cancel/destroy,
# a proxy killed mid-copy; bad inputs.  Source and destination are SRs of
# the two types (this plugin's -> the other's).
# The mirror part skips (77) when the server does not know the "mirror"
# control op yet; everything else still has to pass first.
# per-plugin
. "$(dirname "$0")/lib.sh" || exit 1

H=${FUNC_HELPERS:-$SRCDIR/build/tests/functional}/fd-handoff
[ -x "$H" ] || skip_test "$H is not built (make build/tests/functional/fd-handoff)"
SRC_PLUGIN=$PLUGIN
case $PLUGIN in ext4-ng) DST_PLUGIN=xfs-ng ;; *) DST_PLUGIN=ext4-ng ;; esac
SIZE=$((256 * 1024 * 1024))

# the SR a call or an image path refers to: lib.sh's helpers use SR, PLUGIN
use_src() { SR=$SRC_SR PLUGIN=$SRC_PLUGIN; }
use_dst() { SR=$DST_SR PLUGIN=$DST_PLUGIN; }

mk_sr || { fail "source SR setup"; finish; }
SRC_SR=$SR
vol_create $SIZE "mirror source"; SRC_VOL=$VOL SRC_KEY=$KEY
vol_create $SIZE "never active"; IDLE_VOL=$VOL
PLUGIN=$DST_PLUGIN
mk_sr || { fail "destination SR setup"; finish; }
DST_SR=$SR
vol_create $SIZE "mirror destination"; DST_VOL=$VOL DST_KEY=$KEY
vol_create $SIZE "import destination"; IMP_VOL=$VOL IMP_KEY=$KEY
use_src

vuri() { jq -r '.uri[0]' <<<"$1"; }
# dpc METHOD VOL DOMAIN: a Datapath call on a volume
dpc() { dcall "$1" "{\"dbg\":\"t\",\"uri\":\"$(vuri "$2")\",\"domain\":\"$3\"}"; }
# opc METHOD OPERATION-JSON: a Data call on an operation
opc() { dcall "$1" "{\"dbg\":\"t\",\"operation\":$2}"; }
mirror() { # mirror VOL DOMAIN REMOTE
	dcall Data.mirror "$(jq -cn --arg u "$(vuri "$1")" --arg d "$2" --arg r "$3" \
		'{dbg:"t",uri:$u,domain:$d,remote:$r}')"
}
ls_count() { dcall Data.ls '{"dbg":"t"}'; [ "$RC" -eq 0 ] && jqr length; }
no_records() { [ -z "$(ls -A "$XSNG_RUN_DIR/mirror" 2>/dev/null)" ]; }
wait_socket() { local i; for i in $(seq 100); do [ -S "$1" ] && return 0; sleep 0.05; done; return 1; }
# libnbd's form of the attach's nbd:unix:SOCK:exportname=NAME
nbd_sock() { sed -E 's|^nbd:unix:(.*):exportname=.*$|\1|' <<<"$1"; }
server_of() { jq -r .pid "$1/.sr/active/$2.json"; }

dcall Plugin.Query '{"dbg":"t"}'
expect_ok "datapath Plugin.Query"
check "the datapath plugin declares VDI_MIRROR and VDI_MIRROR_IN" \
	jqt '.features | index("VDI_MIRROR") and index("VDI_MIRROR_IN")' <<<"$OUT"
vcall Plugin.Query '{"dbg":"t"}'
check "the volume plugin ($PLUGIN) declares them too (xapi's SR features)" \
	jqt '.features | index("VDI_MIRROR") and index("VDI_MIRROR_IN")' <<<"$OUT"

# ---- import_activate: the destination's import socket
use_dst
dpc Datapath.attach "$IMP_VOL" 7
expect_ok "attach the import volume"
dpc Datapath.import_activate "$IMP_VOL" 7
expect_ok "Datapath.import_activate (activates for the domain)"
IMP=$(jqr .)
check "it returns the server's import socket" [ -S "$IMP" ]
check "the volume is now active read-write for domain 7" \
	jqt '.domains["7"] == "rw"' "$DST_SR/.sr/active/$IMP_KEY.json"
IPID=$(server_of "$DST_SR" "$IMP_KEY"); PIDS+=("$IPID")
dpc Datapath.import_activate "$IMP_VOL" 7
same_import() { [ "$RC" = 0 ] && [ "$(jqr .)" = "$IMP" ] && [ "$(server_of "$DST_SR" "$IMP_KEY")" = "$IPID" ]; }
check "import_activate again: the same socket, the same server" same_import
"$H" serve "$T/handoff.sock" "$IMP" & PIDS+=($!)
check "fd-handoff listens" wait_socket "$T/handoff.sock"
HURI="nbd+unix:///$IMP_KEY?socket=$T/handoff.sock"
check "write a pattern over a passed NBD connection" qio -f raw -c "write -P 0x5a 1M 2M" "$HURI"
check "read it back over another passed connection" qio -r -f raw -c "read -P 0x5a 1M 2M" "$HURI"
for junk in nofd twofds notsock pipe; do
	check "junk sender ($junk) is answered by a close" "$H" junk "$IMP" "$junk"
	check "...the server survives it" alive "$IPID"
done
"$H" junk "$IMP" silent & SILENT=$!; PIDS+=("$SILENT")
sleep 0.2
read_in_time() { timeout 20 qemu-io -r -f raw -c "read -P 0x5a 1M 2M" "$HURI" >/dev/null; }
check "a silent client does not wedge the server (I/O meanwhile)" read_in_time
kill "$SILENT" 2>/dev/null
dpc Datapath.deactivate "$IMP_VOL" 7
expect_ok "deactivate the import volume"
check "its import socket is gone with the server" [ ! -e "$IMP" ]
check "the passed connection's writes are in the image" vol_file_reads "$IMP_KEY" 0x5a 1M 2M
dpc Datapath.detach "$IMP_VOL" 7
expect_ok "detach the import volume"
dpc Datapath.import_activate "$IMP_VOL" '../x'
expect_err "import_activate with a bad domain" Invalid_argument

# ---- the source, active for the running VM (domain 3)
use_src
dpc Datapath.attach "$SRC_VOL" 3
expect_ok "attach the source for domain 3"
SRC_NBD=$(jqr '.implementations[] | select(.[0]=="Nbd") | .[1].uri')
dpc Datapath.activate "$SRC_VOL" 3
expect_ok "activate the source for domain 3"
PIDS+=("$(server_of "$SRC_SR" "$SRC_KEY")")
check "write the source's first data" qio -f raw -c "write -P 0xa1 0 32M" -c "write -P 0xa2 200M 8M" "$SRC_NBD"

# ---- bad inputs: each a clear error, nothing recorded
GOOD_REMOTE="nbd+unix:///$DST_KEY?socket=$T/nbdproxy/export/vm1"
LONG=$(printf '/%.0sa' $(seq 3000))
for remote in "nbd://host:10809/x" "nbd+unix:///x" "nbd+unix:///x?socket=rel/s" \
	"nbd+unix:///x?socket=/a/../b" "nbd+unix:///x?socket=/a/%2e%2e/b" \
	"nbd+unix:///x?socket=/s&tls=require" "nbd+unix:///x?socket=/s%00x" \
	"nbd+unix:///x?socket=$LONG" "nbd:unix:$LONG" ""; do
	mirror "$SRC_VOL" 3 "$remote"
	expect_err "Data.mirror to '${remote:0:48}'" Invalid_argument
done
mirror "$IDLE_VOL" 3 "$GOOD_REMOTE"
expect_err "Data.mirror of an inactive volume" Datapath_error
check "...says it needs the VM's running datapath" jqt '.params[1] | test("running datapath")' <<<"$OUT"
mirror "$SRC_VOL" 5 "$GOOD_REMOTE"
expect_err "Data.mirror for a domain that does not run the volume" Datapath_error
dcall Data.mirror "{\"dbg\":\"t\",\"uri\":\"$(vuri "$SRC_VOL")\",\"domain\":\"3\",\"remote\":7}"
expect_err "Data.mirror with a remote that is not a string" Invalid_argument
for rate in abc -1 1.5 99999999999; do
	XSNG_MIRROR_MAX_MIBS=$rate mirror "$SRC_VOL" 3 "$GOOD_REMOTE"
	expect_err "Data.mirror with XSNG_MIRROR_MAX_MIBS=$rate" Datapath_error
done
check "no mirror recorded by the bad calls" no_records
for op in '["CopyV1","00"]' '["MirrorV1","../x"]' '["MirrorV1",""]' '["MirrorV1",1]' \
	'["MirrorV1"]' '"MirrorV1"' '{"MirrorV1":"00"}' '["MirrorV1","00","11"]' \
	'["Mirror",["a","b"]]' '["MirrorV1","ABCD"]'; do
	opc Data.stat "$op"
	case $op in *CopyV1*) name=Unimplemented ;; *) name=Invalid_argument ;; esac
	expect_err "Data.stat $op" "$name"
done
opc Data.stat '["MirrorV1","0123abcd"]'
expect_err "Data.stat of an unknown id" Invalid_argument
opc Data.cancel '["MirrorV1","0123abcd"]'
expect_err "Data.cancel of an unknown id" Invalid_argument
opc Data.destroy '["MirrorV1","0123abcd"]'
expect_ok "Data.destroy of an unknown id (idempotent)"
opc Data.destroy '["CopyV1","0123abcd"]'
expect_err "Data.destroy of a CopyV1" Unimplemented
check "Data.ls is empty" [ "$(ls_count)" = 0 ]
check "the source still serves its data" qio -r -f raw -c "read -P 0xa1 0 32M" "$SRC_NBD"

# ---- the mirror itself
WRITER_STOP=$T/writer.stop
start_writer() { # guest writes through the source's socket, all along
	rm -f "$WRITER_STOP" "$T/writer.fail"
	( i=0
	  while [ ! -e "$WRITER_STOP" ]; do
		i=$((i + 1))
		qemu-io -f raw -c "write -P $((i % 200 + 16)) $(( (i % 24) * 4 ))M 1M" \
			"$SRC_NBD" >/dev/null 2>&1 || touch "$T/writer.fail"
		sleep 0.1
	  done ) & WRITER=$!; PIDS+=("$WRITER")
}
stop_writer() {
	touch "$WRITER_STOP"
	wait "$WRITER" 2>/dev/null
	[ ! -e "$T/writer.fail" ]
}
start_destination() {
	use_dst
	VOL=$DST_VOL KEY=$DST_KEY
	vol_activate 7
	DST_NBD=$NBD
	mkdir -p "$T/nbdproxy/export"
	rm -f "$T/nbdproxy/export/vm1"
	"$H" proxy "$T/nbdproxy/export/vm1" "$(nbd_sock "$DST_NBD")" & PROXY=$!; PIDS+=("$PROXY")
	wait_socket "$T/nbdproxy/export/vm1"
	use_src
}
stop_destination() { use_dst; URI=$(vuri "$DST_VOL"); vol_deactivate 7; use_src; }
# stat_until FIELD SECONDS: poll Data.stat of OP until .FIELD is true;
# fails on a call error, on progress going down, and (for complete) on failed.
# MIDWAY counts the answers with 0 < progress < 1.
stat_until() {
	local i last=0 p
	MIDWAY=0
	for i in $(seq $(($2 * 5))); do
		opc Data.stat "$OP"
		[ "$RC" -eq 0 ] || { echo "    Data.stat: $OUT"; return 1; }
		p=$(jqr .progress)
		awk -v a="$p" -v b="$last" 'BEGIN { exit !(a >= b && a >= 0 && a <= 1) }' ||
			{ echo "    progress went from $last to $p"; return 1; }
		last=$p
		awk -v a="$p" 'BEGIN { exit !(a > 0 && a < 1) }' && MIDWAY=$((MIDWAY + 1))
		jqt ".$1 == true" <<<"$OUT" && return 0
		[ "$1" = complete ] && jqt '.failed == true' <<<"$OUT" &&
			{ echo "    the mirror failed: $OUT"; return 1; }
		sleep 0.2
	done
	echo "    no $1 after $2 s: $OUT"
	return 1
}

start_destination
start_writer
sleep 0.5
# the copy held to 64 MiB/s (4 s for the volume), so that the guest's
# writes race it and Data.stat sees it midway
XSNG_MIRROR_MAX_MIBS=64 mirror "$SRC_VOL" 3 "$GOOD_REMOTE"
if [ "$RC" -ne 0 ] && jqt '.params[1] | endswith("unknown op")' <<<"$OUT"; then
	check "the refused mirror left no record" no_records
	stop_writer
	stop_destination
	[ "$FAIL" -eq 0 ] || finish
	skip_test "the datapath server has no 'mirror' control op yet (the other checks passed: $PASS)"
fi
expect_ok "Data.mirror of the running volume"
OP=$(jq -c . <<<"$OUT")
check "it returns [\"MirrorV1\", <32 hex digits>]" jqt '.[0] == "MirrorV1" and (.[1] | test("^[0-9a-f]{32}$"))' <<<"$OP"
dcall Data.ls '{"dbg":"t"}'
check "Data.ls lists it" jqt --argjson o "$OP" 'index([$o]) != null' <<<"$OUT"
check "Data.stat until complete (progress never decreases)" stat_until complete 120
check "...and it was seen midway (0 < progress < 1) at least 3 times" [ "$MIDWAY" -ge 3 ]
check "the guest's writes all succeeded during the mirror" stop_writer
use_src; URI=$(vuri "$SRC_VOL"); vol_deactivate 3
opc Data.stat "$OP"
check "after the source stopped, Data.stat still says complete (state file)" \
	jqt '.complete == true and .failed == false and .progress == 1' <<<"$OUT"
# the server gone and its state file lost: failed, and the progress
# reported before does not go back (the record keeps the highest)
rm -f "$XSNG_RUN_DIR/mirror/$(jq -r '.[1]' <<<"$OP").state"
opc Data.stat "$OP"
check "with neither server nor state file: failed, progress still 1" \
	jqt '.failed == true and .complete == false and .progress == 1' <<<"$OUT"
stop_destination
kill "$PROXY" 2>/dev/null
use_src; SIMG=$(vol_image "$SRC_KEY"); SFMT=$(vol_qemu_fmt "$SRC_KEY")
use_dst; DIMG=$(vol_image "$DST_KEY"); DFMT=$(vol_qemu_fmt "$DST_KEY")
use_src
check "source and destination are identical (qemu-img compare)" \
	qemu-img compare -q -f "$SFMT" -F "$DFMT" "$SIMG" "$DIMG"
opc Data.destroy "$OP"
expect_ok "Data.destroy"
check "its record and state file are gone" no_records
opc Data.destroy "$OP"
expect_ok "Data.destroy again (idempotent)"

# ---- second run: the remote goes away mid-copy
dpc Datapath.attach "$SRC_VOL" 3; expect_ok "attach the source again"
dpc Datapath.activate "$SRC_VOL" 3; expect_ok "activate the source again"
PIDS+=("$(server_of "$SRC_SR" "$SRC_KEY")")
start_destination
start_writer
XSNG_MIRROR_MAX_MIBS=32 mirror "$SRC_VOL" 3 "$GOOD_REMOTE"
expect_ok "Data.mirror (second run, copy limited to 32 MiB/s)"
OP=$(jq -c . <<<"$OUT")
sleep 1
opc Data.stat "$OP"
check "the copy is midway when the proxy is killed" \
	jqt '.complete == false and .failed == false and .progress > 0 and .progress < 1' <<<"$OUT"
kill "$PROXY"
check "with the proxy killed, Data.stat says failed within 60 s" stat_until failed 60
check "the guest's writes went on (locally)" stop_writer
check "the source still serves: write..." qio -f raw -c "write -P 0xc3 100M 4M" "$SRC_NBD"
check "...and read back" qio -r -f raw -c "read -P 0xc3 100M 4M" "$SRC_NBD"
opc Data.cancel "$OP"
expect_ok "Data.cancel of a failed mirror"
opc Data.destroy "$OP"
expect_ok "Data.destroy of a failed mirror"
# a third job, cancelled while it runs (the proxy back)
rm -f "$T/nbdproxy/export/vm1"
"$H" proxy "$T/nbdproxy/export/vm1" "$(nbd_sock "$DST_NBD")" & PROXY=$!; PIDS+=("$PROXY")
wait_socket "$T/nbdproxy/export/vm1"
mirror "$SRC_VOL" 3 "$GOOD_REMOTE"
expect_ok "Data.mirror (third run)"
OP=$(jq -c . <<<"$OUT")
opc Data.cancel "$OP"
expect_ok "Data.cancel of a running mirror"
opc Data.stat "$OP"
check "...Data.stat then says failed, not complete" jqt '.failed == true and .complete == false' <<<"$OUT"
opc Data.cancel "$OP"
expect_ok "Data.cancel again (idempotent)"
opc Data.destroy "$OP"
expect_ok "Data.destroy of a cancelled mirror"
kill "$PROXY"
check "Data.ls is empty at the end" [ "$(ls_count)" = 0 ]
check "no records left" no_records
URI=$(vuri "$SRC_VOL"); vol_deactivate 3
stop_destination
finish
