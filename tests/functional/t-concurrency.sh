#!/bin/bash
# 20 concurrent snapshot/clone/destroy/set calls on one SR: afterwards SR.ls
# is exactly what the calls' results say and every image checks clean.
# per-plugin
. "$(dirname "$0")/lib.sh"

mk_sr || { fail "SR setup"; finish; exit; }
bases=() victims=()
for i in 1 2 3 4; do
	vol_create $((256 * 1024 * 1024)) "base$i"; bases+=("$KEY")
	qemu-io -f qcow2 -c "write -P $i 0 1M" "$(vol_image "$KEY")" >/dev/null
done
for i in 1 2 3 4 5; do vol_create 1048576 "victim$i"; victims+=("$KEY"); done

dir=$XSS/volume/org.xen.xapi.storage.$PLUGIN
mkdir "$T/res"
n=0
launch() { # launch METHOD JSON
	n=$((n + 1))
	( printf '%s' "$2" | "$dir/$1" --json > "$T/res/$n.$1" 2>/dev/null; echo $? > "$T/res/$n.rc" ) &
}
s="\"dbg\":\"conc\",\"sr\":\"$SR\""
for i in 0 1 2 3; do
	b=${bases[$i]}
	launch Volume.snapshot "{$s,\"key\":\"$b\"}"
	launch Volume.clone "{$s,\"key\":\"$b\"}"
	launch Volume.set "{$s,\"key\":\"$b\",\"k\":\"tag$i\",\"v\":\"v$i\"}"
done
for v in "${victims[@]}"; do launch Volume.destroy "{$s,\"key\":\"$v\"}"; done
launch Volume.snapshot "{$s,\"key\":\"${bases[0]}\"}"
launch Volume.clone "{$s,\"key\":\"${bases[1]}\"}"
launch Volume.set "{$s,\"key\":\"${bases[2]}\",\"k\":\"extra\",\"v\":\"x\"}"
wait
check "20 calls were made" [ "$n" = 20 ]
check "every call succeeded" bash -c "! grep -qv '^0$' $T/res/*.rc"

expected=$(printf '%s\n' "${bases[@]}"
	cat "$T"/res/*.Volume.snapshot "$T"/res/*.Volume.clone | jq -r .key)
vcall SR.ls "{$s}"
check "SR.ls has exactly the expected volumes" \
	[ "$(jq -r '.[].key' <<<"$OUT" | sort)" = "$(sort <<<"$expected")" ]
check "the 4 bases kept their keys" jqt --arg b "${bases[2]}" \
	'map(select(.key==$b))[0].keys == {"tag2":"v2","extra":"x"}' <<<"$OUT"
bad=0
coalesce_idle	# a coalesce job writes images and deletes merged ones
for f in "$SR"/images/*.qcow2; do qemu-img check -q -f qcow2 "$f" || bad=$((bad + 1)); done
check "qemu-img check clean on every image" [ "$bad" = 0 ]
# each snapshot/clone sees its base's data
ok=1
for f in "$T"/res/*.Volume.snapshot "$T"/res/*.Volume.clone; do
	k=$(jq -r .key "$f")
	img=$(vol_image "$k")
	p=$(qemu-io -f qcow2 -c "read -v 0 1" "$img" | awk 'NR==1 {print $2}')
	[ -n "$p" ] && [ $((16#$p)) -ge 1 ] && [ $((16#$p)) -le 4 ] || ok=0
done
check "every copy reads its base's pattern" [ $ok = 1 ]
check "no temp files left" [ -z "$(find "$SR" -name '.tmp-*')" ]
finish
