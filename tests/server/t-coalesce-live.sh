#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-only
# Live coalesce (issue 13): the server merges the top's hidden parent H
# down into the top C while a guest writes over NBD (regions H holds
# included), then serves C over H's backing file.  The content must be the
# original chain's with the guest's writes applied in order (a raw
# reference gets the same writes), C must check clean, and H must no
# longer be needed.  qcow2 chains of 3 and 2 images, a VHD chain, and a
# kill -9 in the middle of a coalesce.  Uses ngdp-server-fault
# (coalesce-slow: every chunk takes 10 ms more, so the guest surely races
# the chunks; coalesce-crawl: 100 ms, so a kill lands in the middle).
. "$(dirname "$0")/lib.sh"

CTL="$NGDP_HELPERS/ngdp-ctl"
FAULT="$NGDP_HELPERS/ngdp-server-fault"
[ -x "$FAULT" ] || skip_test "no ngdp-server-fault in $NGDP_HELPERS"
SIZE=$((64 * 1024 * 1024))
# The guest's random rounds stay below GUEST_END.  Each parent (H) holds
# data at 60 MiB that only the coalesce copies into C: a fast machine runs
# enough rounds to copy every other cluster of H up by copy-on-write, and
# "data copied" must not depend on that race.
GUEST_END=$((56 * 1024 * 1024))

# COALESCE_CASES: run only these cases (default: all)
want() { [[ " ${COALESCE_CASES:-q3 q2 no k s v} " == *" $1 "* ]]; }
co_get() { "$CTL" "$T/$1.ctl" get "$2" 2>/dev/null; }

# wait_state NAME STATE: poll the job (60 s) until it is in STATE
wait_state() {
	local end=$((SECONDS + 60)) s
	while [ $SECONDS -lt $end ]; do
		s=$(co_get "$1" coalesce.state)
		[ "$s" = "$2" ] && return 0
		if [ "$s" = failed ]; then
			echo "coalesce failed: $(co_get "$1" coalesce.error)"
			return 1
		fi
		sleep 0.05
	done
	echo "coalesce still '$s' after 60 s"
	return 1
}

# The first guest round writes where H holds data (aligned and not),
# where C holds data, and zeroes a range H holds.
fixed_round() {
	cat <<-EOF
	write -P 0x44 9M 4k
	write -P 0x45 $((10 * 1048576 + 512)) 1000
	write -z 20M 64k
	write -P 0x46 41M 8k
	write -P 0x47 $((1000 * 1024 + 7)) 33
	write -P 0x48 17M 1M
	EOF
}

# guest_round NAME ID: one round of guest writes over NBD (ID "fixed":
# fixed_round, else gen_workload with seed ID), listed in $T/NAME.seeds
guest_round() {
	if [ "$2" = fixed ]; then
		fixed_round
	else
		gen_workload "$2" $GUEST_END 40
	fi >"$T/$1.r$2"
	run_qemu_io raw "$(uri "$1")" "$T/$1.r$2" || return 1
	echo "$2" >>"$T/$1.seeds"
}

# guest_rounds NAME SEED: guest rounds while the coalesce runs (the first
# one fixed_round), or until STOP_AT bytes are scanned.  RACED: rounds
# that ran with the job running before and after them.
guest_rounds() {
	local name=$1 seed=$2 s id
	RACED=0
	for ((s = 0; s < 200; s++)); do
		[ "$(co_get "$name" coalesce.state)" = running ] || return 0
		id=$((seed + s))
		[ $s = 0 ] && id=fixed
		guest_round "$name" $id || return 1
		[ "$(co_get "$name" coalesce.state)" = running ] &&
			RACED=$((RACED + 1))
		[ -n "${STOP_AT:-}" ] &&
			[ "$(co_get "$name" coalesce.offset)" -ge "$STOP_AT" ] &&
			return 0
	done
	return 0	# the job may still run: wait_state judges it
}

# apply_rounds NAME REF: the same writes, in the same order, on the raw
# reference
apply_rounds() {
	local s
	while read -r s; do
		run_qemu_io raw "$2" "$T/$1.r$s" || return 1
	done <"$T/$1.seeds"
}

# live_case NAME DIR TOP PARENT BACKING: serve DIR/TOP (its chain's
# content is DIR/ref.raw), coalesce DIR/PARENT live under a guest load;
# the top's backing must then be BACKING ("null": none).
live_case() {
	local name=$1 d=$2 top=$3 parent=$4 backing=$5
	NGDP_SERVER=$FAULT NGDP_FAULT=coalesce-slow start_server "$name" \
		--image "$d/$top" --control "$T/$name.ctl" ||
		{ fail "$name: start"; return 1; }
	check "$name: status names the parent as backing" \
		[ "$(co_get "$name" backing)" = "$d/$parent" ]
	check "$name: coalesce accepted" "$CTL" "$T/$name.ctl" coalesce "$d/$parent"
	check "$name: guest writes during the coalesce" guest_rounds "$name" 100
	check "$name: guest rounds raced the chunks ($RACED)" [ "$RACED" -ge 1 ]
	check "$name: coalesce done" wait_state "$name" done
	check "$name: the same parent again is answered ok" \
		"$CTL" "$T/$name.ctl" coalesce "$d/$parent"
	check "$name: status names the new backing ($backing)" \
		[ "$(co_get "$name" backing)" = "$backing" ]
	check "$name: data copied" [ "$(co_get "$name" coalesce.copied)" -gt 0 ]
	check "$name: whole disk scanned" \
		[ "$(co_get "$name" coalesce.offset)" = $SIZE ]
	check "$name: guest write after the switch" \
		qemu-io -f raw "$(uri "$name")" -c "write -P 0x55 30M 64k"
	echo "write -P 0x55 30M 64k" >"$T/$name.rlast"
	echo last >>"$T/$name.seeds"
	check "$name: server exits 0" stop_server "$SERVER_PID"
	check "$name: reference gets the same writes" apply_rounds "$name" "$d/ref.raw"
	# H must not be needed any more
	mv "$d/$parent" "$d/$parent.gone"
}

# ---------------------------------------------------------------- qcow2
# base (0x11, 0x12) <- H (0x22, allocated zeros over base, 0x23, a
# partial cluster) <- C (0x33 over H, 0x34, an unaligned write)
make_qcow2_chain() {
	local d=$1
	mkdir -p "$d"
	(cd "$d" &&
		qemu-img create -q -f qcow2 base.qcow2 64M &&
		qemu-io -f qcow2 base.qcow2 -c "write -P 0x11 0 32M" \
			-c "write -P 0x12 48M 8M" >/dev/null &&
		qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 H.qcow2 &&
		qemu-io -f qcow2 H.qcow2 -c "write -P 0x22 8M 16M" \
			-c "write -z 28M 2M" -c "write -P 0x23 40M 4M" \
			-c "write -P 0x24 1000k 100k" -c "write -P 0x25 60M 2M" >/dev/null &&
		qemu-img create -q -f qcow2 -b H.qcow2 -F qcow2 C.qcow2 &&
		qemu-io -f qcow2 C.qcow2 -c "write -P 0x33 16M 4M" \
			-c "write -P 0x34 42M 64k" -c "write -P 0x35 12345 6789" \
			>/dev/null &&
		qemu-img convert -f qcow2 -O raw C.qcow2 ref.raw)
}

# header_backing FILE NAME: FILE's header names NAME as its backing file
# ("": none), as qemu reads it
header_backing() {
	local info
	info=$(qemu-img info --output=json "$1") || return 1
	if [ -n "$2" ]; then
		grep -q "\"backing-filename\": \"$2\"" <<<"$info"
	else
		! grep -q backing-filename <<<"$info"
	fi
}

# qcow2_done NAME DIR BACKING: after live_case, DIR/C.qcow2 checks clean,
# names BACKING ("": none) and reads as the reference, H moved away
qcow2_done() {
	check "$1: qemu-img check of C" qemu-img check -q -f qcow2 "$2/C.qcow2"
	check "$1: C's header names '$3' as backing" header_backing "$2/C.qcow2" "$3"
	check "$1: content = original chain + guest writes, without H" \
		qemu-img compare -q -f qcow2 -F raw "$2/C.qcow2" "$2/ref.raw"
}

d=$T/q3
if ! want q3; then
	:
elif make_qcow2_chain "$d"; then
	live_case q3 "$d" C.qcow2 H.qcow2 "$d/base.qcow2"
	qcow2_done q3 "$d" base.qcow2
else
	fail "q3: make the chain"
fi

# two levels: H has no backing file, C ends up with none
d=$T/q2
mkdir -p "$d"
if ! want q2; then
	:
elif (cd "$d" && qemu-img create -q -f qcow2 H.qcow2 64M &&
	qemu-io -f qcow2 H.qcow2 -c "write -P 0x22 0 20M" -c "write -z 30M 1M" \
		-c "write -P 0x23 60M 4M" >/dev/null &&
	qemu-img create -q -f qcow2 -b H.qcow2 -F qcow2 C.qcow2 &&
	qemu-io -f qcow2 C.qcow2 -c "write -P 0x33 4M 4M" >/dev/null &&
	qemu-img convert -f qcow2 -O raw C.qcow2 ref.raw); then
	live_case q2 "$d" C.qcow2 H.qcow2 null
	qcow2_done q2 "$d" ""
else
	fail "q2: make the chain"
fi

# ---------------------------------------------------------------- refusals
# refused NAME ERRNO PARENT: the coalesce op fails with that errno
refused() {
	local out
	out=$("$CTL" "$T/$1.ctl" coalesce "$3") && { echo "accepted: $out"; return 1; }
	echo "$out"
	case $out in *"\"errno\":$2}"* | *"\"errno\":$2,"*) return 0 ;; esac
	return 1
}
if want no; then
	d=$T/no
	make_qcow2_chain "$d" || fail "no: make the chain"
	start_server no --image "$d/C.qcow2" --control "$T/no.ctl" || fail "no: start"
	check "no: a parent that is not the backing file: EINVAL" refused no 22 "$d/base.qcow2"
	check "no: a missing parent: ENOENT" refused no 2 "$d/nothing.qcow2"
	check "no: a relative parent: EINVAL" refused no 22 H.qcow2
	check "no: no job was started" eval "! co_get no coalesce.state"
	check "no: server exits 0" stop_server "$SERVER_PID"
	start_server nor --image "$d/C.qcow2" --control "$T/nor.ctl" --readonly ||
		fail "nor: start"
	check "no: read-only server: EROFS" refused nor 30 "$d/H.qcow2"
	check "nor: server exits 0" stop_server "$SERVER_PID"
	cp "$d/C.qcow2" "$d/.np-x.qcow2" 2>/dev/null
	start_server nov --image "$d/.np-x.qcow2" --format qcow2 --control "$T/nov.ctl" ||
		fail "nov: start"
	check "no: reset-on-boot overlay: EINVAL" refused nov 22 "$d/H.qcow2"
	check "nov: server exits 0" stop_server "$SERVER_PID"
fi

# ---------------------------------------------------------------- kill -9
# crawl_until NAME DIR MIB SEED: serve DIR/C.qcow2 with chunks of 100 ms,
# coalesce DIR/H.qcow2 and write as a guest until MIB MiB are scanned
crawl_until() {
	NGDP_SERVER=$FAULT NGDP_FAULT=coalesce-crawl start_server "$1" \
		--image "$2/C.qcow2" --control "$T/$1.ctl" || fail "$1: start"
	check "$1: coalesce accepted" "$CTL" "$T/$1.ctl" coalesce "$2/H.qcow2"
	STOP_AT=$(($3 * 1024 * 1024)) check "$1: guest writes until $3 MiB scanned" \
		guest_rounds "$1" "$4"
}
d=$T/k
if ! want k; then
	:
elif make_qcow2_chain "$d"; then
	crawl_until k "$d" 16 300
	check "k: killed in the middle ($(co_get k coalesce.offset) scanned)" \
		[ "$(co_get k coalesce.state)" = running ]
	kill -9 "$SERVER_PID"
	wait "$SERVER_PID" 2>/dev/null
	check "k: qemu-img check after kill -9" qemu-img check -q -f qcow2 "$d/C.qcow2"
	check "k: reference gets the same writes" apply_rounds k "$d/ref.raw"
	check "k: C still names H" header_backing "$d/C.qcow2" H.qcow2
	check "k: no acknowledged write lost" \
		qemu-img compare -q -f qcow2 -F raw "$d/C.qcow2" "$d/ref.raw"
	live_case k2 "$d" C.qcow2 H.qcow2 "$d/base.qcow2"
	qcow2_done k2 "$d" base.qcow2
else
	fail "k: make the chain"
fi

# ---------------------------------------------------------------- snapshot
# A snapshot in the middle of a coalesce: suspend, the old top C becomes
# the snapshot under a new top N, resume on N.  The job is over ("chain
# changed") and never writes into C (nor N) again; N's chain reads right.
d=$T/s
if ! want s; then
	:
elif make_qcow2_chain "$d"; then
	crawl_until s "$d" 4 500
	check "s: suspend" "$CTL" "$T/s.ctl" '{"op":"suspend","timeout_ms":60000}'
	o1=$(co_get s coalesce.offset)
	sleep 0.5	# five chunks, were they not held
	check "s: no chunk while suspended ($o1)" [ "$(co_get s coalesce.offset)" = "$o1" ]
	(cd "$d" && qemu-img create -q -f qcow2 -b C.qcow2 -F qcow2 N.qcow2) ||
		fail "s: snapshot"
	check "s: resume on the new top" \
		"$CTL" "$T/s.ctl" "{\"op\":\"resume\",\"image\":\"$d/N.qcow2\"}"
	# (closing C trimmed its preallocated tail: its bytes from now on)
	sum=$(sha256sum <"$d/C.qcow2")
	check "s: the job failed" [ "$(co_get s coalesce.state)" = failed ]
	check "s: because the chain changed" \
		[ "$(co_get s coalesce.error)" = "chain changed" ]
	check "s: status names C as backing" [ "$(co_get s backing)" = "$d/C.qcow2" ]
	rounds_after() { guest_round s 601 && guest_round s 602 && guest_round s 603; }
	check "s: guest writes on the new top" rounds_after
	sleep 0.5
	check "s: the snapshot C is untouched" [ "$(sha256sum <"$d/C.qcow2")" = "$sum" ]
	check "s: server exits 0" stop_server "$SERVER_PID"
	check "s: reference gets the same writes" apply_rounds s "$d/ref.raw"
	check "s: qemu-img check of N" qemu-img check -q -f qcow2 "$d/N.qcow2"
	check "s: N still names C" header_backing "$d/N.qcow2" C.qcow2
	check "s: content of N's chain" \
		qemu-img compare -q -f qcow2 -F raw "$d/N.qcow2" "$d/ref.raw"
else
	fail "s: make the chain"
fi

# ---------------------------------------------------------------- VHD
# qemu cannot open VHD differencing images: the chain is written and read
# through ngdp-server, and vhd-tool creates the children.
vhd_write() {	# vhd_write NAME IMAGE QEMU-IO-ARGS...
	local name=$1 img=$2 rc
	shift 2
	start_server "$name" --image "$img" || return 1
	qemu-io -f raw "$(uri "$name")" "$@" >/dev/null
	rc=$?
	stop_server "$SERVER_PID" || return 1
	return $rc
}
# Can the engine switch a VHD's parent?  A 1 MiB chain H <- C, coalesced.
vhd_skip_works() {
	local d=$T/vp e
	mkdir -p "$d"
	(cd "$d" &&
		qemu-img create -q -f vpc -o subformat=dynamic,force_size=on H.vhd 1M &&
		"$NGDP_VHD_TOOL" create-diff C.vhd H.vhd) || return 0
	start_server vp --image "$d/C.vhd" --control "$T/vp.ctl" || return 0
	"$CTL" "$T/vp.ctl" coalesce "$d/H.vhd" >/dev/null
	wait_state vp done >/dev/null
	e=$(co_get vp coalesce.error)
	stop_server "$SERVER_PID"
	case $e in *"not supported"*) return 1 ;; esac
	return 0
}
if ! want v; then
	:
elif ! have_vhd; then
	skip "VHD: src/formats/vhd.c is not there yet"
elif [ ! -x "${NGDP_VHD_TOOL:-}" ]; then
	skip "VHD: no vhd-tool (NGDP_VHD_TOOL) to create differencing images"
elif ! vhd_skip_works; then
	skip "VHD: the engine cannot rewrite a VHD's parent yet (image_skip_backing: ENOTSUP)"
else
	d=$T/v
	mkdir -p "$d"
	if (cd "$d" &&
		qemu-img create -q -f vpc -o subformat=dynamic,force_size=on base.vhd 64M &&
		qemu-io -f vpc base.vhd -c "write -P 0x11 0 32M" -c "write -P 0x12 48M 8M" \
			>/dev/null &&
		"$NGDP_VHD_TOOL" create-diff H.vhd base.vhd) &&
		vhd_write vw1 "$d/H.vhd" -c "write -P 0x22 8M 16M" -c "write -z 28M 2M" \
			-c "write -P 0x23 40M 4M" -c "write -P 0x24 1000k 100k" \
			-c "write -P 0x25 60M 2M" &&
		(cd "$d" && "$NGDP_VHD_TOOL" create-diff C.vhd H.vhd) &&
		vhd_write vw2 "$d/C.vhd" -c "write -P 0x33 16M 4M" -c "write -P 0x34 42M 64k" \
			-c "write -P 0x35 12345 6789" &&
		start_server vref --image "$d/C.vhd" --readonly &&
		qemu-img convert -f raw -O raw "$(uri vref)" "$d/ref.raw" &&
		stop_server "$SERVER_PID"; then
		live_case v "$d" C.vhd H.vhd "$d/base.vhd"
		check "v: C names base.vhd" eval \
			"'$NGDP_VHD_TOOL' info '$d/C.vhd' | grep -q 'parent base.vhd'"
		start_server vchk --image "$d/C.vhd" --readonly || fail "v: restart"
		check "v: content = original chain + guest writes, without H" \
			qemu-img compare -q -f raw -F raw "$(uri vchk)" "$d/ref.raw"
		check "v: server exits 0" stop_server "$SERVER_PID"
	else
		fail "v: make the chain"
	fi
fi
finish
