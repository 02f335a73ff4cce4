#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-only
# Run every tests/server/t-*.sh (or those named) once per I/O engine
# (ENGINES, default "aio uring") through tests/run-tests.sh: each
# (test, engine) run is one test program; exit 0 pass, 1 fail, 77 skip.
# Usage: run.sh [--also "SPEC"]... [t-name.sh...]
#   --also SPEC  another test program for the same run (a unit test
#                binary, a fuzz regression; SPEC as in run-tests.sh)
# Environment: NGDP_SERVER, NGDP_HELPERS, NGDP_VHD_TOOL, NGDP_IMGIO (see
# mk/server.mk).
set -u
here=$(cd "$(dirname "$0")" && pwd)
specs=()
while [ $# -gt 0 ] && [ "$1" = --also ]; do
	specs+=("$2")
	shift 2
done
tests=("$@")
[ ${#tests[@]} = 0 ] && tests=($(cd "$here" && ls t-*.sh))
for t in "${tests[@]}"; do
	t=$(basename "${t%.sh}").sh
	for e in ${ENGINES:-aio uring}; do
		specs+=("ENGINE=$e $here/$t")
	done
done
exec bash "$here/../run-tests.sh" -s server -t 600 "${specs[@]}"
