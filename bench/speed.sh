# SPDX-License-Identifier: LGPL-2.1-only
# speed.sh: the datapath-speed section of the benchmark (issue 16).
# Sourced by bench.sh, whose helpers it uses (one_run, run_fio, start_cont,
# stop_all, vol_create, vol_destroy, vol_image, record, log).  Runs on the
# first filesystem, after the matrix, on the matrix's filled qcow2 volume.
#
#   connections  4k random reads from one export: 1 connection at QD32
#                (raw.tsv group conn1, test rr-qd32) against 4 connections
#                at QD8 each (group conn4, test rr-qd8: the same 32 requests
#                in flight, spread the way the kernel client spreads them)
#   new clusters 4k random writes at QD32 into a fresh 4 GiB volume, each
#                at the start of a 64 KiB cluster (fio blockalign), a fixed
#                amount (group new4g, test rw-new); the limit writes into a
#                fresh sparse raw file of the same size.  How many writes
#                really found a new cluster is counted afterwards on the
#                ngdp-uring image (qemu-img map): speed.tsv "newfrac"
#   unpinned     the same tests with servers and fio free to run on every
#                CPU (the bench pins servers to CPU 0 and fio to CPU 1):
#                one volume (group unpin1: 1M writes and reads QD8, 4k
#                reads QD32; limit, nbd-null, ngdp-aio, ngdp-uring) and 4
#                volumes at once (group unpin4: limit on 4 files, ngdp-uring
#                on 4 volumes), as a dom0 with several CPUs runs them
#   syscalls     system calls per I/O of the server (perf stat tracepoints,
#                after the ramp, for the run's duration) for nbd-null,
#                ngdp-aio and ngdp-uring: speed.tsv "syscalls"
# speed.tsv: FS PART CONTENDER TEST FIELD VALUE

SP_TSV=$W/speed.tsv
: >"$SP_TSV"
sp_rec() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$SP_TSV"; }

# system calls counted (the server's loop and its I/O engines)
SP_CALLS="epoll_wait recvfrom recvmsg sendmsg sendto writev read write io_uring_enter io_submit io_getevents"

sp_connections() { # FS
	local fs=$1 sr=${SRP[qcow2]} rep c
	for ((rep = 1; rep <= REPS; rep++)); do
		for c in nbd-null qemu-nbd ngdp-aio ngdp-uring; do
			one_run "$fs" conn1 "$c" rr-qd32 "$rep" "$sr ${MAIN[qcow2]}"
			NCONN=4 one_run "$fs" conn4 "$c" rr-qd8 "$rep" "$sr ${MAIN[qcow2]}"
		done
	done
}

sp_new_clusters() { # FS
	local fs=$1 sr=${SRP[qcow2]} rep c key f img n
	local writes=$((NEW_IO / 4096))
	for ((rep = 1; rep <= REPS; rep++)); do
		for c in limit qemu-nbd ngdp-aio ngdp-uring; do
			if [ "$c" = limit ]; then
				f=$sr/bench-new.raw
				rm -f "$f"; truncate -s "$NEW_SIZE" "$f"
				one_run "$fs" new4g limit rw-new "$rep" "$f"
				rm -f "$f"
				continue
			fi
			key=$(vol_create "$fs" "$sr" new4g "$NEW_SIZE") || die "Volume.create new4g"
			one_run "$fs" new4g "$c" rw-new "$rep" "$sr $key"
			if [ "$c" = ngdp-uring ]; then
				img=$(vol_image "$sr" "$key")
				n=$(qemu-img map -f qcow2 --output=json "$img" |
					jq '[.[] | select(.data) | .length] | add // 0 | . / 65536 | floor')
				sp_rec "$fs" newfrac "$c" rw-new "rep$rep" \
					"$(awk -v n="$n" -v w="$writes" 'BEGIN { printf "%.3f", n / w }')"
			fi
			vol_destroy "$fs" "$sr" "$key"
		done
	done
}

sp_unpinned() { # FS
	local fs=$1 sr=${SRP[qcow2]} rep t c i keys=("${MAIN[qcow2]}") specs files
	for ((i = 1; i < 4; i++)); do
		keys+=("$(vol_create "$fs" "$sr" "bench-unpin$i" "$SIZE")") || die "Volume.create unpin$i"
		fill "$(vol_image "$sr" "${keys[$i]}")" || die "fill unpin$i"
	done
	# the limit's 4 files: the volumes' own image files, read as files
	files=()
	for ((i = 0; i < 4; i++)); do files+=("$(vol_image "$sr" "${keys[$i]}")"); done
	SERVER_CPUS=$ALL_CPUS FIO_CPUS=$ALL_CPUS
	for ((rep = 1; rep <= REPS; rep++)); do
		for t in seq-write seq-read rr-qd32; do
			for c in limit nbd-null ngdp-aio ngdp-uring; do
				if [ "$c" = limit ]; then
					one_run "$fs" unpin1 limit "$t" "$rep" "$LIMIT_FILE"
				else
					one_run "$fs" unpin1 "$c" "$t" "$rep" "$sr ${MAIN[qcow2]}"
				fi
			done
		done
		for t in seq-read rr-qd32; do
			one_run "$fs" unpin4 limit "$t" "$rep" "${files[@]}"
			specs=()
			for ((i = 0; i < 4; i++)); do specs+=("$sr ${keys[$i]}"); done
			one_run "$fs" unpin4 ngdp-uring "$t" "$rep" "${specs[@]}"
		done
	done
	SERVER_CPUS=0 FIO_CPUS=1
	for ((i = 1; i < 4; i++)); do vol_destroy "$fs" "$sr" "${keys[$i]}"; done
}

sp_syscalls() { # FS
	local fs=$1 sr=${SRP[qcow2]} c t ev s pp out ios
	perf stat -e raw_syscalls:sys_enter true >/dev/null 2>&1 ||
		{ log "perf cannot count system calls here: no syscall rows"; return 0; }
	ev=raw_syscalls:sys_enter
	for s in $SP_CALLS; do ev=$ev,syscalls:sys_enter_$s; done
	for c in nbd-null ngdp-aio ngdp-uring; do
		for t in rr-qd1 rr-qd32 seq-read seq-write; do
			SPIDS=()
			start_cont "$c" "$sr" "${MAIN[qcow2]}" || { stop_all; continue; }
			out=$W/syscalls-$c-$t.txt
			(sleep "$RAMP"; perf stat -x, -e "$ev" -p "${SPIDS[0]}" -o "$out" \
				-- sleep "$RUNTIME" >/dev/null 2>&1) &
			pp=$!
			run_fio "sc-$fs-$c-$t" "$t" "nbd:$URI" >/dev/null
			wait "$pp"
			stop_all
			ios=$(jq ".jobs[0].$(test_dir "$t").total_ios" "$W/fio/sc-$fs-$c-$t.json")
			[ "${ios:-0}" -gt 0 ] 2>/dev/null || continue
			# perf -x,: count,unit,event,...
			awk -F, -v n="$ios" '$3 ~ /sys_enter/ && $1 ~ /^[0-9]+$/ {
				e = $3; sub(/^.*sys_enter_?/, "", e); if (e == "") e = "all"
				printf "%s\t%.2f\n", e, $1 / n }' "$out" |
			while IFS=$'\t' read -r s v; do
				sp_rec "$fs" syscalls "$c" "$t" "$s" "$v"
			done
		done
	done
}

speed_section() { # FS
	log "speed: connections"
	sp_connections "$1"
	log "speed: first writes into new clusters"
	sp_new_clusters "$1"
	log "speed: servers and fio on every CPU"
	sp_unpinned "$1"
	if [ "$PERF" = 1 ] && command -v perf >/dev/null; then
		log "speed: system calls per I/O"
		sp_syscalls "$1"
	fi
}
