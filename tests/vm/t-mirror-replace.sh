# SPDX-License-Identifier: MIT
# mirror replace under fio write+verify: a failed leg (dm error) is
# replaced by a new file, rebuilt in the background while IO goes on, with
# progress in `list --json`; fio sees no error and after del the legs are
# identical.  Then a hot replace of a healthy leg, and a replace refused
# while a rebuild runs.  fio runs until each rebuild is done, then stops.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/raid-lib.sh"
truncate -s 128M "$TMP/a" "$TMP/b" "$TMP/c" "$TMP/d"
dm_leg b "$TMP/b"
# 128M at 8M/s: the rebuild takes 16 s, long enough to watch it.
add -t mirror file="$TMP/a" file="$DM_DEV" rebuild_rate=8M -n 0
job=(--filename="$DEV" --rw=randwrite --bsrange=4k-256k --iodepth=16 --size=112M
	--verify=crc32c --verify_backlog=512 --verify_fatal=1 --time_based)
bg_fio w "${job[@]}" --runtime=300
sleep 2
fio_running || fail "fio ended early: $(tail -3 "$TMP/w.log")"
dm_fail b
wait_until 20 eval '[ "$(leg_state 0 1)" = failed ]' || fail "leg 1 did not fail"
note "leg 1 failed under fio"
"$Z" mirror replace -n 0 1 "$TMP/c" >"$TMP/out" 2>&1 || fail "replace: $(cat "$TMP/out")"
note "$(cat "$TMP/out")"
st=$(leg_state 0 1)
[ "$(dev_json 0 ".legs[1].file")" = "$TMP/c" ] || fail "leg 1 is not the new file"
[ "$st" = rebuilding ] || fail "leg 1 is '$st' right after the replace"
# One rebuild at a time.
"$Z" mirror replace -n 0 0 "$TMP/d" >"$TMP/out" 2>&1 && fail "a second replace was accepted"
grep -q "being rebuilt" "$TMP/out" || fail "second replace: $(cat "$TMP/out")"
sleep 3
pct=$(dev_json 0 .rebuild.percent)
[ -n "$pct" ] && [ "$pct" -gt 0 ] && [ "$pct" -lt 100 ] ||
	fail "rebuild progress in list --json: '$pct': $("$Z" list --json)"
note "rebuild at $pct% after 3 s"
wait_until 180 rebuild_done 0 1 || fail "rebuild did not finish: $(dev_json 0 .rebuild)"
bg_fio_stop w
note "rebuilt under fio"
grep -q "failed=" /run/zublk/0.json && fail "failed= still in the state file"
grep -q "\"file=$TMP/c\"" /run/zublk/0.json || fail "the state file does not name the new leg"
[ "$(dev_errors 0)" = 0 ] || fail "$(dev_errors 0) requests ended in error"
# Reads now also come from the rebuilt leg: all of it must verify.
fio_ok r --filename="$DEV" --rw=write --bs=1M --size=128M --verify=crc32c --do_verify=1
del 0
cmp "$TMP/a" "$TMP/c" || fail "legs differ after the rebuild"
note "legs identical"

# Hot replace of a healthy leg under fio: leg 0 (a) by d, rebuilt from c.
add -t mirror file="$TMP/a" file="$TMP/c" -n 0 --mode copy
bg_fio w2 "${job[@]}" --runtime=300
sleep 2
"$Z" mirror replace -n 0 "$TMP/a" "$TMP/d" >"$TMP/out" 2>&1 || fail "replace: $(cat "$TMP/out")"
wait_until 180 rebuild_done 0 0 || fail "rebuild did not finish"
bg_fio_stop w2
[ "$(dev_errors 0)" = 0 ] || fail "$(dev_errors 0) requests ended in error"
del 0
cmp "$TMP/c" "$TMP/d" || fail "legs differ after the hot replace"
note "hot replace of a healthy leg: legs identical"

# The new leg fails during its rebuild: the rebuild stops, the leg is
# failed, IO goes on; a second replace then completes.
truncate -s 128M "$TMP/e"
dm_leg e "$TMP/e"
add -t mirror file="$TMP/c" file="$TMP/d" rebuild_rate=8M -n 0
bg_fio w3 "${job[@]}" --runtime=300
sleep 1
"$Z" mirror replace -n 0 1 "$DM_DEV" >"$TMP/out" 2>&1 || fail "replace: $(cat "$TMP/out")"
sleep 2
[ "$(leg_state 0 1)" = rebuilding ] || fail "leg 1 is '$(leg_state 0 1)' during its rebuild"
dm_fail e
wait_until 30 eval '[ "$(leg_state 0 1)" = failed ]' || fail "the failing new leg was not failed"
wait_until 10 no_rebuild 0 || fail "the rebuild did not stop"
grep -q '"failed=1"' /run/zublk/0.json || fail "failed=1 not in the state file"
"$Z" mirror replace -n 0 1 "$TMP/a" >"$TMP/out" 2>&1 || fail "second replace: $(cat "$TMP/out")"
wait_until 180 rebuild_done 0 1 || fail "the second rebuild did not finish"
bg_fio_stop w3
[ "$(dev_errors 0)" = 0 ] || fail "$(dev_errors 0) requests ended in error"
del 0
cmp "$TMP/c" "$TMP/a" || fail "legs differ after the second replace"
note "a new leg failing during its rebuild: stopped, failed; replaced again, identical"
exit 0
