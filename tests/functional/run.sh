#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-only
# Run the functional tests against an installed tree through
# tests/run-tests.sh.  Tests marked "# per-plugin" run once with
# PLUGIN=ext4-ng and once with PLUGIN=xfs-ng (two test program runs);
# the others run once, with PLUGIN=ext4-ng.
# Usage: run.sh INSTALL_ROOT [t-name...]
set -u
here=$(cd "$(dirname "$0")" && pwd)
export INSTALL_ROOT=${1:?usage: run.sh INSTALL_ROOT [tests...]}
export SRCDIR=$(cd "$here/../.." && pwd)
shift
tests=("$@")
[ ${#tests[@]} -eq 0 ] && tests=($(cd "$here" && ls t-*.sh))
specs=()
for t in "${tests[@]}"; do
	t=$(basename "${t%.sh}").sh
	if [ ! -f "$here/$t" ]; then
		specs+=("$here/$t") # run-tests.sh reports it as a failure
	elif grep -q '^# per-plugin' "$here/$t"; then
		specs+=("PLUGIN=ext4-ng $here/$t" "PLUGIN=xfs-ng $here/$t")
		# "# per-format": also on VHD and raw SRs (one SR type each)
		grep -q '^# per-format' "$here/$t" &&
			specs+=("IMAGE_FORMAT=vhd PLUGIN=ext4-ng $here/$t" "IMAGE_FORMAT=raw PLUGIN=xfs-ng $here/$t")
	else
		specs+=("PLUGIN=ext4-ng $here/$t")
	fi
done
# Some run a second time on the real default paths (/var/run/sr-mount,
# /var/run/xapi-storage-ng: /var/run is a symlink to /run on XCP-ng and
# Debian), as well as under temporary roots.
if [ -z "${1:-}" ]; then
	for t in ${REAL_PATH_TESTS-t-datapath t-snapshot-clone t-sr-lifecycle}; do
		specs+=("XSNG_TEST_REAL_PATHS=1 PLUGIN=ext4-ng $here/$t.sh")
	done
fi
exec bash "$here/../run-tests.sh" -s functional -t 900 "${specs[@]}"
