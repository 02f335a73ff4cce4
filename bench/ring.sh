# SPDX-License-Identifier: LGPL-2.1-only
# ring.sh: the blkif ring section of the benchmark (issue 17).  Sourced by
# bench.sh, whose helpers it uses (one_run, record, cpu_ticks, sys_ticks,
# stop_pids, vol_image, log).  Runs on the first filesystem, on the
# matrix's filled qcow2 volume.
#
# ngdp-server serves the volume to a blkif frontend over shared memory
# (--blkif-shm: the ring and data pages in a sealed memfd, eventfds for
# the event channel; src/server/blkif/shm.c), the same ring code a Xen
# guest's ring would use, without Xen.  The frontend is
# tests/server/blkif-front ("bench SECONDS QD [KIB]": 4 KiB random reads
# over the whole disk, or 1 MiB sequential ones).  Rows (raw.tsv group
# ring, tests rr-qd32 and seq-read, 1 MiB at QD8): the raw file (limit,
# fio), the ring with each engine (blkif-uring, blkif-aio) and the NBD
# path (ngdp-uring through fio's NBD client) side by side.  The ring's
# reads land straight in the frontend's pages (O_DIRECT into them).  The
# server on SERVER_CPUS, the frontend and fio on FIO_CPUS.

BLKIF_FRONT=${BLKIF_FRONT:-}

# ring_run FS CONTENDER REP ENGINE IMG TEST: one run of the shared-memory
# ring; TEST rr-qd32 (4 KiB random, QD32) or seq-read (1 MiB, QD8)
ring_run() {
	local fs=$1 c=$2 rep=$3 eng=$4 img=$5 t=$6 sock=$W/ring.sock pid out
	local c0 c1 s0 t0 s1 t1 tm iops lat i args bs
	case $t in
	rr-qd32) args="32" bs=4096 ;;
	seq-read) args="8 1024" bs=1048576 ;;
	*) log "ring: unknown test $t"; return 1 ;;
	esac
	rm -f "$sock" "$W/ring.pid" "$W/ring.ctl"
	taskset -c "$SERVER_CPUS" "$NGDP_SERVER" --image "$img" --socket "$W/ring.nbd" \
		--blkif-shm "$sock" --engine "$eng" --pidfile "$W/ring.pid" \
		</dev/null >>"$W/log/ring-server.log" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	for ((i = 0; i < 100; i++)); do [ -S "$sock" ] && break; sleep 0.05; done
	[ -S "$sock" ] || { log "ring: server did not listen ($c)"; stop_pids "$pid"; return 1; }
	c0=$(cpu_ticks "$pid")
	read -r s0 t0 < <(sys_ticks)
	out=$W/ring-$c-$t-$rep.out
	# bash's time: elapsed, user and system seconds of the frontend
	tm=$( { TIMEFORMAT='%R %U %S'; time taskset -c "$FIO_CPUS" "$BLKIF_FRONT" "$sock" bench \
		"$RUNTIME" $args >"$out" 2>>"$W/log/ring-front.err"; } 2>&1 ) ||
		{ log "ring: blkif-front failed ($c)"; stop_pids "$pid"; return 1; }
	c1=$(cpu_ticks "$pid")
	read -r s1 t1 < <(sys_ticks)
	stop_pids "$pid"
	iops=$(sed -n 's/.*iops=\([0-9]*\).*/\1/p' "$out")
	lat=$(sed -n 's/.*lat_us=\([0-9]*\).*/\1/p' "$out")
	[ "${iops:-0}" -gt 0 ] 2>/dev/null || { log "ring: no result ($c)"; return 1; }
	# iops mbps lat p99(not measured: the mean) cpu_us/io front_cpu% machine%
	record "$fs" ring "$c" "$t" "$rep" "$(awk -v i="$iops" -v l="$lat" -v c0="$c0" -v c1="$c1" -v bs="$bs" \
		-v tick="$TICK" -v secs="$RUNTIME" -v tm="$tm" -v s0="$s0" -v s1="$s1" -v t0="$t0" -v t1="$t1" 'BEGIN {
		split(tm, a, " ")
		printf "%d\t%.2f\t%s\t%s\t%.2f\t%.2f\t%.2f", i, i * bs / 1e6, l, l,
			(c1 - c0) * 1e6 / tick / (i * secs), (a[1] > 0) ? 100 * (a[2] + a[3]) / a[1] : 0,
			(t1 > t0) ? 100 * (s1 - s0) / (t1 - t0) : 0 }')"
	log "$fs-ring-$c-$t-$rep: iops=$iops lat_us=$lat"
}

ring_section() { # FS
	local fs=$1 sr=${SRP[qcow2]} rep img t
	if [ -z "$BLKIF_FRONT" ] || [ ! -x "$BLKIF_FRONT" ]; then
		log "ring: no blkif-front (BLKIF_FRONT): no ring rows"
		return 0
	fi
	img=$(vol_image "$sr" "${MAIN[qcow2]}")
	for ((rep = 1; rep <= REPS; rep++)); do
		for t in rr-qd32 seq-read; do
			one_run "$fs" ring limit $t "$rep" "$LIMIT_FILE"
			ring_run "$fs" blkif-uring "$rep" uring "$img" $t
			ring_run "$fs" blkif-aio "$rep" aio "$img" $t
			one_run "$fs" ring ngdp-uring $t "$rep" "$sr ${MAIN[qcow2]}"
		done
	done
}
