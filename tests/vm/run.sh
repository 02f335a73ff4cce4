#!/bin/bash
# Run guest tests (tests/vm/t-*.sh, or the names given) through
# tests/run-tests.sh, which prints the closing "N passed, N failed, N
# skipped" line.
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
# one runner for every suite (tests/README.md): exit 0 pass, 77 skip,
# anything else fail; a Xen boot under TCG takes minutes
exec bash "$SRCDIR/tests/run-tests.sh" -s vm -t 1800 "${tests[@]}"
