#!/bin/bash
# Coalesce (issue 13): backup cycles (snapshot, overwrite, destroy the
# snapshot) leave a volume's chain at most 2 images deep and the SR at most
# 1.5x a fresh copy, with the volume inactive (the job merges) and served
# (its datapath server merges while the guest writes); every byte reads
# back through NBD and through the image files; a job or server killed at
# any step loses nothing and a later trigger finishes; the merge copies the
# smaller side; read-only and reset-on-boot activations are left alone.
# per-plugin
# per-format
. "$(dirname "$0")/lib.sh"

write() { vol_file_write "$@"; }
reads() { vol_file_reads "$@"; }
# the volume's content as written: PAT over [0, 4M), 0x11 over [4M, 16M)
content_ok() { reads "$1" "$2" 0 4M && reads "$1" 0x11 4M 12M && reads "$1" 0 16M 16M; }
content_live_ok() { reads "$1" "$2" 0 4M && reads "$1" 0x11 4M 4M && reads "$1" 0 16M 16M; }
nbd_content_ok() { # through the datapath, activated read-write
	local ok
	vol_activate 1
	qio -f raw "$NBD" -c "read -P $2 0 4M" -c "read -P 0x11 4M 12M" -c "read -P 0 16M 16M"
	ok=$?
	vol_deactivate 1
	return $ok
}
destroy() { vcall Volume.destroy "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$1\"}"; }
snapshot() { vcall Volume.snapshot "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$1\"}"; S=$(jqr .key); }
trigger() { vcall SR.stat "{\"dbg\":\"t\",\"sr\":\"$SR\"}"; }
chain_len() { vol_chain_len "$@"; }
diag() { vcall Plugin.diagnostics '{"dbg":"t"}'; jqr . | grep -F "SR $SR_UUID"; }
# wait (bounded: 60 s) until the job is not running and no image is hidden
wait_job() {
	local i d
	for i in $(seq 1 "${COALESCE_WAIT_TRIES:-300}"); do
		d=$(diag)
		if ! grep -q "coalesce: running" <<<"$d" && grep -q " 0 hidden images" <<<"$d"; then
			return 0
		fi
		sleep 0.2
	done
	echo "    job still busy: $d"
	return 1
}
# wait (bounded: 60 s) until no job runs (a random kill may come too late)
wait_idle() {
	local i
	for i in $(seq 1 300); do
		diag | grep -q "coalesce: running" || return 0
		sleep 0.2
	done
	return 1
}
check_images() {
	local f ok=0
	for f in "$SR"/images/*.qcow2; do
		[ -e "$f" ] || continue
		qemu-img check -q -f qcow2 "$f" || { echo "    $f not clean"; ok=1; }
	done
	return $ok
}
sr_bytes() { du -s -B1 "$SR/images" | cut -f1; }
# allocated bytes of a fresh copy of the volume (one image, same format)
fresh_bytes() {
	local img fmt
	img=$(vol_image "$1"); fmt=$(vol_qemu_fmt "$1")
	qemu-img convert -f "$fmt" -O "$fmt" "$img" "$T/fresh" >/dev/null 2>&1 || { echo 0; return; }
	du -B1 "$T/fresh" | cut -f1
	rm -f "$T/fresh"
}
# independent_ok KEY SIZE PAT:OFF:LEN...: the volume's image files, read by
# another implementation (qemu for qcow2 and raw chains, libvhdi for VHD),
# hold these patterns (OFF and LEN in KiB) and zeros elsewhere
independent_ok() {
	local key=$1 size=$2 img ref=$T/ref.raw m f r
	shift 2
	img=$(vol_image "$key")
	python3 - "$ref" "$size" "$@" <<-'PY'
	import sys
	ref, size, specs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
	buf = bytearray(size)
	for s in specs:
	    pat, off, ln = s.split(":")
	    buf[int(off) * 1024:(int(off) + int(ln)) * 1024] = bytes([int(pat, 0)]) * (int(ln) * 1024)
	open(ref, "wb").write(buf)
	PY
	if [ "$(vol_qemu_fmt "$key")" != vpc ]; then
		qemu-img compare -q -f raw -F "$(vol_qemu_fmt "$key")" "$ref" "$img"
		return
	fi
	m=$T/vhdi-$RANDOM
	mkdir -p "$m"
	vhdimount "$img" "$m" >/dev/null 2>&1 || { rmdir "$m"; return 1; }
	f=$(ls "$m" | sort -V | tail -1)	# the chain's top comes last
	cmp -s "$m/$f" "$ref"; r=$?
	umount "$m"; rmdir "$m"
	return $r
}
export IMGIO

mk_sr || { fail "SR setup"; finish; }
FMT=${IMAGE_FORMAT:-qcow2}
vol_create $((64 << 20)) "coalesced"
V=$KEY
check "$FMT: base content written" write "$V" 0x11 0 16M

# 1. backup cycles on an inactive volume
ok=1
for i in 1 2 3 4 5 6 7 8; do
	snapshot "$V"
	[ "$RC" -eq 0 ] || { ok=0; break; }
	write "$V" $((0x20 + i)) 0 4M || { ok=0; echo "    write $i failed"; break; }
	prev=$((0x20 + i - 1)); [ $i -eq 1 ] && prev=0x11
	reads "$S" $prev 0 4M || { ok=0; echo "    snapshot $i does not read what the volume held"; }
	destroy "$S"
	[ "$RC" -eq 0 ] || { ok=0; break; }
	wait_job || ok=0
done
check "$FMT: 8 backup cycles ran, each coalesced by the job" [ $ok = 1 ]
check "$FMT: the chain is back to at most 2 images ($(chain_len "$V"))" [ "$(chain_len "$V")" -le 2 ]
check "$FMT: every image file is clean" check_images
check "$FMT: content through the image files" content_ok "$V" 0x28
check "$FMT: content through another reader of the files" \
	independent_ok "$V" $((64 << 20)) 0x28:0:4096 0x11:4096:12288
used=$(sr_bytes) fresh=$(fresh_bytes "$V")
check "$FMT: the SR uses $used bytes, at most 1.5x a fresh copy ($fresh)" \
	[ "$fresh" -gt 0 -a $((used * 2)) -le $((fresh * 3)) ]
check "$FMT: content through NBD" nbd_content_ok "$V" 0x28
d=$(diag)
check "$FMT: diagnostics shows the job's last result" grep -q "coalesce: idle; last result" <<<"$d"

# 2. kill -9 of the job at each step (fault points), then at random moments
pat=0x28
n=0
for where in coalesce-job-start coalesce-mid-copy coalesce-after-copy \
	     coalesce-before-commit coalesce-after-commit 0.05 0.2 0.5; do
	n=$((n + 1))
	snapshot "$V"
	pat=$((0x40 + n))
	write "$V" $pat 0 4M
	write "$V" 0x11 4M 12M	# more for the copy to do
	case $where in
	coalesce-*) XSNG_FAULT=$where destroy "$S" ;;
	*)	destroy "$S"
		sleep "$where"
		jp=$(jq -r .pid "$SR/.sr/coalesce.json" 2>/dev/null)
		if [ -n "$jp" ] && grep -qa -- --coalesce-job "/proc/$jp/cmdline" 2>/dev/null; then
			kill -9 "$jp"
		fi ;;
	esac
	check "$FMT: kill at $where: Volume.destroy returned at once" [ "$RC" -eq 0 ]
	sleep 0.5
	wait_idle
	check "$FMT: kill at $where: images clean" check_images
	check "$FMT: kill at $where: data intact" content_ok "$V" $pat
	vcall SR.ls "{\"dbg\":\"t\",\"sr\":\"$SR\"}"
	check "$FMT: kill at $where: the SR lists its one volume" jqt --arg v "$V" 'map(.key) == [$v]' <<<"$OUT"
	trigger
	check "$FMT: kill at $where: a later trigger finishes the coalesce" wait_job
	check "$FMT: kill at $where: chain at most 2 ($(chain_len "$V"))" [ "$(chain_len "$V")" -le 2 ]
	check "$FMT: kill at $where: data intact after" content_ok "$V" $pat
done
check "$FMT: images clean after the kills" check_images
check "$FMT: content through NBD after the kills" nbd_content_ok "$V" $pat

# 3. live: the volume stays served (a running VM) through 8 backup cycles;
#    its datapath server merges the hidden parent down into the leaf while
#    a writer keeps writing, and the job commits the records
vol_activate 2
LIVE_PID=$PID
leaf=$(jq -r .image "$SR/meta/v-$V.json")
ok=1
for i in 1 2 3 4 5 6 7 8; do
	snapshot "$V"
	[ "$RC" -eq 0 ] || { ok=0; break; }
	qio -f raw "$NBD" -c "write -P $((0x60 + i)) 0 4M" || { ok=0; echo "    NBD write $i failed"; }
	destroy "$S"
	[ "$RC" -eq 0 ] || { ok=0; break; }
	# the guest goes on writing while the server merges
	qio -f raw "$NBD" -c "write -P $((0x70 + i)) 8M 1M" -c "write -P $((0x70 + i)) 12M 64k" ||
		{ ok=0; echo "    NBD write during merge $i failed"; }
	wait_job || ok=0
done
check "$FMT: live: 8 backup cycles, each merged while served" [ $ok = 1 ]
check "$FMT: live: the server was never restarted" alive "$LIVE_PID"
check "$FMT: live: the server holds no deleted image open (the space is back)" \
	bash -c "! ls -l /proc/$LIVE_PID/fd | grep -q '(deleted)'"
check "$FMT: live: the chain is back to at most 2 images ($(chain_len "$V"))" [ "$(chain_len "$V")" -le 2 ]
check "$FMT: live: the volume is on its newest leaf, not a parent" \
	[ "$(jq -r .image "$SR/meta/v-$V.json")" != "$leaf" ]
live_nbd_ok() {
	qio -r -f raw "$NBD" -c "read -P 0x68 0 4M" -c "read -P 0x11 4M 4M" \
		-c "read -P 0x78 8M 1M" -c "read -P 0x11 9M 3M" -c "read -P 0x78 12M 64k" \
		-c "read -P 0x11 $((12 * 1024 + 64))k $((4 * 1024 - 64))k" -c "read -P 0 16M 16M"
}
check "$FMT: live: every byte through NBD while served" live_nbd_ok
used=$(sr_bytes)
vol_deactivate 2
fresh=$(fresh_bytes "$V")
check "$FMT: live: the SR used $used bytes, at most 1.5x a fresh copy ($fresh)" \
	[ "$fresh" -gt 0 -a $((used * 2)) -le $((fresh * 3)) ]
live_files_ok() {
	reads "$V" 0x68 0 4M && reads "$V" 0x11 4M 4M && reads "$V" 0x78 8M 1M &&
		reads "$V" 0x11 9M 3M && reads "$V" 0x78 12M 64k &&
		reads "$V" 0x11 $((12 * 1024 + 64))k $((4 * 1024 - 64))k && reads "$V" 0 16M 16M
}
check "$FMT: live: every byte through the image files" live_files_ok
check "$FMT: live: every byte through another reader of the files" \
	independent_ok "$V" $((64 << 20)) 0x68:0:4096 0x11:4096:4096 0x78:8192:1024 \
		0x11:9216:3072 0x78:12288:64 0x11:12352:4032
check "$FMT: live: images clean" check_images

# 3b. live, killed: the job at its fault points, the server at random
#     moments; nothing acknowledged is lost and a later trigger finishes
n=0
for where in coalesce-live-switched coalesce-down-before-record \
	     coalesce-down-after-record server-0.1 server-0.3; do
	n=$((n + 1))
	vol_activate 4
	snapshot "$V"
	pat=$((0x90 + n))
	qio -f raw "$NBD" -c "write -P $pat 0 4M"
	case $where in
	coalesce-*) XSNG_FAULT=$where destroy "$S" ;;
	server-*) destroy "$S"
		sleep "${where#server-}"
		kill -9 "$PID" ;;
	esac
	check "$FMT: live kill at $where: Volume.destroy returned" [ "$RC" -eq 0 ]
	wait_idle
	if [ "${where%%-*}" = server ]; then
		# xapi's path after a crashed datapath: deactivate, activate again
		vol_deactivate 4
		vol_activate 4
	fi
	check "$FMT: live kill at $where: data through NBD" \
		qio -r -f raw "$NBD" -c "read -P $pat 0 4M" -c "read -P 0x11 4M 4M" -c "read -P 0 16M 16M"
	trigger
	check "$FMT: live kill at $where: a later trigger finishes" wait_job
	check "$FMT: live kill at $where: chain at most 2 ($(chain_len "$V"))" [ "$(chain_len "$V")" -le 2 ]
	vol_deactivate 4
	check "$FMT: live kill at $where: images clean" check_images
	check "$FMT: live kill at $where: data in the files" content_live_ok "$V" $pat
done
vol_activate 2
qio -f raw "$NBD" -c "write -P 0x77 0 4M" -c "write -P 0x11 4M 12M"
vol_deactivate 2
check "$FMT: content after the live part" content_ok "$V" 0x77

# 4. a reset-on-boot epoch (its overlay sits on the volume's leaf) holds
#    the chain; a read-only activation (a backup reading the disk) is
#    served by the volume's own server, which merges live under it
for mode in read-only reset-on-boot; do
	URI=$(jq -r '.uri[0]' <<<"$VOL")
	[ $mode = reset-on-boot ] &&
		dcall Datapath.open "{\"dbg\":\"t\",\"uri\":\"$URI\",\"persistent\":false}"
	dcall Datapath.attach "{\"dbg\":\"t\",\"uri\":\"$URI\",\"domain\":\"3\"}"
	NBD=$(jqr '.implementations[] | select(.[0]=="Nbd") | .[1].uri')
	m=Datapath.activate; [ $mode = read-only ] && m=Datapath.activate_readonly
	dcall $m "{\"dbg\":\"t\",\"uri\":\"$URI\",\"domain\":\"3\"}"
	expect_ok "$FMT: $mode: $m"
	PIDS+=("$(jq -r .pid "$SR/.sr/active/$V.json")")
	snapshot "$V"
	destroy "$S"
	trigger
	sleep 2
	if [ $mode = read-only ]; then
		# a read-write volume's server serves the reader too: it merges
		# live and reopens its own chain, from under nobody
		check "$FMT: $mode: merged live by the server the reader uses" wait_job
		check "$FMT: $mode: chain at most 2 while read ($(chain_len "$V"))" [ "$(chain_len "$V")" -le 2 ]
		check "$FMT: $mode: the server holds no deleted image open" \
			bash -c "! ls -l /proc/$(jq -r .pid "$SR/.sr/active/$V.json")/fd | grep -q '(deleted)'"
	else
		check "$FMT: $mode: chain left at 2 images while active" [ "$(chain_len "$V")" -eq 2 ]
	fi
	check "$FMT: $mode: its reader still reads the data" \
		qio -r -f raw "$NBD" -c "read -P 0x77 0 4M" -c "read -P 0x11 4M 12M"
	vol_deactivate 3
	[ $mode = reset-on-boot ] &&
		dcall Datapath.close "{\"dbg\":\"t\",\"uri\":\"$URI\"}"
	trigger
	check "$FMT: $mode: coalesced once it ended" wait_job
	check "$FMT: $mode: chain at most 2 ($(chain_len "$V"))" [ "$(chain_len "$V")" -le 2 ]
	check "$FMT: $mode: content intact" content_ok "$V" 0x77
done
check "$FMT: images clean after the activations" check_images

# 5. the merge copies the smaller side: a child that rewrote more than its
#    parent holds takes the parent in (the volume keeps its image), also
#    when killed at each step
n=0
for where in none coalesce-down-mid-copy coalesce-down-before-switch \
	     coalesce-down-before-record coalesce-down-after-record; do
	n=$((n + 1))
	vol_create $((64 << 20)) "down $n"
	W=$KEY
	write "$W" 0x31 0 1M
	snapshot "$W"
	write "$W" $((0x50 + n)) 0 512k
	write "$W" 0x32 2M 24M
	own=$(jq -r .image "$SR/meta/v-$W.json")
	case $where in
	none) destroy "$S" ;;
	*) XSNG_FAULT=$where destroy "$S" ;;
	esac
	wait_idle
	check "$FMT: down ($where): images clean" check_images
	down_ok() { reads "$W" $((0x50 + n)) 0 512k && reads "$W" 0x31 512k 512k &&
		reads "$W" 0 1M 1M && reads "$W" 0x32 2M 24M && reads "$W" 0 26M 38M; }
	check "$FMT: down ($where): data intact" down_ok
	trigger
	check "$FMT: down ($where): a later trigger finishes" wait_job
	check "$FMT: down ($where): the volume kept its own image" \
		[ "$(jq -r .image "$SR/meta/v-$W.json")" = "$own" ]
	check "$FMT: down ($where): one image left ($(chain_len "$W"))" [ "$(chain_len "$W")" -eq 1 ]
	check "$FMT: down ($where): data intact after" down_ok
	check "$FMT: down ($where): another reader of the files agrees" \
		independent_ok "$W" $((64 << 20)) $((0x50 + n)):0:512 0x31:512:512 0x32:2048:24576
done
check "$FMT: down: images clean" check_images

# 6. an older snapshot destroyed while a newer one is kept (retention):
#    its hidden image is merged down into the newer snapshot's image, which
#    the volume's leaf reads through; with the volume served (its server
#    lets go of the merged image) and not, and killed before the record
n=0
for where in served none coalesce-down-before-record; do
	n=$((n + 1))
	vol_create $((64 << 20)) "retention $n"
	X=$KEY
	write "$X" 0x41 0 4M
	snapshot "$X"; S1=$S
	write "$X" 0x42 0 1M
	snapshot "$X"; S2=$S
	write "$X" 0x43 1M 1M
	[ $where = served ] && vol_activate 5
	case $where in
	coalesce-*) XSNG_FAULT=$where destroy "$S1" ;;
	*) destroy "$S1" ;;
	esac
	check "$FMT: retention ($where): Volume.destroy of the older snapshot" [ "$RC" -eq 0 ]
	wait_idle
	trigger
	check "$FMT: retention ($where): the job finishes" wait_job
	check "$FMT: retention ($where): the leaf reads through one image ($(chain_len "$X") in all)" \
		[ "$(chain_len "$X")" -eq 2 ]
	if [ $where = served ]; then
		check "$FMT: retention ($where): data through NBD" \
			qio -r -f raw "$NBD" -c "read -P 0x42 0 1M" -c "read -P 0x43 1M 1M" -c "read -P 0x41 2M 2M"
		check "$FMT: retention ($where): the server holds no deleted image open" \
			bash -c "! ls -l /proc/$PID/fd | grep -q '(deleted)'"
		vol_deactivate 5
	fi
	kept_ok() { reads "$S2" 0x42 0 1M && reads "$S2" 0x41 1M 3M; }
	check "$FMT: retention ($where): the kept snapshot reads as taken" kept_ok
	retention_ok() { reads "$X" 0x42 0 1M && reads "$X" 0x43 1M 1M && reads "$X" 0x41 2M 2M && reads "$X" 0 4M 4M; }
	check "$FMT: retention ($where): the volume reads right" retention_ok
	check "$FMT: retention ($where): images clean" check_images
done

vcall SR.detach "{\"dbg\":\"t\",\"sr\":\"$SR\"}"
expect_ok "SR.detach"
finish
