#!/bin/bash
# bench/xen.sh: issue 17 part 4 (`make bench-xen`, bench/README.md "The
# blkif ring in the Xen test host").  Boots the Xen test host of tests/vm
# (vm_run_xen) with bench/xen-dom0.sh as dom0's job, which runs a PV
# guest's fio on the same QCOW2 volume three ways: (a) ngdp-server's blkif
# backend, (b) blkback on the datapath plugin's /dev/nbdN, (c) qemu's qdisk
# backend (xen-disk) on qemu's qcow2 driver.  Writes into $BENCH_RESULTS
# (bench/results-xen): raw.tsv (one row per run), results.md (a, b, c side
# by side and the ratios), README.md (how it was obtained), dom0.log.
#
# Environment: INSTALL_ROOT (a `make install DESTDIR=` tree, as check-vm),
# NGDP_CTL (build/tests/server/ngdp-ctl: the server's status on a stall),
# BENCH_RESULTS, BENCH_QUICK=1 (short runs, one repetition: a smoke run),
# BENCH_XEN_RUNTIME (s per test), BENCH_XEN_REPS, BENCH_XEN_SIZE (MiB),
# BENCH_XEN_CONTENDERS ("a b c"), BENCH_XEN_PLUGIN (ext4-ng), and tests/vm's
# VM_* and XSNG_VM_CACHE.  Exit 0 when every check in dom0 passed and
# every run gave a row; 77 when this machine cannot run the guest.
set -u
here=$(cd "$(dirname "$0")" && pwd)
export SRCDIR=${SRCDIR:-$(cd "$here/.." && pwd)}
: "${INSTALL_ROOT:?set INSTALL_ROOT to a make install DESTDIR= tree}"
export INSTALL_ROOT
OUT=${BENCH_RESULTS:-$SRCDIR/bench/results-xen}
# fio and its libraries go into every guest's initrd: room for them (set
# before lib.sh, which sets its defaults)
: "${VM_MEM:=3072}" "${VM_XEN_DOM0_MEM:=1536}"
. "$SRCDIR/tests/vm/lib.sh"
why=$(vm_cannot); [ -z "$why" ] || { echo "bench-xen: skipped: $why"; exit 77; }
[ -x /usr/libexec/xen-qemu-system-i386 ] ||
	{ echo "bench-xen: no /usr/libexec/xen-qemu-system-i386 (package qemu-system-xen: make deps)"; exit 1; }
command -v fio >/dev/null || { echo "bench-xen: no fio (make deps)"; exit 1; }

logs=$(mktemp -d /tmp/xsng-bench-xen.XXXXXX) || exit 1
trap 'rm -rf "$logs"' EXIT
started=$(date -u '+%Y-%m-%d %H:%M UTC')
# the tree as the run starts (the results directory aside: the run rewrites it)
commit=$(git -C "$SRCDIR" rev-parse --short HEAD 2>/dev/null)
excl=(); case $OUT in "$SRCDIR"/*) excl=(":(exclude)${OUT#"$SRCDIR"/}") ;; esac
dirty=$(git -C "$SRCDIR" status --porcelain -- . "${excl[@]}" 2>/dev/null |
	grep -qv '^??' && echo " (with uncommitted changes)")
load0=$(cut -d' ' -f1-3 /proc/loadavg)
t0=$SECONDS
VM_LOG_DIR=$logs VM_OK_RC=0 \
VM_TIMEOUT=${VM_TIMEOUT_XEN:-3600} \
VM_ENV="${VM_ENV:-} NGDP_CTL BENCH_QUICK BENCH_XEN_RUNTIME BENCH_XEN_REPS BENCH_XEN_SIZE BENCH_XEN_CONTENDERS BENCH_XEN_PLUGIN" \
	vm_run_xen "$here/xen-dom0.sh"
rc=$?
res=$(ls -d "$logs"/xen-dom0.* 2>/dev/null | head -1)
if [ "$rc" -ne 0 ] || [ ! -s "$res/raw.tsv" ]; then
	echo "bench-xen: the run failed (exit $rc); nothing written to $OUT"
	[ -n "$res" ] && cp -r "$res" "/tmp/xsng-bench-xen-failed.$$" &&
		echo "bench-xen: logs in /tmp/xsng-bench-xen-failed.$$"
	exit 1
fi
mkdir -p "$OUT" || exit 1
cp "$res/raw.tsv" "$OUT/raw.tsv" && cp "$res/output" "$OUT/dom0.log" || exit 1

# results.md: per test, the mean of each contender (min-max), the ratios
# of the means; dom0's and the guest's CPU per I/O over the windows that
# lay inside the run
awk -F'\t' '
NR == 1 { next }
{
	k = $3 SUBSEP $1
	v = ($3 == "rr4k") ? $4 : $5
	n[k]++; s[k] += v
	if (!(k in lo) || v < lo[k]) lo[k] = v
	if (!(k in hi) || v > hi[k]) hi[k] = v
	if ($9 == 1) { cn[k]++; d0[k] += $7; du[k] += $8 }
	seen[$3] = 1
}
function m(t, c) { k = t SUBSEP c; return n[k] ? s[k] / n[k] : 0 }
function cell(t, c,   k, f) {
	k = t SUBSEP c
	if (!n[k]) return "-"
	f = (t == "rr4k") ? "%.0f (%.0f-%.0f)" : "%.1f (%.1f-%.1f)"
	return sprintf(f, m(t, c), lo[k], hi[k])
}
function ratio(t, x, y) { return (m(t, x) > 0 && m(t, y) > 0) ? sprintf("%.2f", m(t, x) / m(t, y)) : "-" }
function cpu(arr, t, c,   k) { k = t SUBSEP c; return cn[k] ? sprintf("%.0f", arr[k] / cn[k]) : "-" }
END {
	split("rr4k sr1m sw1m", order, " ")
	name["rr4k"] = "4k random read, QD32 (IOPS)"
	name["sr1m"] = "1M sequential read, QD8 (MB/s)"
	name["sw1m"] = "1M sequential write, QD8 (MB/s)"
	print "| test | (a) ngdp-server blkif | (b) blkback + /dev/nbdN + ngdp-server | (c) qemu qdisk, qcow2 | a/b | a/c | b/c |"
	print "|---|---|---|---|---|---|---|"
	for (i = 1; i <= 3; i++) {
		t = order[i]
		if (!(t in seen)) continue
		printf "| %s | %s | %s | %s | %s | %s | %s |\n", name[t], cell(t, "a"), cell(t, "b"),
			cell(t, "c"), ratio(t, "a", "b"), ratio(t, "a", "c"), ratio(t, "b", "c")
	}
	print ""
	print "CPU per I/O (per MiB for the 1M tests), microseconds of the emulated CPU, mean over the runs whose sampling window lay inside the fio run:"
	print ""
	print "| test | dom0 (a) | dom0 (b) | dom0 (c) | guest (a) | guest (b) | guest (c) |"
	print "|---|---|---|---|---|---|---|"
	for (i = 1; i <= 3; i++) {
		t = order[i]
		if (!(t in seen)) continue
		printf "| %s | %s | %s | %s | %s | %s | %s |\n", t, cpu(d0, t, "a"), cpu(d0, t, "b"),
			cpu(d0, t, "c"), cpu(du, t, "a"), cpu(du, t, "b"), cpu(du, t, "c")
	}
}' "$OUT/raw.tsv" > "$OUT/table.md.tmp" || exit 1

settings=$(grep -o 'bench-xen: .*' "$OUT/dom0.log" | head -1)
{
	echo "# Issue 17 part 4: (a) / (b) / (c) in the Xen test host"
	echo
	echo "$started, commit $commit$dirty; ${settings#bench-xen: }."
	echo "**Under TCG: ratios between paths of one run, not absolute numbers** (README.md)."
	echo
	cat "$OUT/table.md.tmp"
} > "$OUT/results.md"
rm -f "$OUT/table.md.tmp"

cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
{
	cat <<-EOF
	# How these results were obtained

	Command: \`make bench-xen${BENCH_QUICK:+ BENCH_QUICK=$BENCH_QUICK}\` (bench/xen.sh, bench/xen-dom0.sh,
	bench/xen-domu-job.sh), started $started, took $((SECONDS - t0)) s.
	Commit: $commit$dirty.
	Machine: $(nproc) CPUs ($cpu_model), $(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo),
	kernel $(uname -r), load average at the start $load0, $( [ "${VM_ACCEL:-tcg}" = kvm ] && echo "KVM (VM_ACCEL=kvm)" || echo "TCG (no KVM)").
	Xen host: tests/vm's vm_run_xen, Xen 4.17 ($(dpkg-query -W -f '${Version}' xen-utils-4.17 2>/dev/null)) with Debian's
	$VM_KVER kernel as PV dom0 ($VM_XEN_DOM0_MEM of $VM_MEM MiB, qemu-system-x86_64 -cpu Nehalem, $VM_SMP vCPUs);
	the guest: the same kernel, PV, 1 vCPU, 512 MiB, busybox + this machine's fio
	($(fio --version)) with its libraries.
	qemu-system-xen $(dpkg-query -W -f '${Version}' qemu-system-xen 2>/dev/null).

	**TCG inflates CPU costs.** Without KVM every instruction of Xen,
	dom0 and the guest is emulated by qemu in software, on a 2-CPU machine
	shared with other work.  The absolute IOPS, MB/s and microseconds here
	mean nothing for a real host; only the ratios between the three paths,
	measured in the same run, say something, and even they weigh CPU work
	(the guest's blkfront, dom0's backend, grant mapping or copying, the
	kernel's NBD client) far more than a real CPU would, and storage (an
	ext4 SR on a loop device over a file in dom0's RAM) far less.

	## What runs

	dom0 (bench/xen-dom0.sh): an SR made by the installed ${BENCH_XEN_PLUGIN:-ext4-ng} plugin
	(SR.create + SR.attach on a loop device over a file in dom0's RAM), one
	QCOW2 volume (Volume.create), filled with random data (qemu-img convert
	-n into the image; checked: qemu-img compare, every cluster allocated),
	so every read hits an allocated cluster and every write overwrites one.
	Then, on that same image, for each repetition, a, b and c in turn, each
	with its own freshly booted PV guest:

	- (a) ngdp-server's own blkif backend: the vbd's xenstore entries written
	  by hand as xenopsd writes a \`qdisk\` one (as tests/vm t-xen-blkif does),
	  \`ngdp-server --image IMG --format qcow2 --blkif-xen <backend dir>\`
	  with the datapath plugin's defaults otherwise (engine auto: io_uring;
	  O_DIRECT, checked in /proc/PID/fdinfo); no blkback, no /dev/nbdN.
	- (b) today's XenDisk path: Datapath.attach + activate of the ngdp
	  datapath plugin for the guest's domain, its /dev/nbdN plugged with
	  \`xl block-attach phy:/dev/nbdN,xvda\` (blkback), served by the
	  ngdp-server the plugin started (O_DIRECT checked).
	- (c) qemu's qdisk backend: Debian's qemu-system-xen
	  (/usr/libexec/xen-qemu-system-i386 -xen-domid N -xen-attach -M xenpv,
	  the device model libxl starts for a PV guest's qdisk disk), the disk
	  given as \`-device xen-disk,vdev=xvda\` on \`-blockdev driver=qcow2\`
	  over \`-blockdev driver=file,cache.direct=on,aio=threads\`: qemu's own
	  qcow2 driver, O_DIRECT like qemu-dp (checked in qemu's fdinfo), but
	  aio=threads where qemu-dp uses aio=native: this qemu is built without
	  linux-aio.  A libxl disk (\`backendtype=qdisk,direct-io-safe\`) asks
	  for aio=native and fails with "aio=native was specified, but is not
	  supported in this build"; without direct-io-safe qemu would read
	  through dom0's page cache.  So qemu is started by hand and its
	  xen-bus writes the vbd's xenstore entries.

	The guest (bench/xen-domu-job.sh) runs fio (libaio, direct=1, time based)
	on /dev/xvda: 4k random read at QD32, 1M sequential read and 1M
	sequential write at QD8, each for the runtime above, one at a time on
	dom0's signal over a small control disk (xvdb, blkback on a loop
	device).  blkfront's defaults (persistent grants, one-page ring); (c)'s
	qemu 7.2 offers neither persistent grants nor indirect descriptors, so
	its 1M requests are split into 11-page (44 KiB) ones: that is part of
	what (c) measures.

	CPU: dom0's busy time from /proc/stat (user+nice+system+irq+softirq,
	both vCPUs; it includes blkback, the NBD client, ngdp-server, qemu) and
	the guest's from \`xl list\`, sampled over a window of the run that
	starts some seconds after dom0's GO and ends some seconds before fio's
	end (cpu_window_ok in raw.tsv says whether the window lay inside the
	run; results.md averages only those), divided by the I/O (or MiB)
	count of the window.

	## Files

	- raw.tsv: contender, rep, test, iops, mbps, dom0_cpu_pct (of one CPU),
	  dom0_us_per_io, domu_us_per_io, cpu_window_ok, fio_lag_s (fio's start
	  and exit overhead in the guest)
	- results.md: the means, min-max and ratios
	- dom0.log: dom0's checks and progress
	EOF
} > "$OUT/README.md"
cat "$OUT/results.md"
echo "bench-xen: results in $OUT"
