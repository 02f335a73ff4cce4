#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-only
# report.sh: turn bench.sh's raw.tsv/control.tsv into results.md + chart.svg.
#
# Usage: report.sh RESULTS_DIR  (environment from bench.sh: MODE SIZE_MB
# REPS RUNTIME RAMP BACKING DP_MODE FS_LIST ELAPSED BENCH_DEVICE)
set -u
export LC_ALL=C
R=${1:?usage: report.sh RESULTS_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
MD=$R/results.md
# redrawing from a results folder: the run's settings are in run.env
# shellcheck disable=SC1091
[ -z "${MODE:-}" ] && [ -f "$R/run.env" ] && . "$R/run.env"
MED=$R/medians.tsv

# medians.tsv: fs group contender test n iops mbps lat_us p99_us cpu_us
# metric_min metric_max fio_cpu_percent machine_busy_percent (metric: MB/s for seq-*, IOPS
# otherwise)
awk -F'\t' '
function med(s,   a, n, i, j, t) {
	n = split(s, a, " ")
	for (i = 2; i <= n; i++) {
		t = a[i]; j = i - 1
		while (j > 0 && a[j] + 0 > t + 0) { a[j + 1] = a[j]; j-- }
		a[j + 1] = t
	}
	if (n == 0) return "-"
	return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function mm(s, want,   a, n, i, r) {
	n = split(s, a, " "); r = a[1]
	for (i = 2; i <= n; i++)
		if ((want == "min" && a[i] + 0 < r + 0) || (want == "max" && a[i] + 0 > r + 0)) r = a[i]
	return r
}
{
	k = $1 "\t" $2 "\t" $3 "\t" $4
	if (!(k in n)) order[++no] = k
	n[k]++
	iops[k] = iops[k] " " $6; mbps[k] = mbps[k] " " $7
	lat[k] = lat[k] " " $8; p99[k] = p99[k] " " $9
	if ($10 != "-") cpu[k] = cpu[k] " " $10
	fcpu[k] = fcpu[k] " " $11
	mcpu[k] = mcpu[k] " " $12
	m = ($4 ~ /^seq/) ? $7 : $6
	metric[k] = metric[k] " " m
}
END {
	for (i = 1; i <= no; i++) {
		k = order[i]
		printf "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k, n[k], med(iops[k]),
		       med(mbps[k]), med(lat[k]), med(p99[k]),
		       (k in cpu) ? med(cpu[k]) : "-", mm(metric[k], "min"), mm(metric[k], "max"),
		       med(fcpu[k]), med(mcpu[k])
	}
}' "$R/raw.tsv" >"$MED"

# get FS GROUP CONTENDER TEST COLUMN(6=iops 7=mbps 8=lat 9=p99 10=cpu 11=min
# 12=max 13=fio cpu% 14=machine busy %)
get() {
	awk -F'\t' -v f="$1" -v g="$2" -v c="$3" -v t="$4" -v col="$5" \
		'$1 == f && $2 == g && $3 == c && $4 == t { print $col; exit }' "$MED"
}
metric_col() { case $1 in seq-*) echo 7 ;; *) echo 6 ;; esac; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || a == "-" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }
# server CPU busy % of one core = µs per I/O × I/Os per s / 1e4
busy() { awk -v c="$1" -v i="$2" 'BEGIN { if (c == "" || c == "-" || i == "") print "-"; else printf "%.0f", c * i / 1e4 }'; }
fmtn() { awk -v a="$1" 'BEGIN { if (a == "" || a == "-") print "-"; else if (a >= 1000) printf "%.0f", a; else if (a >= 10) printf "%.1f", a; else printf "%.2f", a }'; }
unit() { case $1 in seq-*) echo MB/s ;; *) echo IOPS ;; esac; }

read -r -a FSS <<<"${FS_LIST:-xfs}"
FS1=${FSS[0]}
TESTS="rr-qd1 rr-qd32 rw-fresh rw-alloc seq-read seq-write"
CONTS="limit nbd-null qemu-nbd qsd ngdp-aio ngdp-uring ngdp-raw ngdp-vhd"

desc_test() {
	case $1 in
	rr-qd1) echo "4k randread QD1" ;;
	rr-qd32) echo "4k randread QD32" ;;
	rr-qd8) echo "4k randread QD8" ;;
	rw-new) echo "4k randwrite QD32, each into a new cluster of a fresh volume" ;;
	rw-fresh) echo "4k randwrite QD32, fresh image" ;;
	rw-alloc) echo "4k randwrite QD32, allocated image" ;;
	seq-read) echo "1M seq read QD8" ;;
	seq-write) echo "1M seq write QD8" ;;
	esac
}
desc_cont() {
	case $1 in
	limit) echo "limit: fio io_uring direct=1 on a raw file" ;;
	nbd-null) echo "NBD transport ceiling: nbdkit null plugin (no I/O at all) behind the same fio nbd client" ;;
	qemu-nbd) echo "qemu-dp config: qemu-nbd qcow2 --cache=none --aio=native" ;;
	qsd) echo "qemu-storage-daemon qcow2, io_uring, O_DIRECT" ;;
	ngdp-aio) echo "ngdp qcow2, libaio" ;;
	ngdp-uring) echo "ngdp qcow2, io_uring" ;;
	ngdp-raw) echo "ngdp raw, io_uring" ;;
	ngdp-vhd) echo "ngdp VHD, io_uring" ;;
	esac
}

matrix_table() { # FS
	local fs=$1 t c v l q
	echo "| test | contender | result | mean lat µs | p99 lat µs | × limit | × qemu-dp | server CPU µs/IO | server CPU % | fio CPU % | machine CPU % | min–max |"
	echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
	for t in $TESTS; do
		local col
		col=$(metric_col "$t")
		l=$(get "$fs" matrix limit "$t" "$col")
		q=$(get "$fs" matrix qemu-nbd "$t" "$col")
		[ -n "$l$q" ] || continue
		for c in $CONTS; do
			v=$(get "$fs" matrix "$c" "$t" "$col")
			[ -n "$v" ] || continue
			echo "| $(desc_test "$t") | $c | $(fmtn "$v") $(unit "$t") | $(fmtn "$(get "$fs" matrix "$c" "$t" 8)") | $(fmtn "$(get "$fs" matrix "$c" "$t" 9)") | $(ratio "$v" "$l") | $(ratio "$v" "$q") | $(fmtn "$(get "$fs" matrix "$c" "$t" 10)") | $(busy "$(get "$fs" matrix "$c" "$t" 10)" "$(get "$fs" matrix "$c" "$t" 6)") | $(fmtn "$(get "$fs" matrix "$c" "$t" 13)") | $(fmtn "$(get "$fs" matrix "$c" "$t" 14)") | $(fmtn "$(get "$fs" matrix "$c" "$t" 11)")–$(fmtn "$(get "$fs" matrix "$c" "$t" 12)") |"
		done
	done
}

# target NAME VALUE OP THRESHOLD REFERENCE
TARGET_MISSES=0
target() {
	local verdict
	if [ -z "$2" ] || [ "$2" = - ]; then
		verdict="not measured"
	elif awk -v v="$2" -v th="$4" -v op="$3" 'BEGIN { exit !((op == ">=") ? v >= th : v <= th) }'; then
		verdict="**met**"
	else
		verdict="**MISSED**"
		TARGET_MISSES=$((TARGET_MISSES + 1))
	fi
	echo "| $1 | ${2:--} | $3 $4 | $5 | $verdict |"
}

ctl_stat() { # NAME: "median p95 n" in ms
	awk -F'\t' -v k="$1" '$1 == k { v[++n] = $2 / 1000 }
	END {
		if (!n) { print "- - 0"; exit }
		for (i = 2; i <= n; i++) { t = v[i]; j = i - 1
			while (j > 0 && v[j] > t) { v[j + 1] = v[j]; j-- } v[j + 1] = t }
		m = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
		p = v[int(0.95 * n + 0.999)]; if (p == "") p = v[n]
		printf "%.1f %.1f %d\n", m, p, n
	}' "$R/control.tsv"
}

# the coalesce section (bench/coalesce.sh): coalesce.tsv has one number a
# line, FS PART FORMAT FIELD VALUE
CO=$R/coalesce.tsv
co_get() { # FS PART FORMAT FIELD
	[ -f "$CO" ] || return 0
	awk -F'\t' -v f="$1" -v p="$2" -v k="$3" -v n="$4" \
		'$1 == f && $2 == p && $3 == k && $4 == n { print $5; exit }' "$CO"
}
mib() { awk -v a="$1" 'BEGIN { if (a == "") print "-"; else printf "%.1f", a / 1048576 }'; }
# copy rate at read r and write w MiB/s: the copy reads and writes each byte
copy_rate() { awk -v r="$1" -v w="$2" 'BEGIN { if (r + 0 <= 0 || w + 0 <= 0) print ""; else printf "%.1f", 1 / (1 / r + 1 / w) }'; }

# pair_rows GROUP-WITHOUT GROUP-WITH: the guest-write rows of an off/on
# comparison (ngdp-uring on $FS1): value without, with, ratio, server CPU
pair_rows() {
	local t col off on
	for t in rw-alloc seq-write; do
		col=$(metric_col $t)
		off=$(get "$FS1" "$1" ngdp-uring $t "$col")
		on=$(get "$FS1" "$2" ngdp-uring $t "$col")
		[ -n "$on" ] && echo "| $(desc_test $t) | $(fmtn "$off") $(unit $t) | $(fmtn "$on") $(unit $t) | $(ratio "$on" "$off") | $(fmtn "$(get "$FS1" "$1" ngdp-uring $t 10)") | $(fmtn "$(get "$FS1" "$2" ngdp-uring $t 10)") |"
	done
}


# ---------------------------------------------------------------- issue 16
SP=$R/speed.tsv
sp_get() { # FS PART CONTENDER TEST FIELD
	[ -f "$SP" ] || return 0
	awk -F'\t' -v f="$1" -v p="$2" -v c="$3" -v t="$4" -v k="$5" \
		'$1 == f && $2 == p && $3 == c && $4 == t && $5 == k { print $6; exit }' "$SP"
}
# reachable TEST COLUMN: the slower of the raw file and the NBD ceiling
reachable() { # TEST COL [GROUP]
	local l n g=${3:-matrix}
	l=$(get "$FS1" "$g" limit "$1" "$2"); n=$(get "$FS1" "$g" nbd-null "$1" "$2")
	[ -n "$l" ] && [ -n "$n" ] || return 0
	awk -v a="$l" -v b="$n" 'BEGIN { print (a < b) ? a : b }'
}
# median of the newfrac repetitions
newfrac() {
	[ -f "$SP" ] || return 0
	awk -F'\t' -v f="$FS1" '$1 == f && $2 == "newfrac" { print $6 }' "$SP" | sort -n |
		awk '{ a[NR] = $1 } END { if (NR) print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
SPEED_MISSES=0
speed_target() { # like target, counting into SPEED_MISSES
	local line
	line=$(target "$@")
	case $line in *MISSED*) SPEED_MISSES=$((SPEED_MISSES + 1)) ;; esac
	echo "$line"
}
speed_goals() {
	local c t col r q lsum
	echo "| goal | measured | goal | qemu-dp config, this run | verdict |"
	echo "|---|---|---|---|---|"
	for c in ngdp-uring ngdp-aio; do
		r=$(reachable rr-qd32 6)
		speed_target "$c 4k randread QD32 / reachable" "$(ratio "$(get "$FS1" matrix $c rr-qd32 6)" "$r")" ">=" 0.90 "$(ratio "$(get "$FS1" matrix qemu-nbd rr-qd32 6)" "$r")"
		lsum=$(awk -v a="$(get "$FS1" matrix limit rr-qd1 8)" -v b="$(get "$FS1" matrix nbd-null rr-qd1 8)" 'BEGIN { if (a != "" && b != "") print a + b }')
		speed_target "$c 4k randread QD1 mean latency / (raw file's + nbd-null's)" "$(ratio "$(get "$FS1" matrix $c rr-qd1 8)" "$lsum")" "<=" 1.10 "$(ratio "$(get "$FS1" matrix qemu-nbd rr-qd1 8)" "$lsum")"
		for t in seq-read seq-write; do
			r=$(reachable $t 7)
			speed_target "$c $(desc_test $t) / reachable" "$(ratio "$(get "$FS1" matrix $c $t 7)" "$r")" ">=" 0.90 "$(ratio "$(get "$FS1" matrix qemu-nbd $t 7)" "$r")"
		done
		q=$(get "$FS1" new4g limit rw-new 6)
		speed_target "$c 4k randwrite QD32 into new clusters of a fresh ${NEW_MB:-?} MiB volume / raw file" "$(ratio "$(get "$FS1" new4g $c rw-new 6)" "$q")" ">=" 0.80 "$(ratio "$(get "$FS1" new4g qemu-nbd rw-new 6)" "$q")"
	done
	if [ -n "$(get "$FS1" chain11 ngdp-uring rr-qd32 6)" ]; then
		speed_target "ngdp-uring 4k randread QD32: 11-deep chain / depth 1" \
			"$(ratio "$(get "$FS1" chain11 ngdp-uring rr-qd32 6)" "$(get "$FS1" chain1 ngdp-uring rr-qd32 6)")" ">=" 0.95 \
			"$(ratio "$(get "$FS1" chain11 qemu-nbd rr-qd32 6)" "$(get "$FS1" chain1 qemu-nbd rr-qd32 6)")"
	fi
	for t in rr-qd1 rr-qd32 rw-fresh rw-alloc seq-read seq-write; do
		col=$(metric_col $t)
		speed_target "libaio / io_uring, $(desc_test $t)" "$(ratio "$(get "$FS1" matrix ngdp-aio $t "$col")" "$(get "$FS1" matrix ngdp-uring $t "$col")")" ">=" 0.95 "-"
	done
	for c in ngdp-uring ngdp-aio; do
		local one four m cpu1 cpu4 rr cr verdict
		one=$(get "$FS1" conn1 $c rr-qd32 6); four=$(get "$FS1" conn4 $c rr-qd8 6)
		[ -n "$one" ] && [ -n "$four" ] || continue
		m=$(get "$FS1" conn4 $c rr-qd8 14)
		cpu1=$(get "$FS1" conn1 $c rr-qd32 10); cpu4=$(get "$FS1" conn4 $c rr-qd8 10)
		rr=$(ratio "$four" "$one"); cr=$(ratio "$cpu4" "$cpu1")
		if awk -v r="$rr" -v m="$m" -v c="$cr" 'BEGIN { exit !((r >= 1.3 || m >= 95) && c != "-" && c <= 1.05) }'; then
			verdict="**met**"
		else
			verdict="**MISSED**"; SPEED_MISSES=$((SPEED_MISSES + 1))
		fi
		echo "| $c 4k randread, 4 connections × QD8 / 1 connection × QD32 (machine CPU %, server CPU per I/O 4 / 1) | $rr ($(fmtn "$m") %, $cr) | >= 1.3 or both CPUs busy (>= 95 %), CPU per I/O <= 1.05 | $(ratio "$(get "$FS1" conn4 qemu-nbd rr-qd8 6)" "$(get "$FS1" conn1 qemu-nbd rr-qd32 6)") | $verdict |"
	done
	local smax
	smax=$(awk -F'\t' '$2 ~ /^scale/ { d = substr($2, 6) + 0; if (d > m) m = d } END { print m + 0 }' "$MED")
	if [ "$smax" -gt 1 ]; then
		for t in rr-qd32 seq-read; do
			col=$(metric_col $t)
			speed_target "ngdp-uring $(desc_test $t): $smax volumes / 1 volume (aggregate; the device's own, fio on the image files: $(ratio "$(get "$FS1" "scale$smax" limit $t "$col")" "$(get "$FS1" scale1 limit $t "$col")"))" \
				"$(ratio "$(get "$FS1" "scale$smax" ngdp-uring $t "$col")" "$(get "$FS1" scale1 ngdp-uring $t "$col")")" ">=" 1.00 \
				"$(ratio "$(get "$FS1" "scale$smax" qemu-nbd $t "$col")" "$(get "$FS1" scale1 qemu-nbd $t "$col")")"
		done
	fi
	if [ -n "$(get "$FS1" unpin1 ngdp-uring seq-write 7)" ]; then
		for c in ngdp-uring ngdp-aio; do
			for t in rr-qd32 seq-read seq-write; do
				col=$(metric_col $t)
				speed_target "$c $(desc_test $t) / reachable, servers and fio on every CPU" \
					"$(ratio "$(get "$FS1" unpin1 $c $t "$col")" "$(reachable $t "$col" unpin1)")" ">=" 0.90 "-"
			done
		done
		for t in rr-qd32 seq-read; do
			col=$(metric_col $t)
			speed_target "ngdp-uring $(desc_test $t): 4 volumes / 1 volume (aggregate; the device's own: $(ratio "$(get "$FS1" unpin4 limit $t "$col")" "$(get "$FS1" unpin1 limit $t "$col")")), servers and fio on every CPU" \
				"$(ratio "$(get "$FS1" unpin4 ngdp-uring $t "$col")" "$(get "$FS1" unpin1 ngdp-uring $t "$col")")" ">=" 1.00 "-"
		done
	fi
	if [ -n "$(get "$FS1" ring blkif-uring rr-qd32 6)" ]; then
		for c in blkif-uring blkif-aio; do
			speed_target "ngdp $c: blkif ring over shared memory, 4k randread QD32 / raw file (issue 17; NBD in the same run: $(ratio "$(get "$FS1" ring ngdp-uring rr-qd32 6)" "$(get "$FS1" ring limit rr-qd32 6)"))" \
				"$(ratio "$(get "$FS1" ring $c rr-qd32 6)" "$(get "$FS1" ring limit rr-qd32 6)")" ">=" 0.85 "-"
		done
	fi
	echo
	echo "Reachable = the slower of the raw file (limit) and \`nbdkit null\` behind the same fio NBD client (nbd-null) on the same test; at QD1 the two latencies add up. New clusters: a fresh ${NEW_MB:-?} MiB volume per run (\`Volume.create\`; the limit: a fresh sparse raw file), ${NEW_IO_MB:-?} MiB of 4k writes at QD32, each at the start of a 64 KiB cluster (fio \`blockalign=64k\`); $(awk -v f="$(newfrac)" 'BEGIN { if (f == "") print "the share of writes that found a new cluster was not measured"; else printf "%.0f %% of the writes found a new cluster (allocated clusters after the ngdp-uring run, from qemu-img map, / writes)", f * 100 }'). 4 connections: 4 fio jobs on one export, the way the kernel NBD client spreads a device's queue. Speed goals missed: $SPEED_MISSES."
}
# the run's (bench.sh, run.env); else now and this checkout
commit=${RUN_COMMIT:-$(git -C "$TOP" rev-parse --short HEAD 2>/dev/null || echo unknown)}
[ -n "${RUN_COMMIT:-}" ] || git -C "$TOP" diff --quiet HEAD -- src include plugins 2>/dev/null ||
	commit="$commit + uncommitted changes in src/"
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)

{
echo "# xapi-storage-ng datapath benchmark results"
echo
echo "- Date: ${RUN_DATE:-$(date -u '+%Y-%m-%d %H:%M UTC')}; commit $commit"
echo "- Machine: $cpu, $(nproc) CPUs, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM; kernel $(uname -r); $(. /etc/os-release && echo "$PRETTY_NAME")"
echo "- Tools: $(fio --version), $(qemu-nbd --version | head -1)"
echo "- Mode **$MODE**: ${SIZE_MB} MiB images, $REPS repetitions (median shown), ${RUNTIME} s runs after a ${RAMP} s ramp; fresh-image writes: a fixed $((SIZE_MB / 4)) MiB of 4k writes"
echo "- Backing: ${BENCH_DEVICE:-loop devices (losetup --direct-io=on) on $BACKING files}; filesystems: $FS_LIST (full matrix on $FS1, subset on the others)"
echo "- Our datapath started by: $DP_MODE"
echo "- Servers pinned to CPU 0 (taskset -c 0), fio to CPU 1 (except the speed section's rows \"on every CPU\"); fio ioengine=nbd on a Unix socket for every server"
echo "- Whole run: $((ELAPSED / 60)) min $((ELAPSED % 60)) s. Command: \`${BENCH_CMD:-make bench}\`"
echo
echo "![chart](chart.svg)"
echo
echo "## Targets (ratios from this run, $FS1)"
echo
echo "| target | measured | goal | qemu-dp config, this run | verdict |"
echo "|---|---|---|---|---|"
for c in ngdp-uring ngdp-aio; do
	l=$(get "$FS1" matrix limit rr-qd32 6); q=$(get "$FS1" matrix qemu-nbd rr-qd32 6)
	target "$c qcow2 4k randread QD32 / limit" "$(ratio "$(get "$FS1" matrix $c rr-qd32 6)" "$l")" ">=" 0.90 "$(ratio "$q" "$l")"
	l=$(get "$FS1" matrix limit rw-fresh 6); q=$(get "$FS1" matrix qemu-nbd rw-fresh 6)
	target "$c qcow2 4k randwrite QD32 fresh / limit" "$(ratio "$(get "$FS1" matrix $c rw-fresh 6)" "$l")" ">=" 0.80 "$(ratio "$q" "$l")"
	for t in seq-read seq-write; do
		l=$(get "$FS1" matrix limit $t 7); q=$(get "$FS1" matrix qemu-nbd $t 7)
		target "$c qcow2 $(desc_test $t) / limit" "$(ratio "$(get "$FS1" matrix $c $t 7)" "$l")" ">=" 0.85 "$(ratio "$q" "$l")"
	done
	l=$(get "$FS1" matrix limit rr-qd1 8); q=$(get "$FS1" matrix qemu-nbd rr-qd1 8)
	target "$c qcow2 4k randread QD1 mean latency / limit" "$(ratio "$(get "$FS1" matrix $c rr-qd1 8)" "$l")" "<=" 1.3 "$(ratio "$q" "$l")"
done
maxd=$(awk -F'\t' '$2 ~ /^chain/ { d = substr($2, 6) + 0; if (d > m) m = d } END { print m + 0 }' "$MED")
for t in rr-qd32 rr-qd1; do
	target "ngdp-uring $(desc_test $t): chain depth $maxd / depth 1" \
		"$(ratio "$(get "$FS1" chain$maxd ngdp-uring $t 6)" "$(get "$FS1" chain1 ngdp-uring $t 6)")" ">=" 0.95 \
		"$(ratio "$(get "$FS1" chain$maxd qemu-nbd $t 6)" "$(get "$FS1" chain1 qemu-nbd $t 6)")"
done
read -r m p n < <(ctl_stat Volume.snapshot)
target "Volume.snapshot median (ms)" "$m" "<=" 20 "-"
lsmax=$(awk -F'\t' '$1 ~ /^SR.ls\(/ { c = substr($1, 7) + 0; if (c > m) m = c } END { print m + 0 }' "$R/control.tsv")
read -r m p n < <(ctl_stat "SR.ls($lsmax)")
target "SR.ls with $lsmax volumes, median (ms)" "$m" "<=" 1000 "-"
[ "$lsmax" -lt 10000 ] && echo "| SR.ls with 10,000 volumes | - | <= 1000 ms | - | not measured in this mode |"
# the live coalesce row only when this run measured it
co_live_iops=$(get "$FS1" colive ngdp-coalescing rr-qd32 6)
if [ -n "$co_live_iops" ]; then
	# repetitions in which the merge ran until fio ended, of all
	read -r co_nrun co_nrep < <(awk -F'\t' -v f="$FS1" '$1 == f && $2 == "live" && $4 == "running_at_end" { n++; r += $5 }
		END { print r + 0, n + 0 }' "$CO")
	co_name="ngdp-uring qcow2 4k randread QD32 during a live coalesce / without"
	co_r=$(ratio "$co_live_iops" "$(get "$FS1" colive ngdp-uring rr-qd32 6)")
	if [ "$co_nrun" = "$co_nrep" ]; then
		target "$co_name" "$co_r" ">=" 0.80 "-"
	else
		echo "| $co_name | $co_r | >= 0.80 | - | not valid: the merge ended before fio did in $((co_nrep - co_nrun)) of $co_nrep repetitions |"
	fi
fi
for fmt in qcow2 vhd; do
	n=$(co_get "$FS1" cycles $fmt cycles)
	[ -n "$n" ] || continue
	target "$fmt: chain length after $n backup cycles (images)" "$(co_get "$FS1" cycles $fmt chain)" "<=" 2 "-"
	target "$fmt: SR usage after $n backup cycles / fresh copy" \
		"$(ratio "$(co_get "$FS1" cycles $fmt srstat_bytes)" "$(co_get "$FS1" cycles $fmt fresh_bytes)")" "<=" 1.5 "-"
done
echo
echo "Ratios: × limit = our result / the limit's (for QD1 latency: our mean latency / the limit's); the goal column is the issue's target. Targets missed: $TARGET_MISSES. The analysis of the committed run (what the misses are made of and what would close them) is in bench/README.md, section \"Analysis\"."
echo
if [ -n "$(get "$FS1" conn1 ngdp-uring rr-qd32 6)$(get "$FS1" new4g ngdp-uring rw-new 6)$(get "$FS1" ring blkif-uring rr-qd32 6)" ]; then
	echo "### Speed goals (issues 16 and 17, $FS1)"
	echo
	speed_goals
	echo
fi
echo "### Where the time goes (ngdp-uring qcow2, $FS1)"
echo
echo "| test | × limit | × transport ceiling (nbd-null) | server CPU µs/IO (qemu-nbd) | server CPU % | fio CPU % | machine CPU % | bound by |"
echo "|---|---|---|---|---|---|---|---|"
for t in $TESTS; do
	col=$(metric_col "$t")
	v=$(get "$FS1" matrix ngdp-uring "$t" "$col")
	[ -n "$v" ] || continue
	cu=$(get "$FS1" matrix ngdp-uring "$t" 10)
	sb=$(busy "$cu" "$(get "$FS1" matrix ngdp-uring "$t" 6)")
	fc=$(get "$FS1" matrix ngdp-uring "$t" 13)
	mc=$(get "$FS1" matrix ngdp-uring "$t" 14)
	nn=$(ratio "$v" "$(get "$FS1" matrix nbd-null "$t" "$col")")
	why=$(awk -v s="$sb" -v f="$fc" -v m="$mc" -v n="$nn" 'BEGIN {
		if (n != "-" && n + 0 >= 0.85) print "the NBD transport: within 15 % of a server that does no I/O"
		else if (f + 0 >= 85) print "the client: fio (libnbd) uses all of CPU 1"
		else if (s != "-" && s + 0 >= 85) print "the server: CPU 0 is saturated"
		else if (m + 0 >= 85) print "the machine: both CPUs busy (server, fio, loop workers)"
		else print "latency: no CPU saturated (round trips between fio, server and device)" }')
	echo "| $(desc_test "$t") | $(ratio "$v" "$(get "$FS1" matrix limit "$t" "$col")") | $nn | $(fmtn "$cu") ($(fmtn "$(get "$FS1" matrix qemu-nbd "$t" 10)")) | $sb | $(fmtn "$fc") | $(fmtn "$mc") | $why |"
done
echo
for fs in "${FSS[@]}"; do
	echo "## I/O matrix on $fs"
	echo
	matrix_table "$fs"
	echo
done
echo "Contenders: $(for c in $CONTS; do printf '%s = %s; ' "$c" "$(desc_cont $c)"; done)"
echo "\"× qemu-dp\" is the ratio to qemu-nbd with qemu-dp's options on the same image. Server CPU µs/IO = (utime+stime of the server process(es), from /proc/PID/stat, from the end of the ramp to the end of the run) / I/Os completed; the limit has no server. 100 Hz ticks: short runs make it coarse. Server CPU % = share of CPU 0 the server kept busy (µs/IO × IOPS); fio CPU % = fio's own usr+sys on CPU 1 (libnbd client or io_uring submitter): near 100 % means the client, not the server, sets the pace. Machine CPU % = both CPUs' busy time (/proc/stat) over the run: it includes the loop devices' kernel workers and anything else running on the machine."
echo
echo "## Scale: volumes served at once ($FS1, qcow2, one server per volume, all servers on CPU 0)"
echo
echo "| test | contender | volumes | aggregate | × 1 volume | × limit | server CPU µs/IO | server CPU % | fio CPU % (all jobs) | machine CPU % |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for t in rr-qd32 seq-read; do
	for c in limit qemu-nbd ngdp-uring; do
		col=$(metric_col $t)
		one=$(get "$FS1" scale1 $c $t "$col")
		for g in $(awk -F'\t' '$2 ~ /^scale/ { print substr($2, 6) }' "$MED" | sort -nu); do
			v=$(get "$FS1" "scale$g" $c $t "$col")
			[ -n "$v" ] || continue
			fc=$(awk -v a="$(get "$FS1" "scale$g" $c $t 13)" -v n="$g" 'BEGIN { if (a == "" || a == "-") print "-"; else printf "%.1f", a * n }')
			echo "| $(desc_test $t) | $c | $g | $(fmtn "$v") $(unit $t) | $(ratio "$v" "$one") | $(ratio "$v" "$(get "$FS1" "scale$g" limit $t "$col")") | $(fmtn "$(get "$FS1" "scale$g" $c $t 10)") | $(busy "$(get "$FS1" "scale$g" $c $t 10)" "$(get "$FS1" "scale$g" $c $t 6)") | $fc | $(fmtn "$(get "$FS1" "scale$g" $c $t 14)") |"
		done
	done
done
echo
echo "Limit: fio (io_uring, O_DIRECT, on CPU 1) reads the same volumes' image files itself, one job per file: the device's own rate for that many streams. Server CPU % is the share of CPU 0 all the servers kept busy; fio CPU % (all jobs) is fio's usr+sys on CPU 1, summed over its jobs."
echo
# cpu_get FS GROUP CONTENDER TEST CPU: that CPU's median busy % over the
# repetitions (cpu-each.tsv: FS GROUP CONTENDER TEST REP CPU0% CPU1% ...)
cpu_get() {
	[ -f "$R/cpu-each.tsv" ] || return 0
	awk -F'\t' -v f="$1" -v g="$2" -v c="$3" -v t="$4" -v k="$5" '
		$1 == f && $2 == g && $3 == c && $4 == t && (6 + k) <= NF { v[++n] = $(6 + k) }
		END {
			if (!n) exit
			for (i = 2; i <= n; i++) { x = v[i]; j = i - 1
				while (j > 0 && v[j] > x) { v[j + 1] = v[j]; j-- } v[j + 1] = x }
			print (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
		}' "$R/cpu-each.tsv"
}
minus() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || a == "-") print "-"; else if (b == "" || b == "-") printf "%.0f", a; else printf "%.0f", a - b }'; }
smax=$(awk -F'\t' '$2 ~ /^scale/ { d = substr($2, 6) + 0; if (d > m) m = d } END { print m + 0 }' "$MED")
if [ -n "$(cpu_get "$FS1" matrix ngdp-uring seq-write 0)$(cpu_get "$FS1" "scale$smax" ngdp-uring seq-read 0)" ]; then
	echo "## Where each CPU was busy ($FS1, pinned: servers on CPU 0, fio on CPU 1)"
	echo
	echo "| test | contender | result | CPU 0 busy % | server % | rest of CPU 0 % | CPU 1 busy % | fio % | rest of CPU 1 % |"
	echo "|---|---|---|---|---|---|---|---|---|"
	groups="matrix scale1"
	[ "$smax" -gt 1 ] && groups="$groups scale$smax"
	for g in $groups; do
		for t in seq-write seq-read rr-qd32; do
			col=$(metric_col $t)
			for c in limit nbd-null qemu-nbd ngdp-aio ngdp-uring; do
				v=$(get "$FS1" "$g" $c $t "$col")
				c0=$(cpu_get "$FS1" "$g" $c $t 0)
				[ -n "$v" ] && [ -n "$c0" ] || continue
				c1=$(cpu_get "$FS1" "$g" $c $t 1)
				sv=$(busy "$(get "$FS1" "$g" $c $t 10)" "$(get "$FS1" "$g" $c $t 6)")
				n=1; [ "$g" = matrix ] || n=${g#scale}
				fc=$(awk -v a="$(get "$FS1" "$g" $c $t 13)" -v n="$n" 'BEGIN { if (a == "" || a == "-") print "-"; else printf "%.0f", a * n }')
				vols=
				[ "$g" = matrix ] || vols=", $n volume$([ "$n" -gt 1 ] && echo s), scale section"
				echo "| $(desc_test $t)$vols | $c | $(fmtn "$v") $(unit $t) | $(minus "$c0" 0) | $sv | $(minus "$c0" "$sv") | $(minus "$c1" 0) | $fc | $(minus "$c1" "$fc") |"
			done
		done
	done
	echo
	echo "Busy % of each CPU from /proc/stat over the run (after the ramp). Server % and fio % are those processes' own CPU time (fio's summed over its jobs); the rest of a CPU is everything else that ran there: the loop device's kernel workers (on a RAM-backed loop device, they copy every byte the device reads or writes), interrupts and softirqs, and any other process."
	echo
fi
if [ -s "$R/memcopy.tsv" ]; then
	echo "## Memory copy rate (bench/memcopy, on CPU 0)"
	echo
	echo "| working set (sources, and as much in destinations) | GB/s | µs per MiB |"
	echo "|---|---|---|"
	awk -F'\t' '{ printf "| %s MiB | %s | %.0f |\n", $1, $2, 1048.576 / $2 }' "$R/memcopy.tsv"
	echo
	echo "A 1 MiB request over NBD is copied more than once on its way (the device into the server's buffer, the buffer into the socket, the socket into the client), and a read straight from the file once. The rate of those copies falls once the bytes in flight (requests × size × copies) no longer fit in the caches."
	echo
fi
if [ -n "$(get "$FS1" conn1 ngdp-uring rr-qd32 6)" ]; then
	echo "## Connections: one export, 1 connection × QD32 against 4 connections × QD8 ($FS1, qcow2; bench/speed.sh)"
	echo
	echo "| contender | 1 connection IOPS | 4 connections IOPS | 4 / 1 | server CPU µs/IO 1 / 4 | server CPU % 1 / 4 | fio CPU % 1 / 4 | machine CPU % 1 / 4 |"
	echo "|---|---|---|---|---|---|---|---|"
	for c in nbd-null qemu-nbd ngdp-aio ngdp-uring; do
		one=$(get "$FS1" conn1 $c rr-qd32 6); four=$(get "$FS1" conn4 $c rr-qd8 6)
		[ -n "$one" ] || continue
		echo "| $c | $(fmtn "$one") | $(fmtn "$four") | $(ratio "$four" "$one") | $(fmtn "$(get "$FS1" conn1 $c rr-qd32 10)") / $(fmtn "$(get "$FS1" conn4 $c rr-qd8 10)") | $(busy "$(get "$FS1" conn1 $c rr-qd32 10)" "$one") / $(busy "$(get "$FS1" conn4 $c rr-qd8 10)" "$four") | $(fmtn "$(get "$FS1" conn1 $c rr-qd32 13)") / $(fmtn "$(get "$FS1" conn4 $c rr-qd8 13)") | $(fmtn "$(get "$FS1" conn1 $c rr-qd32 14)") / $(fmtn "$(get "$FS1" conn4 $c rr-qd8 14)") |"
	done
	echo
	echo "Each server on CPU 0, the fio jobs (one connection each) on CPU 1; fio CPU % is per job (group reporting averages the jobs). ngdp-server serves every connection from one thread; it advertises NBD_FLAG_CAN_MULTI_CONN because a flush on any connection flushes the one image all of them write (its writes are in the same process and file)."
	echo
fi
if [ -n "$(get "$FS1" unpin1 ngdp-uring seq-write 7)" ]; then
	echo "## Servers and fio on every CPU ($FS1, qcow2; bench/speed.sh)"
	echo
	echo "The rest of the bench pins every server to CPU 0 and fio to CPU 1, so that every contender gets the same CPU. A dom0 pins nothing: here servers and fio may run on CPUs ${ALL_CPUS:-0-1}."
	echo
	echo "| test | volumes | contender | result | × limit | × nbd-null | × reachable | server CPU µs/IO | machine CPU % | pinned result (matrix or scale) |"
	echo "|---|---|---|---|---|---|---|---|---|---|"
	for t in seq-write seq-read rr-qd32; do
		col=$(metric_col $t)
		for c in limit nbd-null ngdp-aio ngdp-uring; do
			v=$(get "$FS1" unpin1 $c $t "$col")
			[ -n "$v" ] || continue
			echo "| $(desc_test $t) | 1 | $c | $(fmtn "$v") $(unit $t) | $(ratio "$v" "$(get "$FS1" unpin1 limit $t "$col")") | $(ratio "$v" "$(get "$FS1" unpin1 nbd-null $t "$col")") | $(ratio "$v" "$(reachable $t "$col" unpin1)") | $(fmtn "$(get "$FS1" unpin1 $c $t 10)") | $(fmtn "$(get "$FS1" unpin1 $c $t 14)") | $(fmtn "$(get "$FS1" matrix $c $t "$col")") |"
		done
		for c in limit ngdp-uring; do
			v=$(get "$FS1" unpin4 $c $t "$col")
			[ -n "$v" ] || continue
			echo "| $(desc_test $t) | 4 | $c | $(fmtn "$v") $(unit $t) | $(ratio "$v" "$(get "$FS1" unpin4 limit $t "$col")") | - | - | $(fmtn "$(get "$FS1" unpin4 $c $t 10)") | $(fmtn "$(get "$FS1" unpin4 $c $t 14)") | $(fmtn "$(get "$FS1" scale4 $c $t "$col")") |"
		done
	done
	echo
	echo "4 volumes: one server per volume and one fio job per volume; the limit reads the 4 volumes' image files directly. × limit for 4 volumes is against the limit on 4 files."
	echo
fi
if [ -n "$(get "$FS1" ring blkif-uring rr-qd32 6)" ]; then
	echo "## The blkif ring over shared memory ($FS1, qcow2; bench/ring.sh)"
	echo
	echo "| test | contender | IOPS | MB/s | mean lat µs | × raw file | server CPU µs/IO | client CPU % | machine CPU % | min–max IOPS |"
	echo "|---|---|---|---|---|---|---|---|---|---|"
	for t in rr-qd32 seq-read; do
		l=$(get "$FS1" ring limit $t 6)
		for c in limit blkif-uring blkif-aio ngdp-uring; do
			v=$(get "$FS1" ring $c $t 6)
			[ -n "$v" ] || continue
			echo "| $t | $c | $(fmtn "$v") | $(fmtn "$(get "$FS1" ring $c $t 7)") | $(fmtn "$(get "$FS1" ring $c $t 8)") | $(ratio "$v" "$l") | $(fmtn "$(get "$FS1" ring $c $t 10)") | $(fmtn "$(get "$FS1" ring $c $t 13)") | $(fmtn "$(get "$FS1" ring $c $t 14)") | $(fmtn "$(get "$FS1" ring $c $t 11)")–$(fmtn "$(get "$FS1" ring $c $t 12)") |"
		done
	done
	echo
	echo "rr-qd32: 4k random reads at QD32 over the whole filled volume; seq-read: 1 MiB sequential reads at QD8 (INDIRECT requests of 256 whole pages). blkif-uring/blkif-aio: ngdp-server (io_uring / libaio engine) serving the volume to tests/server/blkif-front over \`--blkif-shm\`: the Xen blkif ring and its data pages in shared memory, eventfds in place of the event channel, the same ring code a guest's ring would use; reads land straight in the ring's data pages (O_DIRECT into them, no copy). ngdp-uring: the same server over NBD to fio's NBD client. limit: fio io_uring O_DIRECT on the raw file. Server on CPU 0, the frontend and fio on CPU 1; client CPU %: the frontend's or fio's user+system time over its run."
	echo
fi
if [ -n "$(get "$FS1" new4g ngdp-uring rw-new 6)" ]; then
	echo "## First writes into new clusters ($FS1; bench/speed.sh)"
	echo
	echo "| contender | IOPS | mean lat µs | p99 lat µs | × raw file | × qemu-dp | server CPU µs/IO | min–max |"
	echo "|---|---|---|---|---|---|---|---|"
	l=$(get "$FS1" new4g limit rw-new 6); q=$(get "$FS1" new4g qemu-nbd rw-new 6)
	for c in limit qemu-nbd ngdp-aio ngdp-uring; do
		v=$(get "$FS1" new4g $c rw-new 6)
		[ -n "$v" ] || continue
		echo "| $c | $(fmtn "$v") | $(fmtn "$(get "$FS1" new4g $c rw-new 8)") | $(fmtn "$(get "$FS1" new4g $c rw-new 9)") | $(ratio "$v" "$l") | $(ratio "$v" "$q") | $(fmtn "$(get "$FS1" new4g $c rw-new 10)") | $(fmtn "$(get "$FS1" new4g $c rw-new 11)")–$(fmtn "$(get "$FS1" new4g $c rw-new 12)") |"
	done
	echo
	echo "A fresh ${NEW_MB:-?} MiB qcow2 volume (\`Volume.create\`: 64 KiB clusters) for each run, ${NEW_IO_MB:-?} MiB of 4k random writes at QD32, each at the start of a cluster (fio \`blockalign=64k\`, no random map: some land on a cluster written before); the raw file is a fresh sparse file of the same size, so the filesystem allocates its blocks too. Share of the writes that found a new cluster (ngdp-uring runs): $(newfrac)."
	echo
fi
if awk -F'\t' '$2 == "syscalls" { f = 1 } END { exit !f }' "$SP" 2>/dev/null; then
	echo "## System calls per I/O ($FS1, qcow2; perf stat tracepoints on the server, ${RUNTIME} s after the ramp)"
	echo
	echo "| contender | test | all | epoll_wait | recvfrom | recvmsg | writev | sendmsg | sendto | read | write | io_uring_enter | io_submit | io_getevents | other |"
	echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
	for c in nbd-null ngdp-aio ngdp-uring; do
		for t in rr-qd1 rr-qd32 seq-read seq-write; do
			[ -n "$(sp_get "$FS1" syscalls $c $t all)" ] || continue
			printf '| %s | %s |' "$c" "$(desc_test $t)"
			o=$(sp_get "$FS1" syscalls $c $t all)
			for k in all epoll_wait recvfrom recvmsg writev sendmsg sendto read write io_uring_enter io_submit io_getevents; do
				v=$(sp_get "$FS1" syscalls $c $t $k)
				printf ' %s |' "${v:--}"
				[ $k = all ] || o=$(awk -v a="$o" -v b="${v:-0}" 'BEGIN { printf "%.2f", a - b }')
			done
			echo " $o |"
		done
	done
	echo
	echo "nbd-null is nbdkit (several threads: its counts include every thread's). A 1 MiB request moves through the socket in several calls: the kernel's Unix socket buffer (set by the sender) holds less than 1 MiB."
	echo
fi
echo "## Reads through backing chains ($FS1, qcow2: filled base, empty leaves made by Volume.snapshot)"
echo
echo "| test | contender | depth | IOPS | mean lat µs | × depth 1 | server CPU µs/IO |"
echo "|---|---|---|---|---|---|---|"
for t in rr-qd1 rr-qd32; do
	for c in qemu-nbd ngdp-uring; do
		one=$(get "$FS1" chain1 $c $t 6)
		for d in $(awk -F'\t' '$2 ~ /^chain/ { print substr($2, 6) }' "$MED" | sort -nu); do
			v=$(get "$FS1" "chain$d" $c $t 6)
			[ -n "$v" ] && echo "| $(desc_test $t) | $c | $d | $(fmtn "$v") | $(fmtn "$(get "$FS1" "chain$d" $c $t 8)") | $(ratio "$v" "$one") | $(fmtn "$(get "$FS1" "chain$d" $c $t 10)") |"
		done
	done
done
echo
if awk -F'\t' '$2 == "cbt-on" { f = 1 } END { exit !f }' "$MED"; then
	echo "## Changed block tracking ($FS1, qcow2, ngdp-uring through the plugin)"
	echo
	echo "| test | CBT off | CBT on | on / off | server CPU µs/IO off | on |"
	echo "|---|---|---|---|---|---|"
	pair_rows cbt-off cbt-on
	echo
	echo "One filled volume (\`Volume.create\`, then random data), served by ngdp-server started by \`Datapath.activate\`; \`Volume.enable_cbt\` before each CBT-on run and \`Volume.disable_cbt\` before each CBT-off run, alternating within each repetition. With CBT on, the server sets one bit per 64 KiB block in memory for every write and stores the bitmap (a qcow2 persistent dirty bitmap) when it opens it (flagged in use), at each suspend and at its clean stop."
	echo
fi
MI=$R/mirror.tsv
if [ -s "$MI" ] || awk -F'\t' '$2 == "mirror-on" { f = 1 } END { exit !f }' "$MED"; then
	echo "## Storage migration: the mirror ($FS1, qcow2, ngdp-uring through the plugin; bench/mirror.sh)"
	echo
	cs=$(awk -F'\t' -v f="$FS1" '$1 == f && $3 == "copy_mbps" { print $4 }' "$MI" 2>/dev/null | sort -n | awk '{ a[NR] = $1 } END { if (NR) print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
	lw=$(get "$FS1" matrix limit seq-write 7)
	lr=$(get "$FS1" matrix limit seq-read 7)
	echo "Background copy of the ${SIZE_MB} MiB filled volume, guest idle: **$(fmtn "$cs") MB/s** (median of $(awk -F'\t' -v f="$FS1" '$1 == f && $3 == "copy_mbps"' "$MI" 2>/dev/null | wc -l)), $(ratio "$cs" "$(copy_rate "$lr" "$lw")")× the limit's copy rate (1 / (1/seq-read + 1/seq-write) of the raw file: $(fmtn "$(copy_rate "$lr" "$lw")") MB/s)."
	echo
	echo "| guest test | no mirror | mirror synced | with / without | server CPU µs/IO without | with |"
	echo "|---|---|---|---|---|---|"
	pair_rows mirror-off mirror-on
	echo
	echo "The destination is a fresh volume of the same size on the same SR, activated for another domain, reached at its own Nbd socket (on a real migration, xapi's NBD proxy and the network are between the two). Copy: \`Data.mirror\` with the guest idle, \`Data.stat\` polled every 20 ms until complete; the time runs from the call to the first complete answer. Mirror synced: the same fio runs while the job is synced, so every write, zero and discard goes to both servers before the guest's reply; the server CPU column counts the source server only."
	echo
fi
if [ -s "$CO" ]; then
	echo "## Coalesce ($FS1; bench/coalesce.sh)"
	echo
	echo "### SR usage after backup cycles (offline coalesce)"
	echo
	echo "| format | volume MiB | cycles × region MiB | chain after (images) | SR.stat used MiB | SR's images (du) MiB | fresh copy (du) MiB | SR.stat / fresh | images / fresh | waiting for the jobs, s |"
	echo "|---|---|---|---|---|---|---|---|---|---|"
	for fmt in qcow2 vhd; do
		n=$(co_get "$FS1" cycles $fmt cycles)
		[ -n "$n" ] || continue
		f=$(co_get "$FS1" cycles $fmt fresh_bytes)
		st=$(co_get "$FS1" cycles $fmt srstat_bytes)
		im=$(co_get "$FS1" cycles $fmt images_bytes)
		echo "| $fmt | $(co_get "$FS1" cycles $fmt size_mib) | $n × $(co_get "$FS1" cycles $fmt region_mib) | $(co_get "$FS1" cycles $fmt chain) | $(mib "$st") | $(mib "$im") | $(mib "$f") | $(ratio "$st" "$f") | $(ratio "$im" "$f") | $(co_get "$FS1" cycles $fmt wait_s) |"
	done
	echo
	echo "Each cycle is what a backup does to an inactive volume: \`Volume.snapshot\`, new random data over the same region at offset 0 (written into the volume's image file with ngdp-imgio), \`Volume.destroy\` of the snapshot, then a wait until the coalesce job that call started (\`<plugin> --coalesce-job <SR>\`, polled in /proc every 10 ms) has exited. The volume was filled with random data first. Chain length: images from the volume's record down its parents' records. SR.stat used = total_space - free_space, and the SR's images = \`du\` of its images folder, both minus the same measure on the SR before the volume was created. Fresh copy: the volume's chain copied into one new image of the same format (qcow2: same cluster size) on the same filesystem, its \`du\`; made by $(for fmt in qcow2 vhd; do v=$(co_get "$FS1" cycles $fmt fresh_via); [ -n "$v" ] && printf '%s: %s; ' "$fmt" "$v"; done | sed 's/; $//')."
	echo
	echo "### Merge throughput (offline coalesce job)"
	echo
	l8=$(copy_rate "$(co_get "$FS1" limit qd8 read_mibs)" "$(co_get "$FS1" limit qd8 write_mibs)")
	l1=$(copy_rate "$(co_get "$FS1" limit qd1 read_mibs)" "$(co_get "$FS1" limit qd1 write_mibs)")
	echo "| format | child's own data MiB | Volume.destroy → job exit, s | merge MiB/s | × limit copy QD8 | × limit copy QD1 |"
	echo "|---|---|---|---|---|---|"
	for fmt in qcow2 vhd; do
		sec=$(co_get "$FS1" merge $fmt seconds)
		[ -n "$sec" ] || continue
		own=$(co_get "$FS1" merge $fmt own_mib)
		rate=$(awk -v m="$own" -v s="$sec" 'BEGIN { printf "%.1f", m / s }')
		echo "| $fmt | $own | $sec | $rate | $(ratio "$rate" "$l8") | $(ratio "$rate" "$l1") |"
	done
	echo "| limit copy QD8 | $(co_get "$FS1" merge qcow2 own_mib) | - | ${l8:--} | 1.00 | - |"
	echo "| limit copy QD1 | $(co_get "$FS1" merge qcow2 own_mib) | - | ${l1:--} | - | 1.00 |"
	echo
	echo "Merge: a volume filled with random data, \`Volume.snapshot\`, new random data over its first N MiB (the child's own data), then \`Volume.destroy\` of the snapshot starts the job, which copies the child into its parent (docs/coalesce.md). The time runs from the start of that call to the job's exit (polled every 10 ms): the job's start, its locking, the copy, the fsync and the commit of the records. The volume's chain is checked to be 1 image after. Limit: fio \`ioengine=io_uring direct=1 bs=1M\` on a raw file of the same size on the same filesystem (written once before): a sequential read (QD8: $(co_get "$FS1" limit qd8 read_mibs) MiB/s, QD1: $(co_get "$FS1" limit qd1 read_mibs) MiB/s) and a sequential overwrite (QD8: $(co_get "$FS1" limit qd8 write_mibs) MiB/s, QD1: $(co_get "$FS1" limit qd1 write_mibs) MiB/s); a copy reads and writes every byte, so its rate is 1 / (1/read + 1/write). QD8 is the disk's limit; QD1 is what a copier that waits for each request can reach."
	echo
	if [ -n "$co_live_iops" ]; then
		echo "### Guest I/O during a live coalesce (qcow2, ngdp-server io_uring)"
		echo
		echo "| run | IOPS | mean lat µs | p99 lat µs | × without | server CPU µs/IO | server CPU % | min–max |"
		echo "|---|---|---|---|---|---|---|---|"
		b=$(get "$FS1" colive ngdp-uring rr-qd32 6)
		for c in ngdp-uring ngdp-coalescing; do
			v=$(get "$FS1" colive $c rr-qd32 6)
			[ $c = ngdp-uring ] && what="4k randread QD32, no coalesce" || what="4k randread QD32, during the live coalesce"
			echo "| $what | $(fmtn "$v") | $(fmtn "$(get "$FS1" colive $c rr-qd32 8)") | $(fmtn "$(get "$FS1" colive $c rr-qd32 9)") | $(ratio "$v" "$b") | $(fmtn "$(get "$FS1" colive $c rr-qd32 10)") | $(busy "$(get "$FS1" colive $c rr-qd32 10)" "$v") | $(fmtn "$(get "$FS1" colive $c rr-qd32 11)")–$(fmtn "$(get "$FS1" colive $c rr-qd32 12)") |"
		done
		echo
		read -r nrep nrun cop mer < <(awk -F'\t' -v f="$FS1" '$1 == f && $2 == "live" {
			if ($3 ~ /^rep/) r[$3] = 1
			if ($4 == "running_at_end") run += $5
			if ($4 == "copied_at_end") { cop += $5; nc++ }
			if ($4 == "merge_s") { mer += $5; nm++ } }
			END { n = 0; for (k in r) n++
			      printf "%d %d %.1f %.2f\n", n, run, nc ? cop / nc / 1048576 : 0, nm ? mer / nm : 0 }' "$CO")
		echo "Each repetition: a chain of two qcow2 files on the qcow2 SR's filesystem, H ($(co_get "$FS1" live qcow2 size_mib) MiB of random data, so that the merge outlasts the fio run) under an empty C, served by ngdp-server (\`--image C --engine uring --control S\`, started directly: the plugin does not start live merges yet), pinned to CPU 0 like every server, fio on CPU 1. First a fio run without a coalesce; then \`{\"op\":\"coalesce\",\"parent\":H}\` on the control socket (tests/server/ngdp-ctl) and at once the same fio run, on the same server. The merge pulls H's data down into C in 1 MiB chunks while the guest reads. The merge was still running when fio ended in $nrun of $nrep repetitions (when it was not, part of the run had no merge going on); by then it had copied $cop MiB on average, and it took $mer s on average from the op to \"done\". Afterwards C checks clean, has no backing file, and compares equal to the data H was filled with."
		echo
	fi
fi
echo "## Control path ($FS1 SR, qcow2; each call is an exec of the plugin with JSON on stdin, as xapi-storage-script does)"
echo
echo "| call | median ms | p95 ms | calls |"
echo "|---|---|---|---|"
for k in $(cut -f1 "$R/control.tsv" | awk '!s[$0]++'); do
	read -r m p n < <(ctl_stat "$k")
	echo "| $k | $m | $p | $n |"
done
have_dp=$(grep -c '^Datapath' "$R/control.tsv")
[ "$have_dp" -eq 0 ] && echo "| Datapath.attach+activate | - | - | not measured: the datapath plugin was not usable in this run (see \"started by\" above) |"
echo
echo "Volume.create-bulk(N) is the mean time per Volume.create while filling the SR for SR.ls (N creates)."
for f in "$R"/perf-*.txt; do
	[ -s "$f" ] || continue
	t=$(basename "$f" .txt); t=${t#perf-}
	echo
	echo "## Profile: ngdp-uring qcow2, $(desc_test "$t") (perf record -g -p PID, ${RUNTIME} s; self time by symbol)"
	echo
	echo '```'
	cat "$f"
	echo '```'
done
PB=$R/perf-breakdown.tsv
if [ -s "$PB" ]; then
	echo
	echo "## Where the server's CPU goes, by kernel path ($FS1, qcow2; perf record -g -p PID, inclusive)"
	echo
	# columns: each CONTENDER/TEST profiled, in file order
	mapfile -t pcols < <(awk -F'\t' '!s[$1 "/" $2]++ { print $1 "/" $2 }' "$PB")
	printf '| part |'; for k in "${pcols[@]}"; do printf ' %s %s |' "${k%%/*}" "$(desc_test "${k#*/}")"; done; echo
	printf '|---|'; for k in "${pcols[@]}"; do printf -- '---|'; done; echo
	printf '| server CPU µs/IO (matrix) |'
	for k in "${pcols[@]}"; do printf ' %s |' "$(fmtn "$(get "$FS1" matrix "${k%%/*}" "${k#*/}" 10)")"; done; echo
	for part in $(awk -F'\t' '!s[$3]++ { print $3 }' "$PB"); do
		printf '| %s |' "$part"
		for k in "${pcols[@]}"; do
			v=$(awk -F'\t' -v c="${k%%/*}" -v t="${k#*/}" -v p="$part" '$1 == c && $2 == t && $3 == p { print $4 }' "$PB")
			us=$(awk -v v="$v" -v u="$(get "$FS1" matrix "${k%%/*}" "${k#*/}" 10)" 'BEGIN { if (v == "" || u == "") print "-"; else printf "%.0f", v * u / 100 }')
			printf ' %s %% (%s µs) |' "${v:--}" "$us"
		done
		echo
	done
	echo
	echo "Share of the server process's samples whose kernel call chain passes through each path (parts overlap: a copy is part of a receive). µs = share × the matrix run's server CPU µs/IO, so a rough cost per request. socket-receive/send: unix_stream_recvmsg/sendmsg; copy-to/from-user: _copy_to_iter/_copy_from_iter (the socket copies); direct-io-submit/read: io_uring's io_write/io_read or libaio's aio_write/aio_read (O_DIRECT into XFS and the loop device); page-pinning: bio_iov_iter_get_pages (pinning the request buffer's pages for each O_DIRECT I/O); io-uring-worker: io-wq threads that finish submissions which could not be issued without blocking; epoll-wait: the event loop's wait; ours: samples in the server's own binary (not libc, not the kernel)."
fi
} >"$MD"

# ---------------------------------------------------------------- chart
CD=$R/chart.dat
{
	printf 'test'
	for c in $CONTS; do printf '\t%s' "$c"; done
	printf '\n'
	for t in $TESTS; do
		col=$(metric_col "$t")
		l=$(get "$FS1" matrix limit "$t" "$col")
		[ -n "$l" ] || continue
		printf '%s' "$t"
		for c in $CONTS; do
			v=$(get "$FS1" matrix "$c" "$t" "$col")
			printf '\t%s' "$(r=$(ratio "$v" "$l"); [ "$r" = - ] && echo 0 || echo "$r")"
		done
		printf '\n'
	done
} >"$CD"
{
	printf 'test'
	for c in $CONTS; do [ $c = limit ] || printf '\t%s' "$c"; done
	printf '\n'
	for t in $TESTS; do
		[ -n "$(get "$FS1" matrix qemu-nbd "$t" 10)" ] || continue
		printf '%s' "$t"
		for c in $CONTS; do
			[ $c = limit ] && continue
			v=$(get "$FS1" matrix "$c" "$t" 10)
			printf '\t%s' "${v:-?}"
		done
		printf '\n'
	done
} >"$R/cpu.dat"
if [ "$(wc -l <"$CD")" -lt 2 ]; then
	echo "no I/O matrix in this run: no chart" >&2
elif command -v gnuplot >/dev/null; then
	gnuplot -e "datafile='$CD'; cpufile='$R/cpu.dat'; outfile='$R/chart.svg'; fsname='$FS1'; ncol=$(head -1 "$CD" | awk -F'\t' '{ print NF }'); ncpu=$(head -1 "$R/cpu.dat" | awk -F'\t' '{ print NF }')" \
		"$HERE/chart.gp" || echo "gnuplot failed" >&2
else
	echo "no gnuplot: no chart" >&2
fi
# The README shows the latest results written into bench/results: their
# header, the chart, the targets and the first filesystem's matrix.
if [ "$(cd "$R" && pwd)" = "$HERE/results" ]; then
	awk 'NR > 2 && /^## / && ++h == 3 { exit } NR > 2' "$MD" |
		sed 's#(chart.svg)#(results/chart.svg)#' >"$R/.readme-snippet"
	echo "Full results, scale, chains, control path and profile: [results/results.md](results/results.md)." \
		>>"$R/.readme-snippet"
	awk -v snip="$R/.readme-snippet" '
		/^<!-- results:end -->/ { skip = 0 }
		!skip { print }
		/^<!-- results:begin -->/ {
			while ((getline l < snip) > 0) print l
			skip = 1
		}' "$HERE/README.md" >"$R/.readme-new" && cat "$R/.readme-new" >"$HERE/README.md"
	rm -f "$R/.readme-snippet" "$R/.readme-new"
fi
echo "report: $MD ($TARGET_MISSES targets missed)"
