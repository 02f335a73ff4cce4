#!/bin/bash
# Changed block tracking (VDI_CONFIG_CBT), the way XenOrchestra's delta
# backups drive it: enable_cbt, writes through the datapath server while
# snapshots are taken, list_changed_blocks between snapshots and the live
# volume (exactly the 64 KiB blocks written), data_destroy of the older
# snapshot (still exact), the snapshot's NBD export, kill -9 of the server
# (an error, never a short answer), disable_cbt, a clone without CBT, and
# qemu-img info listing the bitmaps of qcow2 images.
# per-plugin
. "$(dirname "$0")/lib.sh"

G=65536
stat_vol() { vcall Volume.stat "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$1\"}"; }
snapshot() { vcall Volume.snapshot "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$1\"}"; }
cbt() { vcall "Volume.$1" "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$2\"}"; }
lcb() { vcall Volume.list_changed_blocks "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$1\",\"key2\":\"$2\",\"offset\":0,\"length\":-1}"; }
nbd_write() { # PATTERN OFFSET LEN (bytes) through the served volume
	qio -f raw -c "write -P $1 $2 $3" "$NBD"
}
# blocks OFF LEN...: the 64 KiB block numbers a set of byte ranges touches
blocks() {
	while [ $# -gt 0 ]; do
		seq $(($1 / G)) $((($1 + $2 - 1) / G))
		shift 2
	done | sort -n -u
}
# set_blocks: the block numbers set in the result of list_changed_blocks
# (base64, bit i MSB first), checked against the granularity and the size
set_blocks() { # SIZE
	jq -e --argjson g $G '.granularity == $g and (.bitmap | type == "string")' \
		<<<"$OUT" >/dev/null || return 1
	jqr .bitmap | base64 -d | python3 -c '
import sys
data = sys.stdin.buffer.read()
nbits = (int(sys.argv[1]) + 65535) // 65536
if len(data) != (nbits + 7) // 8:
    sys.exit("bitmap of %d bytes for %d blocks" % (len(data), nbits))
for i in range(len(data) * 8):
    if data[i // 8] & (0x80 >> (i % 8)):
        if i >= nbits:
            sys.exit("bit %d set past the end" % i)
        print(i)' "$1"
}
# changed_is FROM TO SIZE OFF LEN...: list_changed_blocks(FROM, TO) is
# exactly the blocks of those ranges
changed_is() {
	local from=$1 to=$2 size=$3 got want
	shift 3
	lcb "$from" "$to"
	[ "$RC" -eq 0 ] || { echo "    list_changed_blocks failed: $OUT"; return 1; }
	got=$(set_blocks "$size") || { echo "    bad bitmap"; return 1; }
	want=$(blocks "$@")
	[ "$got" = "$want" ] && return 0
	echo "    blocks: got [$(echo $got)] want [$(echo $want)]"
	return 1
}
qcow2_bitmaps() { # IMAGE: names of its bitmaps, as qemu-img info shows them
	qemu-img info -U --output=json "$1" |
		jq -er '."format-specific".data.bitmaps // [] | .[].name'
}

SIZE=$((256 << 20))
for fmt in qcow2 vhd raw; do
	mk_sr ",\"image-format\":\"$fmt\"" || { fail "SR setup ($fmt)"; continue; }
	vcall Plugin.Query '{"dbg":"t"}'
	check "$fmt: Plugin.Query advertises VDI_CONFIG_CBT" jqt '.features | index("VDI_CONFIG_CBT")' <<<"$OUT"
	vol_create $SIZE "cbt $fmt"
	V=$KEY
	stat_vol "$V"
	check "$fmt: a new volume has CBT off" jqt '.cbt_enabled == false and .volume_type == "Data"' <<<"$OUT"
	cbt enable_cbt "$V"
	expect_ok "$fmt: Volume.enable_cbt"
	stat_vol "$V"
	check "$fmt: Volume.stat says cbt_enabled" jqt '.cbt_enabled == true' <<<"$OUT"

	vol_activate 7
	# epoch A: before the first snapshot (not asked for below)
	check "$fmt: write A" nbd_write 0xa1 0 $G
	# S1
	snapshot "$V"; expect_ok "$fmt: snapshot S1 while served"; S1=$(jqr .key)
	check "$fmt: S1 has CBT too" jqt '.cbt_enabled == true' <<<"$OUT"
	# epoch B: aligned, unaligned, crossing blocks, a zero write
	B=(2097152 65536  104861696 4096  209715200 1048576  33554433 10  150994942 4)
	check "$fmt: write B" eval 'nbd_write 0xb2 ${B[0]} ${B[1]} && nbd_write 0xb2 ${B[2]} ${B[3]} &&
		nbd_write 0xb2 ${B[4]} ${B[5]} && nbd_write 0xb2 ${B[6]} ${B[7]} && nbd_write 0xb2 ${B[8]} ${B[9]}'
	check "$fmt: write zeroes in B" qio -f raw -c "write -z 230686720 131072" "$NBD"
	B+=(230686720 131072)
	snapshot "$V"; expect_ok "$fmt: snapshot S2 while served"; S2=$(jqr .key)
	# epoch C: still open (the live volume)
	C=(52428800 65536  0 512)
	check "$fmt: write C" eval 'nbd_write 0xc3 ${C[0]} ${C[1]} && nbd_write 0xc3 ${C[2]} ${C[3]}'

	check "$fmt: changed(S1, S2) is exactly B" changed_is "$S1" "$S2" $SIZE "${B[@]}"
	check "$fmt: changed(S2, S1) is B too" changed_is "$S2" "$S1" $SIZE "${B[@]}"
	check "$fmt: changed(S2, live) is exactly C" changed_is "$S2" "$V" $SIZE "${C[@]}"
	check "$fmt: changed(S1, live) is B and C" changed_is "$S1" "$V" $SIZE "${B[@]}" "${C[@]}"
	check "$fmt: changed(S2, S2) is empty" changed_is "$S2" "$S2" $SIZE
	check "$fmt: the server still tracks after being asked (write D)" nbd_write 0xd4 $((64 << 20)) $G
	check "$fmt: changed(S2, live) is C and D" changed_is "$S2" "$V" $SIZE "${C[@]}" $((64 << 20)) $G
	if [ "$fmt" = qcow2 ]; then
		check "$fmt: qemu-img info lists the sealed epoch in S2's image" \
			eval '[ "$(qcow2_bitmaps "$(vol_image "$S2")" | grep -c "^xsng-cbt-")" -ge 1 ]'
		check "$fmt: qemu-img check is clean on S2's image" qemu-img check -q -f qcow2 "$(vol_image "$S2")"
	fi

	# the snapshot's NBD export, as a backup reads it
	stat_vol "$S2"
	SURI=$(jqr '.uri[0]')
	dcall Datapath.attach "{\"dbg\":\"t\",\"uri\":\"$SURI\",\"domain\":\"0\"}"
	expect_ok "$fmt: Datapath.attach S2"
	SNBD=$(jqr '.implementations[] | select(.[0]=="Nbd") | .[1].uri')
	dcall Datapath.activate_readonly "{\"dbg\":\"t\",\"uri\":\"$SURI\",\"domain\":\"0\"}"
	expect_ok "$fmt: Datapath.activate_readonly S2"
	PIDS+=("$(jq -r .pid "$SR/.sr/active/$S2.json")")
	SAVE_NBD=$NBD NBD=$SNBD
	check "$fmt: S2's export reads A" qio -r -f raw -c "read -P 0xa1 0 $G" "$NBD"
	check "$fmt: S2's export reads B" qio -r -f raw -c "read -P 0xb2 ${B[0]} ${B[1]}" "$NBD"
	check "$fmt: S2's export does not read C" qio -r -f raw -c "read -P 0 ${C[0]} ${C[1]}" "$NBD"
	NBD=$SAVE_NBD
	dcall Datapath.deactivate "{\"dbg\":\"t\",\"uri\":\"$SURI\",\"domain\":\"0\"}"
	expect_ok "$fmt: Datapath.deactivate S2"
	dcall Datapath.detach "{\"dbg\":\"t\",\"uri\":\"$SURI\",\"domain\":\"0\"}"
	expect_ok "$fmt: Datapath.detach S2"

	# the older snapshot's data goes, its CBT metadata stays
	cbt data_destroy "$S1"
	expect_ok "$fmt: Volume.data_destroy S1"
	stat_vol "$S1"
	check "$fmt: S1 is CBT metadata only" jqt '.volume_type == "CBT_Metadata" and .cbt_enabled == true and .physical_utilisation == 0' <<<"$OUT"
	vcall SR.ls "{\"dbg\":\"t\",\"sr\":\"$SR\"}"
	check "$fmt: SR.ls still lists S1" jqt --arg k "$S1" 'map(select(.key == $k)) | length == 1' <<<"$OUT"
	check "$fmt: the coalesce job finishes" coalesce_idle
	check "$fmt: S1's image is gone from the chain" eval '[ "$(vol_chain_len "$V")" -le 2 ]'
	check "$fmt: changed(S1, S2) is still exactly B" changed_is "$S1" "$S2" $SIZE "${B[@]}"
	check "$fmt: changed(S1, live) is still B, C and D" changed_is "$S1" "$V" $SIZE "${B[@]}" "${C[@]}" $((64 << 20)) $G
	dcall Datapath.attach "{\"dbg\":\"t\",\"uri\":\"$(jqr '.uri[0]' <<<"$(stat_vol "$S1"; echo "$OUT")")\",\"domain\":\"0\"}"
	expect_err "$fmt: S1 cannot be attached" Invalid_argument
	snapshot "$S1"
	expect_err "$fmt: S1 cannot be snapshotted" Invalid_argument

	# kill -9 with acknowledged writes: an error, never a short answer
	check "$fmt: write E" nbd_write 0xe5 $((96 << 20)) $G
	kill -9 "$PID"
	while alive "$PID"; do sleep 0.05; done
	lcb "$S2" "$V"
	expect_err "$fmt: changed(S2, live) after kill -9 is an error" Storage_error
	lcb "$S1" "$S2"
	check "$fmt: changed(S1, S2) is still known" jqt .bitmap <<<"$OUT"
	# serving again: the lost epoch stays unknown, the next one is exact
	vol_activate 7
	snapshot "$V"; expect_ok "$fmt: snapshot S3 after the restart"; S3=$(jqr .key)
	lcb "$S2" "$S3"
	expect_err "$fmt: changed(S2, S3) spans the lost epoch: an error" Storage_error
	check "$fmt: write F" nbd_write 0xf6 $((128 << 20)) $((3 * G))
	check "$fmt: changed(S3, live) is exactly F" changed_is "$S3" "$V" $SIZE $((128 << 20)) $((3 * G))
	check "$fmt: the live volume reads every write" eval 'qio -r -f raw -c "read -P 0xf6 $((128 << 20)) $((3 * G))" "$NBD" &&
		qio -r -f raw -c "read -P 0xe5 $((96 << 20)) $G" "$NBD" && qio -r -f raw -c "read -P 0xd4 $((64 << 20)) $G" "$NBD"'

	# the newest snapshot's data goes while the volume is served: its
	# image is merged live into the leaf, and its epoch with it
	snapshot "$V"; expect_ok "$fmt: snapshot S4"; S4=$(jqr .key)
	check "$fmt: write G" nbd_write 0x61 $((160 << 20)) $G
	cbt data_destroy "$S4"
	expect_ok "$fmt: Volume.data_destroy S4 (its image's child is the served leaf)"
	check "$fmt: the live merge finishes" coalesce_idle
	check "$fmt: S4's image is gone from the chain" eval '! sr_chain "$SR" "$V" | grep -q "$(jq -r .image "$SR/meta/v-$S4.json")"'
	check "$fmt: changed(S3, S4) is still exactly F" changed_is "$S3" "$S4" $SIZE $((128 << 20)) $((3 * G))
	check "$fmt: changed(S3, live) is F and G" changed_is "$S3" "$V" $SIZE $((128 << 20)) $((3 * G)) $((160 << 20)) $G
	check "$fmt: the live volume reads G" qio -r -f raw -c "read -P 0x61 $((160 << 20)) $G" "$NBD"

	# a clone starts without CBT
	vcall Volume.clone "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$S3\"}"
	expect_ok "$fmt: clone of S3"
	check "$fmt: the clone has CBT off" jqt '.cbt_enabled == false' <<<"$OUT"

	cbt disable_cbt "$V"
	expect_ok "$fmt: Volume.disable_cbt while served"
	stat_vol "$V"
	check "$fmt: Volume.stat says CBT off" jqt '.cbt_enabled == false' <<<"$OUT"
	lcb "$S3" "$V"
	expect_err "$fmt: changed(S3, live) with CBT off is an error" Storage_error
	check "$fmt: writes go on after disable_cbt" nbd_write 0x17 0 $G

	# enabled again while served: a new line of epochs
	cbt enable_cbt "$V"
	expect_ok "$fmt: Volume.enable_cbt while served"
	snapshot "$V"; expect_ok "$fmt: snapshot S5"; S5=$(jqr .key)
	check "$fmt: write H" nbd_write 0x18 $((8 << 20)) $((2 * G))
	check "$fmt: changed(S5, live) is exactly H" changed_is "$S5" "$V" $SIZE $((8 << 20)) $((2 * G))
	lcb "$S3" "$S5"
	expect_err "$fmt: changed(S3, S5) across disable/enable is an error" Storage_error
	vol_deactivate 7

	# the epoch of an inactive volume, and a resize: new blocks changed
	snapshot "$V"; expect_ok "$fmt: snapshot S6 of the inactive volume"; S6=$(jqr .key)
	check "$fmt: changed(S6, live) is empty while nothing is written" changed_is "$S6" "$V" $SIZE
	if [ "$fmt" != vhd ]; then
		vcall Volume.resize "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$V\",\"new_size\":$((SIZE + (64 << 20)))}"
		expect_ok "$fmt: Volume.resize +64 MiB"
		stat_vol "$V"; VOL=$OUT
		vol_activate 7
		check "$fmt: write J past the old end" nbd_write 0x19 $((SIZE + (1 << 20))) 4096
		check "$fmt: write K before it" nbd_write 0x1a $((4 << 20)) 4096
		check "$fmt: changed(S6, live) is K and the grown part" changed_is "$S6" "$V" $((SIZE + (64 << 20))) \
			$((4 << 20)) 4096 $SIZE $((64 << 20))
		vol_deactivate 7
	fi
	if [ "$fmt" = qcow2 ]; then
		check "$fmt: qemu-img check is clean on every image" eval '
			for f in "$SR"/images/*.qcow2; do qemu-img check -q -f qcow2 "$f" || exit 1; done'
	fi
done
finish
