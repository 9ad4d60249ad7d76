# SPDX-License-Identifier: MIT
# stop --safe refuses (EBUSY), naming the holder, while mounted or open and
# stops an idle device;
# del --async returns and the device goes; --no-part-scan is honoured.
. "$(dirname "$0")/lib.sh"
truncate -s 64M "$TMP/img"
add -t loop -f "$TMP/img"
mkfs.ext4 -q -F "$DEV" && mkdir "$TMP/mnt" && mount "$DEV" "$TMP/mnt" || fail "mount"
"$Z" stop --safe -n "$ID" 2>"$TMP/err" && fail "stop --safe succeeded while mounted"
grep -q "device $ID: busy: $DEV is mounted at $TMP/mnt (nothing was stopped)" "$TMP/err" ||
	fail "unclear: $(cat "$TMP/err")"
state_is "$ID" LIVE || fail "device not live after a refused stop"
echo x >"$TMP/mnt/still-works" || fail "fs broken after refused stop"
umount "$TMP/mnt"
# A process with it open is named too.
hold_open "$DEV"
"$Z" stop --safe -n "$ID" 2>"$TMP/err" && fail "stop --safe succeeded while open"
kill "$HOLDER"
wait "$HOLDER" 2>/dev/null
grep -q "device $ID: busy: $DEV is still open by pid $HOLDER (sleep) (nothing was stopped)" \
	"$TMP/err" || fail "unclear: $(cat "$TMP/err")"
state_is "$ID" LIVE || fail "device not live after a refused stop"
timeout 60 "$Z" stop --safe -n "$ID" || fail "stop --safe of an idle device"
[ ! -e "$DEV" ] || fail "node left after stop"
no_devices || fail "device left after stop"

add -t null
timeout 60 "$Z" del --async -n "$ID" || fail "del --async"
wait_until 20 no_devices || fail "device still there after del --async"
wait_until 20 no_daemons || fail "daemon still there after del --async"

add -t null --no-part-scan
flags=$("$Z" list -n "$ID" --json)
grep -q NO_AUTO_PART_SCAN <<<"$flags" || fail "no NO_AUTO_PART_SCAN flag: $flags"
exit 0
