# SPDX-License-Identifier: MIT
# Read errors on one mirror leg: each is retried on the other leg, the
# application sees none, and the leg that failed them is reported failed.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/raid-lib.sh"
truncate -s 96M "$TMP/a" "$TMP/b" "$TMP/c"
dm_leg a "$TMP/a"
leg0=$DM_DEV
for mode in zero-copy copy; do
	dm_heal a
	add -t mirror file="$leg0" file="$TMP/b" file="$TMP/c" --mode "$mode"
	job=(--filename="$DEV" --rw=randwrite --bsrange=4k-1M --iodepth=16 --size=64M
		--verify=crc32c --verify_fatal=1)
	fio_ok w "${job[@]}" --do_verify=0
	dm_fail a
	# Reads only: every one that lands on leg 0 fails there first.
	fio_ok r "${job[@]}" --verify_only=1
	[ "$(leg_state "$ID" 0)" = failed ] || fail "$mode: leg 0 is '$(leg_state "$ID" 0)'"
	[ "$(leg_state "$ID" 1)" = ok ] && [ "$(leg_state "$ID" 2)" = ok ] ||
		fail "$mode: legs 1, 2: $(leg_state "$ID" 1) $(leg_state "$ID" 2)"
	[ "$(dev_field "$ID" in_sync)" = 2 ] || fail "$mode: in_sync is not 2"
	[ "$(dev_errors "$ID")" = 0 ] || fail "$mode: $(dev_errors "$ID") requests ended in error"
	note "$mode: read errors retried, leg 0 failed, 0 errors"
	del "$ID"
done
exit 0
