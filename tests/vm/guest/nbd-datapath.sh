#!/bin/bash
# Guest side of t-nbd-datapath (runs INSIDE a guest of Debian's 6.1 kernel,
# which has nbd.ko, not loaded at boot): the /dev/nbdN handoff of the
# installed ngdp plugin on loop-backed SRs, as xapi drives it.
#  - attach loads nbd.ko and returns XenDisk + BlockDevice + Nbd;
#  - O_DIRECT I/O through /dev/nbdN reaches the volume (qemu-img compare);
#  - blkdiscard through /dev/nbdN gives the image's space back;
#  - a read-only activation gives a read-only device (a write fails);
#  - two domains, each with its own device: detaching one leaves the other's;
#  - kill -9 of the server, then activate: both devices work again;
#  - after deactivate + detach no device is connected and no server is left.
# Environment (from vm-run): INSTALL_ROOT SRCDIR PLUGIN.
. "$SRCDIR/tests/functional/lib.sh"
TEST_NAME=nbd-datapath[$PLUGIN]

M=$((1024 * 1024))
SIZE=$((256 * M))
check "nbd.ko is not loaded before the first attach" [ ! -e /sys/module/nbd ]
mk_sr || { fail "SR setup"; finish; exit 1; }
vol_create $SIZE "vm disk"
K=$KEY
URI=$(jqr '.uri[0]' <<<"$VOL")
dp() { dcall "$1" "{\"dbg\":\"t\",\"uri\":\"$URI\",\"domain\":\"$2\"}"; }
impl() { jqr ".implementations[] | select(.[0]==\"$1\") | .[1]$2"; }
server_pid() { jq -r .pid "$SR/.sr/active/$K.json" 2>/dev/null; }
connected() { [ -e "/sys/block/${1#/dev/}/pid" ]; }
# kernel_sndbufs PID: the send buffer (bytes) of each kernel-held client
# socket whose peer is a connection of server PID, one per line
kernel_sndbufs() {
	ss -xmpH state established | awk -v p="pid=$1," '
		{ tb = ""; if (match($0, /tb[0-9]+/)) tb = substr($0, RSTART + 2, RLENGTH - 2)
		  own[$5] = ($0 ~ /users:/); buf[$5] = tb
		  if (index($0, p)) peer[$7] = 1 }
		END { for (i in peer) if (i in buf && !own[i]) print buf[i] }'
}
dev_bytes() { blockdev --getsize64 "$1" 2>/dev/null; }
# pattern I/O straight on a device with O_DIRECT (-t none); qemu-io exits 1
# on a mismatch or an I/O error
dev_write() { qemu-io -f raw -t none -c "write -P $2 $3 $4" "$1" >/dev/null; }
dev_read() { qemu-io -r -f raw -t none -c "read -P $2 $3 $4" "$1" >/dev/null; }

# ---------------------------------------------------------------- attach
dp Datapath.attach 1
expect_ok "attach (domain 1)"
check "attach returns XenDisk, BlockDevice, Nbd in this order" jqt \
	'[.implementations[][0]] == ["XenDisk","BlockDevice","Nbd"]' <<<"$OUT"
D1=$(impl BlockDevice .path)
check "XenDisk is {backend_type vbd, params $D1, extra {}}" jqt --arg d "$D1" \
	'.implementations[0][1] == {"backend_type":"vbd","params":$d,"extra":{}}' <<<"$OUT"
check "BlockDevice is a /dev/nbdN" bash -c "[[ '$D1' =~ ^/dev/nbd[0-9]+$ ]]"
check "attach loaded nbd.ko" [ -e /sys/module/nbd ]
NBD=$(impl Nbd .uri)
dp Datapath.attach 1
check "attach again: the same device" [ "$(impl BlockDevice .path)" = "$D1" ]

# ---------------------------------------------------------------- activate + I/O
dp Datapath.activate 1
expect_ok "activate (domain 1)"
PIDS+=("$(server_pid)")
check "$D1 is connected" connected "$D1"
check "$D1 has the volume's size" [ "$(dev_bytes "$D1")" = "$SIZE" ]
check "$D1 is writable" [ "$(blockdev --getro "$D1")" = 0 ]
# a 1 MiB write then goes to the server in one piece (nbd-kernel.c)
SNDBUFS=$(kernel_sndbufs "$(server_pid)")
check "the kernel client's sockets have send buffers of 4 MiB or more ($(echo $SNDBUFS))" \
	awk 'BEGIN { n = 0 } { n++; if ($1 + 0 < 4194304) bad = 1 } END { exit !(n > 0 && !bad) }' <<<"$SNDBUFS"
dp Datapath.activate 1
expect_ok "activate again (idempotent)"
# random data with O_DIRECT through the device, compared over NBD and later
# in the image itself
head -c $((48 * M)) /dev/urandom > "$T/ref"
truncate -s $SIZE "$T/ref"
check "O_DIRECT write of 48 MiB through $D1" \
	dd if="$T/ref" of="$D1" bs=1M count=48 oflag=direct status=none
head -c $((48 * M)) "$T/ref" > "$T/ref48"
check "O_DIRECT read back through $D1" bash -c \
	"dd if='$D1' bs=1M count=48 iflag=direct,fullblock status=none | cmp -s - '$T/ref48'"
check "the volume (over NBD) equals the reference" qemu-img compare -q -f raw -F raw "$T/ref" "$NBD"
check "pattern write through $D1" dev_write "$D1" 0x61 $((100 * M)) 4M
check "...reads back over NBD" qemu-io -r -f raw -c "read -P 0x61 $((100 * M)) 4M" "$NBD"
check "a wrong pattern is caught (the check can fail)" bash -c \
	"! qemu-io -r -f raw -c 'read -P 0x62 $((100 * M)) 4M' '$NBD' >/dev/null 2>&1"
qemu-io -f raw -c "write -P 0x61 $((100 * M)) 4M" "$T/ref" >/dev/null
# guest discard through the device gives the space back (QCOW2 frees the
# clusters, raw punches holes) and the range then reads as zeros
allocated() { echo $(( $(stat -c %b "$(vol_image "$K")") * 512 )); }
check "O_DIRECT write of 32 MiB at 160 MiB through $D1" \
	dev_write "$D1" 0x63 $((160 * M)) 32M
check "...flushed (fsync of $D1)" sync "$D1"
before=$(allocated)
check "blkdiscard of those 32 MiB through $D1" \
	blkdiscard -o $((160 * M)) -l $((32 * M)) "$D1"
check "...flushed (fsync of $D1)" sync "$D1"
after=$(allocated)
check "the discard freed at least 24 MiB of the image ($before -> $after bytes)" \
	[ $((before - after)) -ge $((24 * M)) ]
check "the discarded range reads as zeros through $D1" \
	dev_read "$D1" 0 $((160 * M)) 32M

# ---------------------------------------------------------------- read-only
dp Datapath.attach u0_ro
expect_ok "attach (dom0 read-only user)"
D2=$(impl BlockDevice .path)
check "a second domain gets its own device" bash -c "[ -n '$D2' ] && [ '$D2' != '$D1' ]"
dp Datapath.activate_readonly u0_ro
expect_ok "activate_readonly"
check "$D2 is connected" connected "$D2"
check "$D2 has the volume's size" [ "$(dev_bytes "$D2")" = "$SIZE" ]
check "$D2 is read-only" [ "$(blockdev --getro "$D2")" = 1 ]
check "a write to $D2 fails" bash -c \
	"! dd if=/dev/zero of='$D2' bs=4k count=1 oflag=direct status=none 2>/dev/null"
check "$D2 reads the volume's data" dev_read "$D2" 0x61 $((100 * M)) 4M
check "the write attempt changed nothing" qemu-img compare -q -f raw -F raw "$T/ref" "$NBD"

# ---------------------------------------------------------------- kill -9
PID=$(server_pid)
kill -9 "$PID"; while alive "$PID"; do sleep 0.05; done
dp Datapath.activate 1
expect_ok "activate after kill -9 of the server"
NEW=$(server_pid); PIDS+=("$NEW")
check "a new server serves the volume" bash -c "[ '$NEW' != '$PID' ] && kill -0 '$NEW'"
check "$D1 works again: write" dev_write "$D1" 0x71 $((200 * M)) 2M
check "$D1 works again: read" dev_read "$D1" 0x71 $((200 * M)) 2M
check "the read-only user's $D2 was reconnected too" dev_read "$D2" 0x71 $((200 * M)) 2M
check "$D2 is still read-only" [ "$(blockdev --getro "$D2")" = 1 ]
qemu-io -f raw -c "write -P 0x71 $((200 * M)) 2M" "$T/ref" >/dev/null

# ---------------------------------------------------------------- per-domain detach
dp Datapath.deactivate u0_ro
expect_ok "deactivate the read-only user"
check "$D2 is disconnected" bash -c "! [ -e /sys/block/${D2#/dev/}/pid ]"
check "$D1 still connected" connected "$D1"
dp Datapath.detach u0_ro
expect_ok "detach the read-only user"
check "$D1 still works after the other domain's detach" dev_write "$D1" 0x72 $((8 * M)) 1M
check "...and reads back" dev_read "$D1" 0x72 $((8 * M)) 1M
qemu-io -f raw -c "write -P 0x72 $((8 * M)) 1M" "$T/ref" >/dev/null
# detach without deactivate, of a second rw... here a third domain
dp Datapath.attach 3; D3=$(impl BlockDevice .path)
dp Datapath.activate_readonly 3
check "domain 3 reads through $D3" dev_read "$D3" 0x72 $((8 * M)) 1M
dp Datapath.detach 3
expect_ok "detach of domain 3 without deactivate"
check "$D3 is disconnected" bash -c "! [ -e /sys/block/${D3#/dev/}/pid ]"
check "$D1 still works" dev_read "$D1" 0x72 $((8 * M)) 1M

# ---------------------------------------------------------------- teardown
dp Datapath.deactivate 1
expect_ok "deactivate domain 1"
check "$D1 is disconnected" bash -c "! [ -e /sys/block/${D1#/dev/}/pid ]"
dp Datapath.detach 1
expect_ok "detach domain 1"
check "no device connected (no /sys/block/nbd*/pid)" bash -c "! ls /sys/block/nbd*/pid >/dev/null 2>&1"
check "no server process left" bash -c "! pgrep -f -- '--export-name[ ]$K' >/dev/null"
check "no device claim left" bash -c "[ -z \"\$(ls -A '$XSNG_RUN_DIR/nbd' 2>/dev/null)\" ]"
# nbd.ko loaded by someone else with too few devices: the kernel creates
# more at NBD_CMD_CONNECT (netlink, Linux >= 4.12)
check "nbd.ko unloads (nothing holds it)" rmmod nbd
modprobe nbd nbds_max=1
dp Datapath.attach 1; D1=$(impl BlockDevice .path)
dp Datapath.attach 2; D2=$(impl BlockDevice .path)
check "the second domain is given a device past nbds_max=1 ($D2)" [ "$D2" = /dev/nbd1 ]
dp Datapath.activate 1; PIDS+=("$(server_pid)")
dp Datapath.activate_readonly 2
expect_ok "activate_readonly on the device the kernel creates"
check "$D2 exists, connected, read-only" bash -c \
	"[ -b '$D2' ] && [ -e /sys/block/nbd1/pid ] && [ \"\$(blockdev --getro '$D2')\" = 1 ]"
check "$D2 reads the volume" dev_read "$D2" 0x72 $((8 * M)) 1M
dp Datapath.deactivate 2; dp Datapath.detach 2
dp Datapath.deactivate 1; dp Datapath.detach 1
check "again nothing connected" bash -c "! ls /sys/block/nbd*/pid >/dev/null 2>&1"
check "again no server left" bash -c "! pgrep -f -- '--export-name[ ]$K' >/dev/null"

IMG=$(vol_image "$K")
check "the image is clean" qemu-img check -q -f "$(vol_qemu_fmt "$K")" "$IMG"
check "the image holds exactly the reference" qemu-img compare -q -f raw -F "$(vol_qemu_fmt "$K")" "$T/ref" "$IMG"
finish
