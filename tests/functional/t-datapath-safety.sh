#!/bin/bash
# What a guest or a crash must never achieve through the datapath:
# - a raw volume whose guest wrote a QCOW2 header (backed by another
#   volume's image) is still served as raw: the server gets the format
#   from the metadata and never probes (issue 10);
# - clusters leaked by a server killed under writes are repaired at the next
#   activation, before the image can become a snapshot (issue 10);
# - Datapath.open persistent=true drops the reset-on-boot overlay of an
#   epoch that was never closed, so the volume's writes are kept (issue 11).
# per-plugin
. "$(dirname "$0")/lib.sh"

M=$((1024 * 1024))
nbd_uri() { jqr '.implementations[] | select(.[0]=="Nbd") | .[1].uri'; }
server_pid() { jq -r .pid "$SR/.sr/active/$1.json" 2>/dev/null; }
up() { # up KEY DOMAIN: attach + activate, sets NBD
	local uri="ngdp://$SR/$1"
	dcall Datapath.attach "{\"dbg\":\"t\",\"uri\":\"$uri\",\"domain\":\"$2\"}"
	NBD=$(nbd_uri)
	dcall Datapath.activate "{\"dbg\":\"t\",\"uri\":\"$uri\",\"domain\":\"$2\"}"
	UP_RC=$RC UP_OUT=$OUT
	[ "$RC" -eq 0 ] && PIDS+=("$(server_pid "$1")")
	return "$UP_RC"
}
down() { # down KEY DOMAIN
	local uri="ngdp://$SR/$1"
	dcall Datapath.deactivate "{\"dbg\":\"t\",\"uri\":\"$uri\",\"domain\":\"$2\"}"
	dcall Datapath.detach "{\"dbg\":\"t\",\"uri\":\"$uri\",\"domain\":\"$2\"}"
}

# ---------------------------------------------------------------- format
mk_sr ',"image-format":"raw"' || { fail "raw SR setup"; finish; exit; }
vol_create $((64 * M)) "victim"
VICTIM=$KEY
check "victim's data written into its image" \
	qemu-io -f raw -c "write -P 0x77 0 $((64 * M))" "$(vol_image "$VICTIM")"
vol_create $((64 * M)) "attacker"
A=$KEY
# the header a guest can write into its own raw disk: a QCOW2 image whose
# backing file is the victim's image (a name relative to the image dir)
qemu-img create -q -u -f qcow2 -b "$(basename "$(vol_image "$VICTIM")")" -F raw \
	"$T/evil.qcow2" $((64 * M))
LEN=$(stat -c %s "$T/evil.qcow2")
up "$A" 5
check "attacker's raw disk activated" [ "$UP_RC" -eq 0 ]
check "the guest writes a QCOW2 header into its raw disk" \
	qemu-io -f raw -c "write -s $T/evil.qcow2 0 $LEN" "$NBD"
down "$A" 5
up "$A" 5
check "activated again" [ "$UP_RC" -eq 0 ]
qemu-img convert -f raw -O raw "$NBD" "$T/seen.raw" 2>/dev/null
check "the disk is still served as raw: the header bytes read back" \
	cmp -s -n "$LEN" "$T/evil.qcow2" "$T/seen.raw"
check "the disk has its own size" [ "$(stat -c %s "$T/seen.raw")" = $((64 * M)) ]
check "the victim's data is not visible through the attacker's disk" \
	bash -c "! qemu-io -r -f raw -c 'read -P 0x77 $((32 * M)) 1M' '$NBD' >/dev/null 2>&1"
check "the record names the format the server was given" \
	grep -q -- "--format" "/proc/$(server_pid "$A")/cmdline"
down "$A" 5
vcall SR.detach "{\"dbg\":\"t\",\"sr\":\"$SR\"}"

# ---------------------------------------------------------------- server exit
# a server that cannot open its image: the call says how the process ended
# (its exit status), then what it logged
mk_sr ',"image-format":"vhd"' || { fail "vhd SR setup"; finish; exit; }
vol_create $((16 * M)) "broken"
B=$KEY
printf conectix > "$(vol_image "$B")"
truncate -s $M "$(vol_image "$B")"
up "$B" 5
check "activate of a broken VHD fails" [ "$UP_RC" -ne 0 ]
check "...saying the server exited with status 1" \
	jqt '.params[1] | test("server for .* exited with status 1: ")' <<<"$UP_OUT"
check "...and no server is left" bash -c "! pgrep -f -- '--export-name[ ]$B' >/dev/null"
dcall Datapath.detach "{\"dbg\":\"t\",\"uri\":\"ngdp://$SR/$B\",\"domain\":\"5\"}"
vcall SR.detach "{\"dbg\":\"t\",\"sr\":\"$SR\"}"

# ---------------------------------------------------------------- leaks
mk_sr || { fail "qcow2 SR setup"; finish; exit; }
if [ "$(jq -r '."image-format"' "$SR/.sr/sr.json")" != qcow2 ]; then
	vcall SR.detach "{\"dbg\":\"t\",\"sr\":\"$SR\"}"
	mk_sr ',"image-format":"qcow2"'
fi
vol_create $((1024 * M)) "leaky"
K=$KEY
up "$K" 6
PID=$(server_pid "$K")
check "data past 512M (the second L2 table)" qemu-io -f raw -c "write -P 0x42 600M 4M" "$NBD"
# kill -9 under random writes
fio --name=w --ioengine=nbd --uri="$(sed -E 's|^nbd:unix:(.*):exportname=(.*)$|nbd+unix:///\2?socket=\1|' <<<"$NBD")" \
	--rw=randwrite --bs=64k --iodepth=32 --size=256M --time_based --runtime=30 \
	--output=/dev/null >/dev/null 2>&1 & FIO=$!
sleep 2
kill -9 "$PID"; while alive "$PID"; do sleep 0.05; done
wait "$FIO"
IMG=$(vol_image "$K")
# What a kill can leave (clusters allocated, their L2 entry never written),
# made certain: the L1 entry of the second L2 table is lost, so that table
# and its data clusters are allocated but referenced by nothing.
L1=$(od -A n -t x1 -j 40 -N 8 "$IMG" | tr -d ' \n')
dd if=/dev/zero of="$IMG" bs=1 seek=$((16#$L1 + 8)) count=8 conv=notrunc status=none
qemu-img check -q -f qcow2 "$IMG" >/dev/null 2>&1; st=$?
check "the image has leaked clusters (qemu-img check exit 3, got $st)" [ "$st" = 3 ]
up "$K" 6
check "activate after the kill" [ "$UP_RC" -eq 0 ]
vcall Volume.snapshot "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$K\"}"
expect_ok "snapshot after the restart"
S=$(jqr .key)
check "the snapshot's image has no leaked clusters (qemu-img check exit 0)" \
	qemu-img check -q -f qcow2 "$(vol_image "$S")"
down "$K" 6
check "the volume's image is clean" qemu-img check -q -f qcow2 "$(vol_image "$K")"

# a read-write activate of a read-only snapshot is refused and leaves no
# server behind (the server it had to start is stopped)
SURI="ngdp://$SR/$S"
dcall Datapath.attach "{\"dbg\":\"t\",\"uri\":\"$SURI\",\"domain\":\"4\"}"
dcall Datapath.activate "{\"dbg\":\"t\",\"uri\":\"$SURI\",\"domain\":\"4\"}"
expect_err "read-write activate of a snapshot" Invalid_argument
down "$S" 4
check "no server left for the snapshot" bash -c "! pgrep -f -- '--export-name[ ]$S' >/dev/null"

# an image marked dirty (lazy refcounts) is repaired before it is served
printf '\001' | dd of="$(vol_image "$K")" bs=1 seek=79 conv=notrunc status=none
up "$K" 6
check "a dirty image is repaired and activated" [ "$UP_RC" -eq 0 ]
down "$K" 6
check "...and is clean after" qemu-img check -q -f qcow2 "$(vol_image "$K")"

# ---------------------------------------------------------------- reset-on-boot
URI="ngdp://$SR/$K"
dcall Datapath.open "{\"dbg\":\"t\",\"uri\":\"$URI\",\"persistent\":false}"
expect_ok "open non-persistent"
up "$K" 8
check "a throwaway write" qemu-io -f raw -c "write -P 0xee 0 1M" "$NBD"
# unclean stop: the host dies, nothing is closed
kill -9 "$(server_pid "$K")"; while alive "$(server_pid "$K")"; do sleep 0.05; done
down "$K" 8
dcall Datapath.open "{\"dbg\":\"t\",\"uri\":\"$URI\",\"persistent\":true}"
expect_ok "open persistent after the unclean stop"
check "the stale overlay is gone" bash -c "! ls -A '$SR/images' | grep -q '^\.np-'"
up "$K" 9
check "a persistent write" qemu-io -f raw -c "write -P 0x5a 0 1M" "$NBD"
down "$K" 9
dcall Datapath.close "{\"dbg\":\"t\",\"uri\":\"$URI\"}"
expect_ok "close"
check "the persistent write is in the volume after close" \
	qemu-io -r -f qcow2 -c "read -P 0x5a 0 1M" "$(vol_image "$K")"
# a symlink planted as the overlay is never followed out of the SR
qemu-img create -q -f qcow2 "$T/outside.qcow2" $((16 * M))
qemu-io -f qcow2 -c "write -P 0x99 0 1M" "$T/outside.qcow2" >/dev/null
ln -s "$T/outside.qcow2" "$SR/images/.np-$K.qcow2"
up "$K" 10
check "activate refuses an overlay that is a symlink" [ "$UP_RC" -ne 0 ]
check "...with SR_corrupt" jqt '.params[0] == "SR_corrupt"' <<<"$UP_OUT"
check "the file outside the SR was not served" bash -c "! pgrep -f -- '--image[ ]$T/outside' >/dev/null && ! pgrep -f -- '--export-name[ ]$K' >/dev/null"
down "$K" 10
rm -f "$SR/images/.np-$K.qcow2"
check "no server process left" bash -c "! pgrep -f -- '--export-name[ ]($A|$K)' >/dev/null"
finish
