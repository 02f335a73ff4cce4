# SPDX-License-Identifier: LGPL-2.1-only
# coalesce.sh: the coalesce section of the benchmark (issue 13, "Measure
# it").  Sourced by bench.sh, whose helpers it uses (mk_sr, rm_sr, vcall,
# vol_create, vol_image, fill, log, now_ns) and whose cleanup covers what
# it makes (loop files in $BDIR, mounts under $W).  Writes one line per
# number into $CO_TSV: FS PART FORMAT FIELD VALUE.
#
# cycles  N backup cycles on an inactive volume, as a backup tool makes
#         them: Volume.snapshot, overwrite the same region with new data
#         (through the image file, with our ngdp-imgio, since qemu cannot
#         write VHD differencing images), Volume.destroy of the snapshot,
#         then wait until the offline coalesce job the destroy started has
#         exited.  Then: the volume's chain length (from the records), the
#         SR's images (du) and SR.stat's used space against the same
#         measures before the volume existed, and a fresh copy of the
#         volume (qemu-img convert of its chain into one new image of the
#         same format on the same filesystem, its du).
# merge   one merge of a child holding CO_MERGE_MB of its own data over a
#         filled parent: Volume.destroy of the snapshot starts the job;
#         its duration runs from that call to the job's exit (polled every
#         10 ms); the volume's chain must then be 1 image.
# limit   the same amount copied at the disk's sequential limit on the same
#         filesystem: fio io_uring direct=1 bs=1M, a sequential read and a
#         sequential write (overwrite) of CO_MERGE_MB, at QD8 (the limit)
#         and QD1 (a synchronous copier); copy MiB/s = 1 / (1/read + 1/write).
# live    guest 4k randread QD32 (fio over NBD, as the matrix's rr-qd32) on
#         an active qcow2 chain C over H (H: CO_LIVE_MB of random data, so
#         that the merge outlasts the fio run; C empty), served by
#         ngdp-server started directly with a control socket: a run
#         without a coalesce, then one started right after sending
#         {"op":"coalesce","parent":H} (tests/server/ngdp-ctl), which
#         merges H down into C while the guest reads.  Recorded into
#         raw.tsv as group "colive" (contenders ngdp-uring and
#         ngdp-coalescing); coalesce.tsv gets whether the merge still ran
#         when fio ended, what it had copied by then, and its whole time.
#         C must then check clean, have no backing and hold H's data.

NGDP_IMGIO=${NGDP_IMGIO:-$TOP/build/ngdp-imgio}
NGDP_CTL=${NGDP_CTL:-$TOP/build/tests/server/ngdp-ctl}
CO_TSV=$W/coalesce.tsv
: >"$CO_TSV"

co_rec() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$CO_TSV"; }

# co_jobs SR: the PIDs of the coalesce jobs running on SR (the job is
# "<plugin> --coalesce-job <SR>": its SR is its last argument)
co_jobs() {
	local f p
	for f in $(grep -lsF -e --coalesce-job /proc/[0-9]*/cmdline); do
		p=${f#/proc/}
		p=${p%/cmdline}
		[ "$(tr '\0' '\n' 2>/dev/null <"$f" | tail -n 1)" = "$1" ] && echo "$p"
	done
}
# co_idle SR: wait (10 ms polls, at most 600 s) until no job runs on SR
co_idle() {
	local i
	for ((i = 0; i < 60000; i++)); do
		[ -z "$(co_jobs "$1")" ] && return 0
		sleep 0.01
	done
	log "coalesce: a job on $1 still runs after 600 s"
	return 1
}

# shellcheck source=tests/sr-records.sh
. "$TOP/tests/sr-records.sh"
co_du() { du -s -B1 "$1" | cut -f1; }
co_stat_used() { # FS SR: SR.stat's total_space - free_space
	vcall "$1" SR.stat "{\"dbg\":\"bench\",\"sr\":\"$2\"}" |
		jq -er '.total_space - .free_space'
}
# co_write SR KEY OFF_MB LEN_MB: new random data into the volume's leaf
co_write() {
	local img
	img=$(vol_image "$1" "$2")
	head -c "$(($4 << 20))" /dev/urandom |
		"$NGDP_IMGIO" --format "$(qemu_fmt "$img")" "$img" write \
			"$(($3 << 20))" "$(($4 << 20))" >/dev/null 2>>"$W/log/coalesce.err"
}
co_snapshot() { # FS SR KEY: prints the snapshot's key
	vcall "$1" Volume.snapshot "{\"dbg\":\"bench\",\"sr\":\"$2\",\"key\":\"$3\"}" |
		jq -er .key
}

# co_fresh SR KEY: FRESH = du of a fresh copy of the volume (one image,
# same format and cluster size, on the SR's filesystem); VIA says how it
# was made.  qemu cannot read a VHD differencing chain: then the chain is read
# by ngdp-imgio into a raw file there first.
co_fresh() {
	local img fmt out=$1/bench-fresh opts=() tmp=$1/bench-fresh.raw n
	img=$(vol_image "$1" "$2")
	fmt=$(qemu_fmt "$img")
	[ "$fmt" = qcow2 ] &&
		opts=(-o "cluster_size=$(qemu-img info --output=json "$img" | jq -r '."cluster-size"')")
	rm -f "$out" "$tmp"
	if qemu-img convert -f "$fmt" -O "$fmt" "${opts[@]}" "$img" "$out" \
		2>>"$W/log/coalesce.err"; then
		VIA="qemu-img convert -f $fmt -O $fmt"
	else
		n=$(jq -r .size "$1/meta/v-$2.json" 2>/dev/null)
		"$NGDP_IMGIO" --readonly --format "$fmt" "$img" read 0 "$n" >"$tmp" &&
			qemu-img convert -f raw -O "$fmt" "${opts[@]}" "$tmp" "$out" \
				2>>"$W/log/coalesce.err" || { rm -f "$tmp" "$out"; return 1; }
		rm -f "$tmp"
		VIA="ngdp-imgio read of the chain, then qemu-img convert -f raw -O $fmt"
	fi
	sync -f "$out"
	FRESH=$(co_du "$out")
	rm -f "$out"
}

# co_cycles FS SR FMT: part a
co_cycles() {
	local fs=$1 sr=$2 fmt=$3 key snap i t0 t1 wait_ns=0 du0 st0 du1 st1 fresh chain
	du0=$(co_du "$sr/images") st0=$(co_stat_used "$fs" "$sr") || return 1
	key=$(vol_create "$fs" "$sr" co-cycles "$SIZE") || return 1
	fill "$(vol_image "$sr" "$key")" || return 1
	for ((i = 1; i <= CO_CYCLES; i++)); do
		snap=$(co_snapshot "$fs" "$sr" "$key") || { log "coalesce: snapshot $i failed"; return 1; }
		co_write "$sr" "$key" 0 "$CO_REGION_MB" || { log "coalesce: write $i failed"; return 1; }
		t0=$(now_ns)
		vol_destroy "$fs" "$sr" "$snap" || { log "coalesce: destroy $i failed"; return 1; }
		co_idle "$sr" || return 1
		t1=$(now_ns)
		wait_ns=$((wait_ns + t1 - t0))
	done
	chain=$(sr_chain_len "$sr" "$key")
	sync -f "$sr/images"
	du1=$(co_du "$sr/images") st1=$(co_stat_used "$fs" "$sr") || return 1
	co_fresh "$sr" "$key" || { log "coalesce: no fresh copy of the $fmt volume"; return 1; }
	fresh=$FRESH
	co_rec "$fs" cycles "$fmt" cycles "$CO_CYCLES"
	co_rec "$fs" cycles "$fmt" region_mib "$CO_REGION_MB"
	co_rec "$fs" cycles "$fmt" size_mib "$SIZE_MB"
	co_rec "$fs" cycles "$fmt" chain "$chain"
	co_rec "$fs" cycles "$fmt" images_bytes "$((du1 - du0))"
	co_rec "$fs" cycles "$fmt" srstat_bytes "$((st1 - st0))"
	co_rec "$fs" cycles "$fmt" fresh_bytes "$fresh"
	co_rec "$fs" cycles "$fmt" fresh_via "$VIA"
	co_rec "$fs" cycles "$fmt" wait_s "$(awk -v n="$wait_ns" 'BEGIN { printf "%.2f", n / 1e9 }')"
	log "coalesce cycles $fmt: chain $chain, images $((du1 - du0)) B, SR.stat $((st1 - st0)) B, fresh $fresh B"
	vol_destroy "$fs" "$sr" "$key"
	co_idle "$sr"
}

# co_merge FS SR FMT: part b
co_merge() {
	local fs=$1 sr=$2 fmt=$3 key snap t0 t1 chain
	key=$(vol_create "$fs" "$sr" co-merge "$SIZE") || return 1
	fill "$(vol_image "$sr" "$key")" || return 1
	snap=$(co_snapshot "$fs" "$sr" "$key") || return 1
	co_write "$sr" "$key" 0 "$CO_MERGE_MB" || { log "coalesce: merge write failed"; return 1; }
	sync -f "$sr/images"
	t0=$(now_ns)
	vol_destroy "$fs" "$sr" "$snap" || return 1
	co_idle "$sr" || return 1
	t1=$(now_ns)
	chain=$(sr_chain_len "$sr" "$key")
	vol_destroy "$fs" "$sr" "$key"
	co_idle "$sr"
	if [ "$chain" != 1 ]; then
		log "coalesce merge $fmt: the job left a chain of $chain images: no merge to time"
		return 1
	fi
	co_rec "$fs" merge "$fmt" own_mib "$CO_MERGE_MB"
	co_rec "$fs" merge "$fmt" seconds "$(awk -v n="$((t1 - t0))" 'BEGIN { printf "%.3f", n / 1e9 }')"
	log "coalesce merge $fmt: $CO_MERGE_MB MiB in $(((t1 - t0) / 1000000)) ms"
}

# co_limit FS SR: part b's reference, on the SR's filesystem
co_limit() {
	local fs=$1 f=$1 qd rw out
	f=$2/bench-copy.raw
	rm -f "$f"
	# the file exists and is allocated before the timed runs (the merge
	# writes into a filled parent)
	fio --name=prefill --filename="$f" --size="${CO_MERGE_MB}M" --rw=write \
		--bs=1M --direct=1 --ioengine=io_uring --iodepth=8 \
		--output=/dev/null >>"$W/log/coalesce.err" 2>&1 || return 1
	for qd in 8 1; do
		for rw in read write; do
			out=$W/log/co-limit-$rw-qd$qd.json
			fio --name="co-$rw" --filename="$f" --size="${CO_MERGE_MB}M" \
				--rw="$rw" --bs=1M --direct=1 --ioengine=io_uring \
				--iodepth="$qd" --output-format=json --output="$out" \
				>>"$W/log/coalesce.err" 2>&1 || { rm -f "$f"; return 1; }
			echo "fio --name=co-$rw --filename=<SR>/bench-copy.raw --size=${CO_MERGE_MB}M --rw=$rw --bs=1M --direct=1 --ioengine=io_uring --iodepth=$qd" \
				>>"$W/log/fio-commands.txt"
			co_rec "$fs" limit "qd$qd" "${rw}_mibs" \
				"$(jq -r ".jobs[0].$rw.bw_bytes / 1048576 | . * 10 | round / 10" "$out")"
		done
	done
	rm -f "$f"
}

# co_live FS SR: part c, on the qcow2 SR's filesystem
co_live() {
	local fs=$1 d=$2/bench-live h c ctl rep res i st st_end t0 t1 off cop ok=0
	local src=$BDIR/rand.raw
	h=$d/h.qcow2 c=$d/c.qcow2 ctl=$W/live.ctl
	mkdir -p "$d"
	if [ "$CO_LIVE_MB" != "$SIZE_MB" ]; then
		src=$BDIR/live.raw
		head -c "$((CO_LIVE_MB << 20))" /dev/urandom >"$src" || return 1
	fi
	qemu-img convert -t none -f raw -O qcow2 -o cluster_size=65536 "$src" "$h" \
		2>>"$W/log/coalesce.err" || return 1
	for ((rep = 1; rep <= REPS; rep++)); do
		rm -f "$c"
		qemu-img create -q -f qcow2 -o cluster_size=65536 -b h.qcow2 \
			-F qcow2 "$c" || return 1
		SPIDS=()
		start_direct live "$c" uring --control "$ctl" ||
			{ log "coalesce live: ngdp-server did not start"; stop_all; return 1; }
		res=$(run_fio "$fs-colive-base-$rep" rr-qd32 "nbd:$URI") ||
			{ stop_all; return 1; }
		record "$fs" colive ngdp-uring rr-qd32 "$rep" "$res"
		log "$fs-colive-base-$rep: $res"
		t0=$(now_ns)
		"$NGDP_CTL" "$ctl" coalesce "$h" >>"$W/log/coalesce.err" 2>&1 ||
			{ log "coalesce live: the coalesce op was refused"; stop_all; return 1; }
		res=$(run_fio "$fs-colive-during-$rep" rr-qd32 "nbd:$URI") ||
			{ stop_all; return 1; }
		st_end=$("$NGDP_CTL" "$ctl" get coalesce.state 2>/dev/null)
		off=$("$NGDP_CTL" "$ctl" get coalesce.offset 2>/dev/null)
		cop=$("$NGDP_CTL" "$ctl" get coalesce.copied 2>/dev/null)
		record "$fs" colive ngdp-coalescing rr-qd32 "$rep" "$res"
		log "$fs-colive-during-$rep: $res (coalesce $st_end, $off bytes scanned)"
		for ((i = 0; i < 60000; i++)); do
			st=$("$NGDP_CTL" "$ctl" get coalesce.state 2>/dev/null)
			[ "$st" = running ] || break
			sleep 0.01
		done
		t1=$(now_ns)
		stop_all
		if [ "$st" != done ]; then
			log "coalesce live: the merge ended '$st': $("$NGDP_CTL" "$ctl" get coalesce.error 2>/dev/null)"
			return 1
		fi
		# the merge must have left one whole image with H's data
		qemu-img check -q -f qcow2 "$c" &&
			[ "$(qemu-img info --output=json "$c" | jq -r '."backing-filename" // "none"')" = none ] &&
			qemu-img compare -q -f raw -F qcow2 "$src" "$c" ||
			{ log "coalesce live: the merged image is not right"; return 1; }
		co_rec "$fs" live "rep$rep" running_at_end "$([ "$st_end" = running ] && echo 1 || echo 0)"
		co_rec "$fs" live "rep$rep" scanned_at_end "$off"
		co_rec "$fs" live "rep$rep" copied_at_end "$cop"
		co_rec "$fs" live "rep$rep" merge_s "$(awk -v n="$((t1 - t0))" 'BEGIN { printf "%.2f", n / 1e9 }')"
		ok=1
	done
	co_rec "$fs" live qcow2 size_mib "$CO_LIVE_MB"
	rm -rf "$d"
	[ "$src" = "$BDIR/rand.raw" ] || rm -f "$src"
	[ $ok = 1 ]
}

# coalesce_section FS: parts a and b on one SR per format
coalesce_section() {
	local fs=$1 fmt sr
	if [ ! -x "$NGDP_IMGIO" ]; then
		log "coalesce: no $NGDP_IMGIO (make all): section skipped"
		return 0
	fi
	log "== coalesce ($fs): $CO_CYCLES cycles over ${CO_REGION_MB} MiB, merge of ${CO_MERGE_MB} MiB"
	for fmt in qcow2 vhd; do
		sr=$(mk_sr "$fs" "$fmt" $((SIZE_MB * 4 + CO_LIVE_MB * 2 + 1024))) || { log "coalesce: no $fs $fmt SR"; continue; }
		co_cycles "$fs" "$sr" "$fmt" || log "coalesce: the $fmt backup cycles gave no numbers"
		co_merge "$fs" "$sr" "$fmt" || log "coalesce: the $fmt merge gave no numbers"
		if [ "$fmt" = qcow2 ]; then
			co_limit "$fs" "$sr" || log "coalesce: no disk limit"
			# live: qcow2 only (the engine cannot switch a VHD's
			# parent yet)
			if [ -x "$NGDP_CTL" ]; then
				co_live "$fs" "$sr" || log "coalesce: no live coalesce numbers"
			else
				log "coalesce: no $NGDP_CTL: no live coalesce row"
			fi
		fi
		rm_sr "$fs" "$sr"
	done
}
