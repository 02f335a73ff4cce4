#!/bin/bash
# dom0 side of `make bench-xen` (bench/xen.sh runs it in Xen's dom0 under
# vm_run_xen): issue 17 part 4.  One QCOW2 volume made by the INSTALLED
# volume plugin on a loop SR and filled with random data, then a small PV
# guest runs fio on its xvda served three ways, on that same image:
#   a  ngdp-server's own blkif backend (--blkif-xen), the vbd's xenstore
#      entries written by hand as xenopsd writes a "qdisk" one (as
#      t-xen-blkif does);
#   b  blkback on the /dev/nbdN of the datapath plugin's XenDisk
#      (Datapath.attach + activate, xl block-attach; as t-xen-vm does);
#   c  qemu's qdisk backend (xen-block of Debian's qemu-system-xen, as the
#      PV guest's xenpv device model) on qemu's own qcow2 driver, with
#      cache.direct=on (O_DIRECT, as qemu-dp) and aio=threads (this qemu
#      has no linux-aio).
# Each guest run: the tests of /data/tests in turn (fio libaio, O_DIRECT),
# each started by dom0 (GO-i on the control disk); dom0's busy time
# (/proc/stat) and the guest's (xl list) are sampled over a window inside
# the run.  Rows go to $BENCH_XEN_OUT/raw.tsv (the results directory the
# host reads back).
set -u
PLUGIN=${BENCH_XEN_PLUGIN:-ext4-ng}
. "$SRCDIR/tests/functional/lib.sh"
. "$VM_DIR/xen-lib.sh"
trap 'rc=$?; xen_cleanup; (exit $rc); cleanup' EXIT
OUTD=${BENCH_XEN_OUT:-/xsng-vm}
RAW=$OUTD/raw.tsv
MiB=1048576
if [ "${BENCH_QUICK:-0}" = 1 ]; then
	RUNTIME=${BENCH_XEN_RUNTIME:-4} REPS=${BENCH_XEN_REPS:-1} SIZE=${BENCH_XEN_SIZE:-64}
else
	RUNTIME=${BENCH_XEN_RUNTIME:-12} REPS=${BENCH_XEN_REPS:-2} SIZE=${BENCH_XEN_SIZE:-256}
fi
CONTENDERS=${BENCH_XEN_CONTENDERS:-a b c}
# the CPU window: WARM s after GO until WARM s before fio's end
WARM=$((RUNTIME >= 10 ? 3 : 1))
WIN=$((RUNTIME - 2 * WARM))
SERVER=$INSTALL_ROOT/usr/libexec/xapi-storage-ng/ngdp-server
QEMU_XEN=/usr/libexec/xen-qemu-system-i386
FIO=$(command -v fio)
DEVID=51712	# xvda
TICK=$(getconf CLK_TCK)
[ -x "$QEMU_XEN" ] || { fail "no $QEMU_XEN (package qemu-system-xen: make deps)"; finish; }
[ -n "$FIO" ] || { fail "no fio in dom0's userland"; finish; }

# the guest's tests: NAME RW BS QD (fio)
cat > "$T/tests" <<-EOF
rr4k	randread	4k	32
sr1m	read	1M	8
sw1m	write	1M	8
EOF
echo "$RUNTIME" > "$T/runtime"
printf 'contender\trep\ttest\tiops\tmbps\tdom0_cpu_pct\tdom0_us_per_io\tdomu_us_per_io\tcpu_window_ok\tfio_lag_s\n' > "$RAW"

# cpu_sample NAME: "dom0-busy-ticks guest-cpu-seconds dom0-uptime"; the
# uptime and /proc/stat first, together (xl list takes a while under TCG)
cpu_sample() {
	local up busy g
	read -r up _ < /proc/uptime
	busy=$(awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8; exit }' /proc/stat)
	g=$($XL list "$1" 2>/dev/null | awk 'NR == 2 { print $6 }')
	echo "$busy ${g:-0} $up"
}

# odirect_fds PID FILE: PID has FILE open for writing with O_DIRECT
# (fdinfo's octal flags: 02 O_RDWR, 040000 O_DIRECT); prints every
# descriptor of FILE it has
odirect_fds() {
	local fd fl ok=1
	for fd in /proc/$1/fd/*; do
		[ "$(readlink "$fd")" = "$2" ] || continue
		fl=$(awk '/^flags:/ { print $2 }' "/proc/$1/fdinfo/${fd##*/}")
		echo "    pid $1 fd ${fd##*/}: flags $fl"
		(( (8#$fl & 8#40000) && (8#$fl & 3) == 2 )) && ok=0
	done
	return $ok
}

# run_tests C REP: GO for each test, the CPU window, the guest's result
run_tests() {
	local c=$1 rep=$2 i=0 tname rw bs qd s0 s1 u_go res ok
	check "[$c/$rep] the guest is up and ready" wait_phase READY || return 1
	# what the two ends agreed on (absent keys: the feature is not offered)
	local fe=/local/domain/$domid/device/vbd/$DEVID be
	be=$(xs "$fe/backend")
	stamp "[$c/$rep] xvda ring: backend $be: feature-persistent=$(xs "$be/feature-persistent")" \
		"max-indirect-segments=$(xs "$be/feature-max-indirect-segments")" \
		"max-ring-page-order=$(xs "$be/max-ring-page-order"); frontend:" \
		"feature-persistent=$(xs "$fe/feature-persistent") ring-page-order=$(xs "$fe/ring-page-order")"
	while read -r tname rw bs qd <&3; do
		read -r u_go _ < /proc/uptime
		ctl_put 1 "GO-$i"
		sleep "$WARM"
		s0=$(cpu_sample "$name")
		sleep "$WIN"
		s1=$(cpu_sample "$name")
		check "[$c/$rep] the guest ran $tname" wait_phase "DONE-$i" $((RUNTIME + 180)) || return 1
		res=$(dd if="$CTL" bs=4096 skip=$((2 + i)) count=1 iflag=direct status=none | tr -d '\000' | head -1)
		check "[$c/$rep] fio $tname exited 0 with a result" \
			awk '$1 == 0 && NF >= 4 { split($4, f, ";"); if (f[1] == 3 && f[5] == 0) ok = 1 } END { exit !ok }' <<<"$res" ||
			{ echo "  guest: $res"; i=$((i + 1)); continue; }
		# fio terse v3: 7/8 read KiB/s and IOPS, 48/49 the same for writes,
		# 9/50 the runtimes (ms)
		awk -v c="$c" -v rep="$rep" -v t="$tname" -v rw="$rw" -v s0="$s0" -v s1="$s1" \
			-v tick="$TICK" -v u_go="$u_go" -v rt="$RUNTIME" -v warm="$WARM" '{
			split($4, f, ";")
			w = (rw ~ /write/)
			iops = w ? f[49] : f[8]; kbs = w ? f[48] : f[7]; ms = w ? f[50] : f[9]
			split(s0, a, " "); split(s1, b, " ")
			win = b[3] - a[3]
			lag = $3 - $2 - ms / 1000
			# the window lies inside fio'"'"'s run: its start came after
			# fio'"'"'s startup, its end before fio'"'"'s end
			ok = (lag + 0.5 <= warm && b[3] - u_go <= rt && win > 0) ? 1 : 0
			d0 = (b[1] - a[1]) / tick; g = b[2] - a[2]
			printf "%s\t%s\t%s\t%d\t%.2f\t%.1f\t%.1f\t%.1f\t%d\t%.2f\n", c, rep, t, iops,
				kbs * 1024 / 1e6, (win > 0) ? 100 * d0 / win : 0,
				(win > 0 && iops > 0) ? d0 / win / iops * 1e6 : 0,
				(win > 0 && iops > 0) ? g / win / iops * 1e6 : 0, ok, lag
		}' <<<"$res" >> "$RAW"
		ok=$(tail -n 1 "$RAW" | cut -f9)
		stamp "[$c/$rep] $tname: $(tail -n 1 "$RAW" | cut -f4,5,7,8 | tr '\t' ' ') (iops MB/s dom0-us/io guest-us/io), cpu window ok=$ok"
		i=$((i + 1))
	done 3< "$T/tests"
}

# guest_run C REP: one guest on contender C, its tests, and the teardown
guest_run() {
	local c=$1 rep=$2 name=xb-$1-$2 domid BE FE SRV dev qpid
	dd if=/dev/zero of="$CTL" bs=64k count=16 oflag=direct status=none
	stamp "[$c/$rep] start"
	XEN_CFG_EXTRA="disk = [ 'phy:$CTL,xvdb,w,script=$XEN_HOTPLUG' ]"
	domid=$(xen_domu_create "$name" "$INITRD" -p)
	check "[$c/$rep] xl create -p: domain $domid" [ -n "$domid" ] || return 1
	case $c in
	a)
		check "[$c/$rep] frontend and backend directories written" \
			xen_qdisk_vbd "$domid" $DEVID "$IMG" || return 1
		# the options the datapath plugin starts it with, but the ring
		rm -f "$T/srv.pid"
		"$SERVER" --image "$IMG" --format qcow2 --socket "$T/srv.sock" \
			--control "$T/srv.ctl" --pidfile "$T/srv.pid" --blkif-xen "$BE" \
			--log-stderr 2>>"$T/server-a.log" &
		SRV=$!
		PIDS+=("$SRV")
		check "[$c/$rep] ngdp-server --blkif-xen started (pid $SRV), InitWait" \
			wait_for 60 bash -c "[ -s $T/srv.pid ] && [ \"\$(xenstore-read $BE/state)\" = 2 ]" || return 1
		check "[$c/$rep] ngdp-server opened the image with O_DIRECT" odirect_fds "$SRV" "$IMG"
		;;
	b)
		vol_activate "$domid"
		dev=$(jq -r '[.implementations[] | select(.[0] == "XenDisk")][0][1].params // empty' <<<"$ATT" 2>/dev/null)
		check "[$c/$rep] attach returned XenDisk /dev/nbdN ($dev)" \
			bash -c "[[ '$dev' =~ ^/dev/nbd[0-9]+$ ]] && [ -e /sys/block/${dev#/dev/}/pid ]" || return 1
		check "[$c/$rep] the datapath server opened the image with O_DIRECT" odirect_fds "$PID" "$IMG"
		check "[$c/$rep] xl block-attach phy:$dev as xvda" \
			$XL block-attach "$domid" "phy:$dev,xvda,w,script=$XEN_HOTPLUG" || return 1
		;;
	c)
		# libxl's qdisk disk (direct-io-safe) asks for aio=native, which
		# Debian's qemu-system-xen is built without ("aio=native was
		# specified, but is not supported in this build"), and without
		# direct-io-safe qemu reads through dom0's page cache.  So qemu's
		# xenpv device model is started here as libxl would start it for
		# the guest, with the disk as a xen-disk device on a qcow2 node
		# over a file node with cache.direct=on (O_DIRECT) and aio=threads;
		# xen-bus writes the vbd's backend and frontend entries itself.
		rm -f "$T/qemu.pid"
		"$QEMU_XEN" -xen-domid "$domid" -xen-attach -M xenpv -nodefaults \
			-display none -monitor none -serial none \
			-blockdev "driver=file,node-name=f0,filename=$IMG,cache.direct=on,aio=threads" \
			-blockdev "driver=qcow2,node-name=q0,file=f0,cache.direct=on" \
			-device "xen-disk,vdev=xvda,drive=q0,frontend-id=$domid" \
			</dev/null >>"$T/qemu-c.log" 2>&1 &
		qpid=$!
		PIDS+=("$qpid")
		BE=/local/domain/0/backend/qdisk/$domid/$DEVID
		check "[$c/$rep] qemu's xen-disk backend waits for the frontend (pid $qpid, InitWait)" \
			wait_for 120 bash -c "[ \"\$(xenstore-read $BE/state)\" = 2 ]" || return 1
		check "[$c/$rep] qemu opened the image with O_DIRECT" odirect_fds "$qpid" "$IMG"
		;;
	esac
	$XL unpause "$domid"
	stamp "[$c/$rep] guest $domid running"
	if ! run_tests "$c" "$rep"; then
		stamp "[$c/$rep] stopped: destroying the guest"
		# what the backend was doing
		if [ "$c" = a ] && [ -x "${NGDP_CTL:-}" ]; then
			echo "  server status: $("$NGDP_CTL" "$T/srv.ctl" '{"op":"status"}' 2>&1 | head -c 2000)"
		fi
		xenstore-ls -f "/local/domain/$domid/device" 2>/dev/null | grep -E '/(state|ring-ref|event-channel|feature-persistent)' | sed 's/^/  /'
		$XL destroy "$name"
	fi
	xen_domu_result "$name" "[$c/$rep]"
	case $c in
	a)
		check "[$c/$rep] the backend closed when the frontend went" \
			wait_for 60 bash -c "[ \"\$(xenstore-read $BE/state)\" = 6 ]"
		kill -TERM "$SRV"
		wait "$SRV"
		check "[$c/$rep] the server exits 0 on SIGTERM" [ $? -eq 0 ]
		xenstore-rm "$BE"
		;;
	b)
		vol_deactivate "$domid"
		check "[$c/$rep] no /dev/nbdN left connected" no_nbd_connected
		check "[$c/$rep] the datapath server is gone" wait_for 30 bash -c "! kill -0 $PID 2>/dev/null"
		;;
	c)
		check "[$c/$rep] qemu's backend closed when the frontend went" \
			wait_for 60 bash -c "[ \"\$(xenstore-read $BE/state)\" = 6 ]"
		kill -TERM "$qpid"
		wait "$qpid"
		stamp "[$c/$rep] qemu exited $?"
		check "[$c/$rep] qemu is gone" bash -c "! kill -0 $qpid 2>/dev/null"
		xenstore-rm "$BE" 2>/dev/null
		;;
	esac
	return 0
}

stamp "bench-xen: $PLUGIN, ${SIZE} MiB, ${RUNTIME} s per test (CPU window ${WIN} s), $REPS rep(s) of: $CONTENDERS"
mk_sr || { fail "SR.create/attach on a loop device"; finish; }
vol_create $((SIZE * MiB)) "bench-xen disk"
expect_ok "Volume.create ($SIZE MiB)"
IMG=$(realpath "$(vol_image "$KEY")")
check "the volume is QCOW2" [ "$(vol_qemu_fmt "$KEY")" = qcow2 ] || finish
# filled first: every read hits an allocated cluster, every write
# overwrites one
head -c $((SIZE * MiB)) /dev/urandom > "$T/rand.raw"
check "the volume filled with random data" \
	qemu-img convert -n -t none -f raw -O qcow2 "$T/rand.raw" "$IMG" || finish
check "the image holds it" qemu-img compare -q -f raw -F qcow2 "$T/rand.raw" "$IMG"
check "no cluster left unallocated" \
	bash -c "qemu-img map --output=json -f qcow2 '$IMG' | jq -e 'all(.[]; .data)' >/dev/null"
rm -f "$T/rand.raw"
stamp "volume filled"

INITRD=$T/initrd.cpio
XEN_DOMU_BINS=$FIO xen_domu_initrd "$INITRD" "$SRCDIR/bench/xen-domu-job.sh" "xvda xvdb" \
	"$T/tests" "$T/runtime" || { fail "building the guest's initrd"; finish; }
XEN_DOMU_MEM=${XEN_DOMU_MEM:-512}
truncate -s 1M "$T/ctl"
CTL=$(losetup -f --show "$T/ctl") || { fail "control disk"; finish; }

for ((rep = 1; rep <= REPS; rep++)); do
	for c in $CONTENDERS; do
		# a backend that did not start may still hold the image: stop
		guest_run "$c" "$rep" || { fail "[$c/$rep] could not set up: no more runs"; finish; }
	done
done
losetup -d "$CTL"
if [ "$FAIL" -gt 0 ]; then
	for f in "$T/qemu-c.log" "$T/server-a.log"; do
		[ -s "$f" ] && { echo "  $f (last 20 lines):"; tail -n 20 "$f" | sed 's/^/    /'; }
	done
fi
check "qemu-img check of the image after all runs" qemu-img check -q -f qcow2 "$IMG"
check "every run gave a row ($(($(wc -l < "$RAW") - 1)) of $((REPS * $(wc -w <<<"$CONTENDERS") * 3)))" \
	[ "$(($(wc -l < "$RAW") - 1))" -eq "$((REPS * $(wc -w <<<"$CONTENDERS") * 3))" ]
finish
