#!/bin/bash
# Runs the functional tests against an installed tree, for both SR types.
# Usage: run.sh INSTALL_ROOT [test names...]
# Tests marked "# per-plugin" run once with PLUGIN=ext4-ng and once with
# PLUGIN=xfs-ng; others run once.  Prints "N passed, N failed, N skipped".
set -u
here=$(cd "$(dirname "$0")" && pwd)
export INSTALL_ROOT=$1 SRCDIR=$(cd "$here/../.." && pwd)
shift
if [ "$(id -u)" -ne 0 ]; then
	echo "functional tests need root (loop devices, mkfs, mount): skipped"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
fi
export RESULTS=$(mktemp /tmp/xsng-results.XXXXXX)
trap 'rm -f "$RESULTS"' EXIT
tests=("$@")
[ ${#tests[@]} -eq 0 ] && tests=($(cd "$here" && ls t-*.sh))
crashed=0
for t in "${tests[@]}"; do
	t=${t%.sh}.sh
	plugins=(none)
	grep -q '^# per-plugin' "$here/$t" && plugins=(ext4-ng xfs-ng)
	for p in "${plugins[@]}"; do
		[ "$p" = none ] && p=ext4-ng
		echo "== $t [$p]"
		before=$(wc -l < "$RESULTS")
		PLUGIN=$p timeout 900 bash "$here/$t"
		rc=$?
		# a script that died before finish() counts as one failure
		if [ "$(wc -l < "$RESULTS")" = "$before" ] || { [ $rc -ne 0 ] && ! tail -1 "$RESULTS" | grep -qv ' 0 '; }; then
			if [ "$(wc -l < "$RESULTS")" = "$before" ]; then
				echo "  FAIL: $t [$p] died (status $rc)"
				echo "0 1 0" >> "$RESULTS"
				crashed=$((crashed + 1))
			fi
		fi
	done
done
read -r p f s < <(awk '{p+=$1; f+=$2; s+=$3} END {print p+0, f+0, s+0}' "$RESULTS")
echo "functional: $p passed, $f failed, $s skipped"
[ "$f" -eq 0 ]
