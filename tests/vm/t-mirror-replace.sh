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

# Reads out on a leg's old device when it is replaced, failing after the
# new leg is in: their errors are the old device's, not the new leg's,
# which stays in sync (the reads go to the other leg).  Leg 1 is a dm
# device whose reads wait 3 s and then fail (dm-delay over dm-error).
modprobe dm-delay 2>/dev/null
if ! dmsetup targets 2>/dev/null | grep -q '^delay'; then
	skip_check "reads failing on a replaced leg's old device" "no dm-delay target"
	exit 0
fi
truncate -s 32M "$TMP/f" "$TMP/g" "$TMP/h"
dm_leg slow "$TMP/g"
sectors=$(blockdev --getsz "$DM_DEV")
dmsetup create zublk-test-gone --table "0 $sectors error" || fail "dm error device"
DMS+=(zublk-test-gone)
add -t mirror file="$TMP/f" file="$DM_DEV" -n 0
wait_until 60 no_rebuild 0 || fail "slow leg: a rebuild at add did not end"
dm_table slow "delay /dev/mapper/zublk-test-gone 0 3000"
bg_fio r2 --filename="$DEV" --rw=randread --bs=4k --iodepth=8 --size=32M \
	--time_based --runtime=300
# slow_reads: the reads dm-delay holds (its status: start, length, "delay",
# reads, writes, flushes)
slow_reads() { dmsetup status zublk-test-slow | awk '$3 == "delay" { print $4 + 0 }'; }
# Replaced as soon as a read is out there (it fails 3 s after it went).
wait_until 20 eval '[ "$(slow_reads)" -gt 0 ]' ||
	fail "slow leg: no read went to the slow device: $(dmsetup status zublk-test-slow)"
[ "$(leg_state 0 1)" = ok ] || fail "slow leg: leg 1 is '$(leg_state 0 1)' before the replace"
"$Z" mirror replace -n 0 1 "$TMP/h" >"$TMP/out" 2>&1 || fail "slow leg: replace: $(cat "$TMP/out")"
out=$(slow_reads)
[ "$out" -gt 0 ] || skip_check "reads failing on a replaced leg's old device" \
	"none was out there any more when the replace was done"
wait_until 60 rebuild_done 0 1 || fail "slow leg: the rebuild did not finish: $(leg_state 0 1)"
# The reads out on the old device fail 3 s after they went out.
sleep 5
[ "$(leg_state 0 1)" = ok ] ||
	fail "slow leg: the new leg is '$(leg_state 0 1)': $(grep -h 'leg 1' /run/zublk/0.log | tail -2)"
bg_fio_stop r2
[ "$(dev_errors 0)" = 0 ] || fail "slow leg: $(dev_errors 0) requests ended in error"
del 0
note "$out reads out on a replaced leg's old device, failing there: the new leg stays in sync"
exit 0
