# SPDX-License-Identifier: MIT
# A mirror leg fails under fio write+verify (dm error under it), in every
# data mode: fio sees no error, the leg is reported failed, the device runs
# degraded, and the failure is persisted: after kill -9 and recover the leg
# is still failed and never read.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/raid-lib.sh"
truncate -s 96M "$TMP/a" "$TMP/b"
# written_mb_at_least ID MB: the device has written MB MiB since it came up
written_mb_at_least() { [ "$(awk '{ print $7 }' "/sys/block/ublkb$1/stat")" -ge $(($2 * 2048)) ]; }
dm_leg b "$TMP/b"
leg1=$DM_DEV
for mode in zero-copy copy auto-zero-copy user-copy; do
	dm_heal b
	add -t mirror file="$TMP/a" file="$leg1" --mode "$mode" -n 0
	[ "$(leg_state 0 1)" = ok ] || fail "$mode: leg 1 not ok at start: $(leg_state 0 1)"
	[ "$(dev_field 0 degraded)" = False ] || fail "$mode: degraded at start"
	job=(--filename="$DEV" --rw=randwrite --bsrange=4k-256k --iodepth=16 --size=64M
		--verify=crc32c --verify_fatal=1)
	bg_fio w "${job[@]}" --do_verify=1
	# Fail the leg early in fio's write phase (8 of 64 MiB written): a
	# fixed sleep can miss it on a fast host, and then no write fails it.
	wait_until 60 written_mb_at_least "$ID" 8 || fail "$mode: fio wrote nothing"
	fio_running || fail "$mode: fio ended before the leg failed"
	dm_fail b
	bg_fio_ok w
	[ "$(leg_state 0 1)" = failed ] || fail "$mode: leg 1 is '$(leg_state 0 1)', not failed"
	[ "$(dev_field 0 degraded)" = True ] || fail "$mode: not reported degraded"
	[ "$(dev_json 0 ".legs[1].errors > 0")" = True ] || fail "$mode: no leg errors"
	[ "$(dev_errors 0)" = 0 ] || fail "$mode: $(dev_errors 0) requests ended in error"
	grep -q '"failed=1"' /run/zublk/0.json || fail "$mode: failed=1 not in the state file"
	# kill -9 and recover: the leg stays failed and is never read.
	kill -9 "$(dev_field 0 daemon_pid)"
	wait_until 20 state_is 0 QUIESCED || fail "$mode: not QUIESCED after kill -9"
	timeout 30 "$Z" recover -n 0 >/dev/null 2>"$TMP/err" || fail "$mode: recover: $(cat "$TMP/err")"
	wait_until 20 state_is 0 LIVE || fail "$mode: not LIVE after recover"
	[ "$(leg_state 0 1)" = failed ] || fail "$mode: after recover leg 1 is '$(leg_state 0 1)'"
	[ "$(leg_state 0 0)" = ok ] || fail "$mode: after recover leg 0 is '$(leg_state 0 0)'"
	dm_heal b # it must not matter: a failed leg stays out
	fio_ok r "${job[@]}" --verify_only=1
	[ "$(dev_errors 0)" = 0 ] || fail "$mode: $(dev_errors 0) requests ended in error"
	note "$mode: leg failed under fio, 0 errors; recovered degraded; verified"
	del 0
done
exit 0
