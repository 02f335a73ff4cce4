# SPDX-License-Identifier: LGPL-2.1-only
# Reading an SR's records from the shell, shared by the tests
# (tests/functional/lib.sh) and the benchmark (bench/coalesce.sh).

# sr_chain_len SR KEY: images in the volume's chain, from the records
sr_chain_len() {
	local id n=0
	id=$(jq -r .image "$1/meta/v-$2.json")
	while [ -n "$id" ] && [ "$id" != null ]; do
		n=$((n + 1))
		id=$(jq -r '.parent // empty' "$1/meta/i-$id.json")
	done
	echo "$n"
}

# sr_chain SR KEY: the image ids of the volume's chain, leaf first
sr_chain() {
	local id
	id=$(jq -r .image "$1/meta/v-$2.json")
	while [ -n "$id" ] && [ "$id" != null ]; do
		echo "$id"
		id=$(jq -r '.parent // empty' "$1/meta/i-$id.json")
	done
}
