# SPDX-License-Identifier: MIT
# A leg that fails is in the state file before the write that found it is
# done: the manager thread, which saves failures, is busy with a slow
# rebuild, so the write saves it itself.  Then kill -9, the failed leg
# healed behind the daemon's back, and recover: that leg stays failed and
# its old data is never read.  A failed leg whose file is gone by a
# recovery: recovered degraded (the backing checked is the legs in sync).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/raid-lib.sh"
truncate -s 16M "$TMP/a" "$TMP/b" "$TMP/c" "$TMP/d"
dm_leg b "$TMP/b"
add -t mirror file="$TMP/a" file="$DM_DEV" file="$TMP/c" rebuild_rate=64k -n 0
# Leg 2 replaced: the rebuild copies 1 MiB, then waits 16 s for its rate
# (the state file, which list reads, shows no progress meanwhile).
"$Z" mirror replace -n 0 2 "$TMP/d" >"$TMP/out" 2>&1 || fail "replace: $(cat "$TMP/out")"
sleep 2
[ "$(dev_json 0 .rebuild.leg)" = 2 ] || fail "leg 2 is not being rebuilt: $(dev_json 0 .rebuild)"
grep -q '"failed=2"' /run/zublk/0.json || fail "failed=2 not in the state file: $(cat /run/zublk/0.json)"
dm_fail b
head -c 4096 /dev/urandom >"$TMP/new"
dd if="$TMP/new" of="$DEV" bs=4k seek=1024 oflag=direct conv=notrunc status=none ||
	fail "the write failed"
# No wait: the write was done, so the failure must be saved already.
grep -q '"failed=1,2"' /run/zublk/0.json ||
	fail "the write is done but the state file does not say leg 1 failed: $(grep -o '"failed=[^"]*"' /run/zublk/0.json)"
[ "$(leg_state 0 1)" = failed ] || fail "leg 1 is '$(leg_state 0 1)', not failed"
[ "$(dev_json 0 .rebuild.leg)" = 2 ] || fail "the rebuild ended before the check"
note "leg 1 failed by a write during a slow rebuild: in the state file when the write was done"
# kill -9, leg 1 readable again (with its old data), recover.
kill -9 "$(dev_field 0 daemon_pid)"
wait_until 20 state_is 0 QUIESCED || fail "not QUIESCED after kill -9"
dm_heal b
timeout 30 "$Z" recover -n 0 >/dev/null 2>"$TMP/err" || fail "recover: $(cat "$TMP/err")"
wait_until 20 state_is 0 LIVE || fail "not LIVE after recover"
[ "$(leg_state 0 1)" = failed ] || fail "after recover leg 1 is '$(leg_state 0 1)'"
for i in $(seq 8); do
	dd if="$DEV" of="$TMP/got" bs=4k skip=1024 count=1 iflag=direct status=none ||
		fail "read $i failed"
	cmp -s "$TMP/new" "$TMP/got" || fail "read $i: not the data written (leg 1's old data?)"
done
note "recovered with leg 1 failed; the write reads back 8 times"
del 0
# A failed leg gone by the time of a recovery (its file removed): the
# backing a recovery checks is the legs in sync, and it goes on degraded.
truncate -s 16M "$TMP/e" "$TMP/f"
add -t mirror file="$TMP/e" file="$TMP/f"
"$Z" mirror fail -n "$ID" 1 >"$TMP/out" 2>&1 || fail "mirror fail: $(cat "$TMP/out")"
grep -q '"failed=1"' "/run/zublk/$ID.json" || fail "failed=1 not saved: $(cat "/run/zublk/$ID.json")"
rm "$TMP/f"
kill_recover "a failed leg gone"
[ "$(leg_state "$ID" 1)" = failed ] || fail "after recover leg 1 is '$(leg_state "$ID" 1)'"
dd if="$TMP/new" of="$DEV" bs=4k seek=7 oflag=direct conv=notrunc status=none ||
	fail "a write after the recovery failed"
dd if="$DEV" of="$TMP/got" bs=4k skip=7 count=1 iflag=direct status=none &&
	cmp -s "$TMP/new" "$TMP/got" || fail "a read after the recovery: not the data written"
del "$ID"
note "a failed leg's file removed, kill -9: recovered degraded"
# A state file of an older zublk, which counted a failed leg in the
# backing too: its recovery is taken (the leg there, as it was).
ident() { printf '%x:%x:%s' "$(stat -c %d "$1")" "$(stat -c %i "$1")" "$(stat -c %s "$1")"; }
truncate -s 16M "$TMP/g" "$TMP/h"
add -t mirror file="$TMP/g" file="$TMP/h"
"$Z" mirror fail -n "$ID" 1 >"$TMP/out" 2>&1 || fail "mirror fail: $(cat "$TMP/out")"
grep -q "\"files\":\"$(ident "$TMP/g")\"" "/run/zublk/$ID.json" ||
	fail "the failed leg still in the backing: $(grep -o '"files":"[^"]*"' "/run/zublk/$ID.json")"
kill -9 "$(dev_field "$ID" daemon_pid)"
wait_until 20 state_is "$ID" QUIESCED || fail "older state: not QUIESCED after kill -9"
sed -i "s|\"files\":\"[^\"]*\"|\"files\":\"$(ident "$TMP/g") $(ident "$TMP/h")\"|" \
	"/run/zublk/$ID.json"
timeout 30 "$Z" recover -n "$ID" >/dev/null 2>"$TMP/err" || fail "older state: recover: $(cat "$TMP/err")"
wait_until 20 state_is "$ID" LIVE || fail "older state: not LIVE after recover"
[ "$(leg_state "$ID" 1)" = failed ] || fail "older state: leg 1 is '$(leg_state "$ID" 1)'"
del "$ID"
note "a state file that counts the failed leg (an older zublk's): recovered"
exit 0
