# SPDX-License-Identifier: MIT
# resize grows a live device; a mounted ext4 grows online; shrunk under a
# smaller ext4; data verifies.
. "$(dirname "$0")/lib.sh"
truncate -s 128M "$TMP/img"
add -t loop -f "$TMP/img"
mkfs.ext4 -q -F "$DEV" || fail mkfs
mkdir "$TMP/mnt" && mount "$DEV" "$TMP/mnt" || fail mount
head -c 40M /dev/urandom >"$TMP/mnt/a"
sha=$(sha256sum <"$TMP/mnt/a")
"$Z" resize -n "$ID" 512M >/dev/null || fail "resize"
[ "$(cat /sys/block/ublkb$ID/size)" = $((512 << 11)) ] || fail "size is $(cat /sys/block/ublkb$ID/size) sectors"
[ "$(stat -c %s "$TMP/img")" = $((512 << 20)) ] || fail "backing not grown"
[ "$(dev_field "$ID" size)" = $((512 << 20)) ] || fail "list size $(dev_field "$ID" size)"
resize2fs "$DEV" >"$TMP/r2fs" 2>&1 || fail "resize2fs: $(cat "$TMP/r2fs")"
avail=$(df -B1M --output=size "$TMP/mnt" | tail -1)
[ "$avail" -gt 400 ] || fail "fs is ${avail}M after resize2fs"
head -c 300M /dev/zero >"$TMP/mnt/b" || fail "writing into the grown fs"
[ "$(sha256sum <"$TMP/mnt/a")" = "$sha" ] || fail "data changed"
umount "$TMP/mnt"
fsck.ext4 -fn "$DEV" >/dev/null 2>&1 || fail "fsck after grow"
# Shrunk: the file system first, then the device; the backing file keeps its length.
mount "$DEV" "$TMP/mnt" && rm "$TMP/mnt/b" && umount "$TMP/mnt" || fail "removing b"
e2fsck -fp "$DEV" >/dev/null 2>&1
resize2fs "$DEV" 200M >"$TMP/r2fs" 2>&1 || fail "resize2fs 200M: $(cat "$TMP/r2fs")"
"$Z" resize -n "$ID" 256M >/dev/null || fail "shrink"
[ "$(blockdev --getsize64 "$DEV")" = $((256 << 20)) ] || fail "shrink: $(blockdev --getsize64 "$DEV")"
[ "$(dev_field "$ID" size)" = $((256 << 20)) ] || fail "shrink: list size $(dev_field "$ID" size)"
[ "$(stat -c %s "$TMP/img")" = $((512 << 20)) ] || fail "shrink: the backing file changed length"
fsck.ext4 -fn "$DEV" >/dev/null 2>&1 || fail "fsck after shrink"
mount "$DEV" "$TMP/mnt" || fail "mount after shrink"
[ "$(sha256sum <"$TMP/mnt/a")" = "$sha" ] || fail "data changed by the shrink"
umount "$TMP/mnt"
note "grown to 512M under a mounted ext4, shrunk to 256M under its 200M, data kept"
"$Z" resize -n "$ID" 1000 >/dev/null 2>"$TMP/err" && fail "resize to 1000 bytes accepted"
grep -qx "zublk: resize: device $ID: size 1000: not a multiple of the 512-byte block" "$TMP/err" ||
	fail "resize to 1000 bytes: $(cat "$TMP/err")"
note "$(cat "$TMP/err")"
exit 0
