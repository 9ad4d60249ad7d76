# SPDX-License-Identifier: MIT
# A mounted device's daemon dies and is recovered: the file system keeps
# working, and the new daemon does not pin the mount (it has its own mount
# namespace): after umount, stop --safe succeeds.
. "$(dirname "$0")/lib.sh"
truncate -s 128M "$TMP/img"
add -t loop -f "$TMP/img"
mkfs.ext4 -q -F "$DEV" && mkdir "$TMP/mnt" && mount "$DEV" "$TMP/mnt" || fail "mount"
head -c 8M /dev/urandom >"$TMP/mnt/a"
sync
sha=$(sha256sum <"$TMP/mnt/a")
kill -9 "$(dev_field "$ID" daemon_pid)"
wait_until 20 state_is "$ID" QUIESCED || fail "not quiesced"
timeout 30 "$Z" recover -n "$ID" >/dev/null || fail "recover while mounted"
head -c 8M /dev/urandom >"$TMP/mnt/b" && sync || fail "write after recover"
echo 3 >/proc/sys/vm/drop_caches
[ "$(sha256sum <"$TMP/mnt/a")" = "$sha" ] || fail "data changed"
# Upgrade while mounted too.
timeout 60 "$Z" upgrade -n "$ID" >/dev/null || fail "upgrade while mounted"
umount "$TMP/mnt" || fail "umount"
timeout 60 "$Z" stop --safe -n "$ID" 2>"$TMP/err" || fail "stop --safe after umount: $(cat "$TMP/err")"
no_devices || fail "device left"
exit 0
