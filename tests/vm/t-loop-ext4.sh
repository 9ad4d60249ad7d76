# SPDX-License-Identifier: MIT
# A real file system on loop: mkfs, files, fsck clean, remount, checksums;
# and bytes written through the device land in the backing file.
. "$(dirname "$0")/lib.sh"
truncate -s 256M "$TMP/img"
add -t loop -f "$TMP/img"
mkfs.ext4 -q -F "$DEV" || fail "mkfs.ext4"
mkdir -p "$TMP/mnt"
mount "$DEV" "$TMP/mnt" || fail "mount"
for i in 1 2 3 4 5 6 7 8; do
	head -c $((i * 1500000 + 12345)) /dev/urandom >"$TMP/mnt/f$i"
done
mkdir "$TMP/mnt/dir" && cp "$TMP/mnt/f1" "$TMP/mnt/dir/copy"
(cd "$TMP/mnt" && sha256sum f* dir/copy) >"$TMP/sums"
umount "$TMP/mnt" || fail "umount"
fsck.ext4 -fn "$DEV" >"$TMP/fsck" 2>&1 || fail "fsck not clean: $(tail -5 "$TMP/fsck")"
mount "$DEV" "$TMP/mnt" || fail "remount"
(cd "$TMP/mnt" && sha256sum -c --quiet "$TMP/sums") || fail "checksums differ after remount"
umount "$TMP/mnt"

# Raw bytes: what goes through the device is what the file holds.
head -c 8M /dev/urandom >"$TMP/pattern"
dd if="$TMP/pattern" of="$DEV" bs=1M seek=100 oflag=direct conv=fsync status=none ||
	fail "dd to device"
cmp -n 8388608 "$TMP/pattern" <(dd if="$TMP/img" bs=1M skip=100 count=8 status=none) ||
	fail "backing file differs from what was written through the device"
del "$ID"
cmp -n 8388608 "$TMP/pattern" <(dd if="$TMP/img" bs=1M skip=100 count=8 status=none) ||
	fail "backing file differs after del"
exit 0
