# Helpers of the job scripts that domu-init runs in the small PV guests
# (busybox sh; GNU dd/cmp in /usr/bin for O_DIRECT); packed as /lib.sh.
# /dev/xvda: the disk under test, /dev/xvdb: a control disk shared with
# dom0 (sector 0: the guest's phase, sector 1: dom0's answer, sector 2:
# the exit status, written by init).  Patterns are in /data.
DD=/usr/bin/dd CMP=/usr/bin/cmp X=/dev/xvda CTL=/dev/xvdb P=/data
fail() { echo "domU: FAIL: $*"; exit 1; }
put() { # put FILE OFFSET_MIB [OFLAG]: O_DIRECT write, then fsync (a flush)
	$DD if=$P/$1 of=$X bs=1M seek=$2 oflag=direct${3:+,$3} conv=notrunc,fsync status=none ||
		fail "O_DIRECT write of $1 at ${2}M"
}
get_ok() { # get_ok FILE OFFSET_MIB: the disk holds FILE there (O_DIRECT read)
	n=$(($(stat -c %s $P/$1) / 1048576))
	$DD if=$X bs=1M skip=$2 count=$n iflag=direct status=none | $CMP -s - $P/$1
}
mark() { printf '%s\n' "$2" | $DD of=$CTL bs=512 seek=$1 count=1 conv=sync oflag=direct status=none; }
ctl() { $DD if=$CTL bs=512 skip=$1 count=1 iflag=direct status=none | tr -d '\000' | head -1; }
# rewrite_until ANSWER OFFSET_MIB MAX FILE...: write the FILEs in turn at
# OFFSET_MIB until dom0 answers ANSWER in sector 1 (at least one write, at
# most MAX); sets n (writes made) and last (the FILE written last)
rewrite_until() {
	a=$1 o=$2 max=$3 n=0 last=
	shift 3
	while [ "$(ctl 1)" != "$a" ]; do
		last=$1
		put $last $o
		shift
		set -- "$@" $last
		n=$((n + 1))
		[ $n -ge $max ] && fail "dom0 never answered $a"
	done
	[ $n -ge 1 ] || fail "no write overlapped dom0's $a"
}
