#!/bin/bash
# kill -9 at random instants of snapshot/clone/destroy/create/set calls:
# the SR stays readable, no volume is lost, every image checks clean, and
# the next attach collects what the killed calls left.
# per-plugin
. "$(dirname "$0")/lib.sh"

mk_sr || { fail "SR setup"; finish; exit; }
dir=$XSS/volume/org.xen.xapi.storage.$PLUGIN
s="\"dbg\":\"crash\",\"sr\":\"$SR\""
vol_create $((64 * 1024 * 1024)) keep
KEEP=$KEY
qemu-io -f qcow2 -c "write -P 0x5a 0 1M" "$(vol_image "$KEEP")" >/dev/null
lost=0 corrupt=0 kills=0
for i in $(seq 1 40); do
	case $((i % 5)) in
	0) m=Volume.snapshot j="{$s,\"key\":\"$KEEP\"}" ;;
	1) m=Volume.clone j="{$s,\"key\":\"$KEEP\"}" ;;
	2) m=Volume.create j="{$s,\"name\":\"c$i\",\"description\":\"\",\"size\":1048576,\"sharable\":false}" ;;
	3) m=Volume.set j="{$s,\"key\":\"$KEEP\",\"k\":\"k$i\",\"v\":\"v\"}" ;;
	4) vcall SR.ls "{$s}"
	   k=$(jq -r --arg k "$KEEP" '[.[].key | select(. != $k)][0] // empty' <<<"$OUT")
	   [ -n "$k" ] || continue
	   m=Volume.destroy j="{$s,\"key\":\"$k\"}" ;;
	esac
	vcall SR.ls "{$s}"; before=$(jq -r '.[].key' <<<"$OUT" | sort)
	printf '%s' "$j" > "$T/in"
	"$dir/$m" --json < "$T/in" > "$T/out" 2>/dev/null &
	pid=$!
	sleep "0.00$((RANDOM % 10))$((RANDOM % 10))"
	kill -9 $pid 2>/dev/null && kills=$((kills + 1))
	wait $pid 2>/dev/null
	vcall SR.ls "{$s}"
	[ "$RC" = 0 ] || { lost=$((lost + 1)); continue; }
	after=$(jq -r '.[].key' <<<"$OUT" | sort)
	# nothing that existed before may vanish, except the destroy's target
	for k in $before; do
		if ! grep -qx "$k" <<<"$after" && ! { [ "$m" = Volume.destroy ] && grep -q "$k" "$T/in"; }; then
			lost=$((lost + 1))
		fi
	done
	for k in $after; do
		img=$(vol_image "$k")
		[ -e "$img" ] && qemu-img check -q -f qcow2 "$img" >/dev/null 2>&1 || corrupt=$((corrupt + 1))
	done
done
echo "  ($kills calls killed mid-way)"
check "no volume lost across 40 killed calls" [ "$lost" = 0 ]
check "every listed volume has a clean image" [ "$corrupt" = 0 ]
check "the kept volume still has its data" qio -r -f qcow2 -c 'read -P 0x5a 0 1M' "$(vol_image "$KEEP")"
# a fresh attach collects garbage: every image file is then referenced
vcall SR.detach "{$s}"; vcall SR.attach "{\"dbg\":\"t\",\"configuration\":$CONFIG}"
expect_ok "re-attach after the kills"
coalesce_idle	# the attach may have started one: let it end first
refs=$(cat "$SR"/meta/*.json | jq -r '.image // empty, .parent // empty, .id // empty' | sort -u)
orphans=0
for f in "$SR"/images/*; do
	id=$(basename "$f"); id=${id%%.*}
	grep -qx "$id" <<<"$refs" || orphans=$((orphans + 1))
done
check "no orphan image files after attach" [ "$orphans" = 0 ]
check "no temp files after attach" [ -z "$(find "$SR" -name '.tmp-*')" ]
ids=$(ls "$SR"/meta | sed -n 's/^i-\(.*\)\.json$/\1/p')
unref=0
for id in $ids; do
	grep -q "\"$id\"" <(cat "$SR"/meta/v-*.json; for j in "$SR"/meta/i-*.json; do jq -r '.parent // empty' "$j" | sed 's/.*/"&"/'; done) || unref=$((unref + 1))
done
check "no unreferenced image records after attach" [ "$unref" = 0 ]
finish
