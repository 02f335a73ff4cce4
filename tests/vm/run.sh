#!/bin/bash
# Run guest tests (tests/vm/t-*.sh, or the names given) one after another;
# each exits 0 pass, 1 fail, 77 skip.  Prints one closing line
# "vm: N passed, N failed, N skipped".
# Environment: INSTALL_ROOT (a `make install DESTDIR=` tree), SRCDIR.
set -u
here=$(cd "$(dirname "$0")" && pwd)
export SRCDIR=${SRCDIR:-$(cd "$here/../.." && pwd)}
: "${INSTALL_ROOT:?set INSTALL_ROOT to a make install DESTDIR= tree}"
export INSTALL_ROOT
cd "$SRCDIR" || exit 1
if [ $# -gt 0 ]; then
	tests=()
	for t in "$@"; do t=${t%.sh}; tests+=("$here/${t#tests/vm/}.sh"); done
else
	tests=("$here"/t-*.sh)
fi
p=0 f=0 s=0
for t in "${tests[@]}"; do
	n=$(basename "$t" .sh)
	echo "== $n"
	start=$SECONDS
	bash "$t"
	rc=$?
	case $rc in
	0) p=$((p + 1)); r=PASS ;;
	77) s=$((s + 1)); r=SKIP ;;
	*) f=$((f + 1)); r="FAIL (exit $rc)" ;;
	esac
	echo "== $n: $r in $((SECONDS - start))s"
done
echo "vm: $p passed, $f failed, $s skipped"
[ "$f" -eq 0 ]
