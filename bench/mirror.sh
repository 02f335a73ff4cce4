# SPDX-License-Identifier: LGPL-2.1-only
# mirror.sh: the storage-migration section of the benchmark (issue 15).
# Sourced by bench.sh, whose helpers it uses (vcall, dpcall, start_plugin,
# stop_all, run_fio, one_run, record, vol_create, vol_destroy, log).
#
# One filled qcow2 volume (the matrix's) served through the datapath
# plugin; a fresh destination volume of the same size on the same SR,
# activated for another domain (7), reached at its Nbd socket directly
# (xapi's NBD proxy is not in the way here).  Per repetition:
#   off   guest writes (rw-alloc, seq-write) with no mirror: raw.tsv group
#         "mirror-off"
#   copy  Data.mirror with the guest idle, Data.stat polled every 20 ms
#         until complete: the copy's MB/s (volume size / time from the
#         call to the first complete answer) into mirror.tsv
#   on    the same guest writes while the mirror is synced, so that every
#         write goes to both sides before it is acknowledged: raw.tsv
#         group "mirror-on"
# then Data.destroy (cancels), deactivate both.  mirror.tsv: FS REP FIELD
# VALUE.

MI_TSV=$W/mirror.tsv
: >"$MI_TSV"

mi_rec() { printf '%s\t%s\t%s\t%s\n' "$@" >>"$MI_TSV"; }

# mi_dest SR KEY: attach + activate for domain 7; sets MI_REMOTE (the Nbd
# export as an nbd+unix URI)
mi_dest() {
	local args out nbd sock name pid
	args="{\"dbg\":\"bench\",\"uri\":\"ngdp://$1/$2\",\"domain\":\"7\"}"
	out=$(dpcall Datapath.attach "$args") || { log "mirror: Datapath.attach: $out"; return 1; }
	nbd=$(jq -r '.implementations[] | select(.[0] == "Nbd") | .[1].uri' <<<"$out" | head -1)
	out=$(dpcall Datapath.activate "$args") || { log "mirror: Datapath.activate: $out"; return 1; }
	pid=$(jq -r .pid "$1/.sr/active/$2.json" 2>/dev/null)
	[[ $pid =~ ^[0-9]+$ ]] && PIDS+=("$pid")
	sock=${nbd#nbd:unix:}
	name=${sock##*:exportname=}
	sock=${sock%:exportname=*}
	[ "$name" = "$nbd" ] && name=
	MI_REMOTE="nbd+unix:///$name?socket=$sock"
}
mi_dest_stop() {
	local args="{\"dbg\":\"bench\",\"uri\":\"ngdp://$1/$2\",\"domain\":\"7\"}"
	dpcall Datapath.deactivate "$args" >/dev/null
	dpcall Datapath.detach "$args" >/dev/null
}

mirror_section() {
	local fs=$1 sr=${SRP[qcow2]} src=${MAIN[qcow2]} dst rep t op out
	local t0 t1 i res ok
	if ! have_plugin || [ ! -x "$DP/Data.mirror" ]; then
		log "no datapath plugin with Data.mirror: no mirror rows"
		return 0
	fi
	for ((rep = 1; rep <= REPS; rep++)); do
		for t in rw-alloc seq-write; do
			one_run "$fs" mirror-off ngdp-uring "$t" "$rep" "$sr $src"
		done
		dst=$(vol_create "$fs" "$sr" bench-mirror-dst "$SIZE") || die "mirror destination"
		mi_dest "$sr" "$dst" || die "mirror destination not served"
		SPIDS=()
		start_plugin "$sr" "$src" uring || die "mirror source not served"
		t0=$(now_ns)
		op=$(dpcall Data.mirror "{\"dbg\":\"bench\",\"uri\":\"ngdp://$sr/$src\",\"domain\":\"0\",\"remote\":\"$MI_REMOTE\"}") ||
			die "Data.mirror: $op"
		ok=0
		for ((i = 0; i < 30000; i++)); do
			out=$(dpcall Data.stat "{\"dbg\":\"bench\",\"operation\":$op}") || break
			jq -e .failed <<<"$out" >/dev/null && break
			if jq -e .complete <<<"$out" >/dev/null; then ok=1; break; fi
			sleep 0.02
		done
		t1=$(now_ns)
		if [ $ok = 1 ]; then
			mi_rec "$fs" "$rep" copy_s "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')"
			mi_rec "$fs" "$rep" copy_mbps "$(awk -v a="$t0" -v b="$t1" -v s="$SIZE" 'BEGIN { printf "%.1f", s / ((b - a) / 1e9) / 1e6 }')"
			for t in rw-alloc seq-write; do
				res=$(run_fio "$fs-mirror-on-$t-$rep" "$t" "nbd:$URI") &&
					record "$fs" mirror-on ngdp-uring "$t" "$rep" "$res" &&
					log "$fs-mirror-on-$t-$rep: $res"
			done
			out=$(dpcall Data.stat "{\"dbg\":\"bench\",\"operation\":$op}")
			jq -e '.complete and (.failed | not)' <<<"$out" >/dev/null ||
				log "mirror: not in sync after the guest's writes: $out"
		else
			log "mirror: did not complete: $out"
		fi
		dpcall Data.destroy "{\"dbg\":\"bench\",\"operation\":$op}" >/dev/null
		stop_all
		mi_dest_stop "$sr" "$dst"
		vol_destroy "$fs" "$sr" "$dst"
	done
}
