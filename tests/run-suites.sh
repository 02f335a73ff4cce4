#!/bin/bash
# Run test suites (make targets) one after another, all of them even when
# one fails; sum the "N passed, N failed[, N skipped]" lines they print
# (and cmocka's PASSED/FAILED lines) into one closing line.
# Usage: run-suites.sh MAKE target...
set -u
make=$1; shift
tp=0 tf=0 ts=0 bad=()
for s in "$@"; do
	echo "=================== $s"
	log=$(mktemp)
	$make --no-print-directory "$s" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	# a suite's own closing lines, last one per runner
	read -r p f k < <(awk '
		/^\[  PASSED  \] [0-9]+ test/ { p += $4 }
		/^\[  FAILED  \] [0-9]+ test/ { f += $4 }
		/^[A-Za-z0-9_:.\[\]-]*:? ?[0-9]+ passed, [0-9]+ failed/ {
			line = $0; sub(/^[^0-9]*/, "", line); split(line, a, /[ ,]+/)
			lp = a[1]; lf = a[3]; ls = (a[5] != "" ? a[5] : 0)
			if (FILENAME != last) last = FILENAME
			sp = lp; sf = lf; sk = ls
		}
		END { print p + sp, f + sf, sk + 0 }' "$log")
	rm -f "$log"
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
	[ "$rc" -ne 0 ] && bad+=("$s")
	tp=$((tp + p)) tf=$((tf + f)) ts=$((ts + k))
	echo "=================== $s: $p passed, $f failed, $k skipped (exit $rc)"
done
[ ${#bad[@]} -gt 0 ] && echo "failed suites: ${bad[*]}"
echo "$tp passed, $tf failed, $ts skipped"
[ ${#bad[@]} -eq 0 ]
