# SPDX-License-Identifier: MIT
# Partitions: a device whose backing file holds a partition table shows its
# partition when it starts; an ext4 on the partition keeps its data across a
# delete and a new add; deleting while the partition is mounted names the
# mount; --no-part-scan leaves the table alone until someone asks (BLKRRPART).
# Then block devices as backings: a partition discards as its disk does, and
# a device that needs 4k-aligned memory passes that on.
. "$(dirname "$0")/lib.sh"
truncate -s 128M "$TMP/img"
# An MBR with one Linux partition (type 0x83): sectors 2048..133119, 64 MiB.
printf '\0\0\0\0\203\0\0\0\0\10\0\0\0\0\2\0' |
	dd of="$TMP/img" bs=1 seek=446 conv=notrunc status=none
printf '\125\252' | dd of="$TMP/img" bs=1 seek=510 conv=notrunc status=none
mkdir "$TMP/mnt"

add -t loop -f "$TMP/img"
part=${DEV}p1
wait_until 10 test -b "$part" || fail "no $part after the device started"
[ "$(blockdev --getsz "$part")" = 131072 ] || fail "$part has $(blockdev --getsz "$part") sectors"
mkfs.ext4 -q -F "$part" && mount "$part" "$TMP/mnt" || fail "ext4 on $part"
head -c 8M /dev/urandom >"$TMP/mnt/a" && sync || fail "writing into the ext4 on $part"
sha=$(sha256sum <"$TMP/mnt/a")
del_held "$ID" "with $part mounted" "is mounted at $TMP/mnt" umount "$TMP/mnt"

# The same file again: the partition, its file system and its data are there.
add -t loop -f "$TMP/img"
part=${DEV}p1
wait_until 10 test -b "$part" || fail "no $part on the second add"
fsck.ext4 -fn "$part" >"$TMP/fsck" 2>&1 || fail "fsck of $part: $(tail -3 "$TMP/fsck")"
mount -o ro "$part" "$TMP/mnt" || fail "mounting $part again"
[ "$(sha256sum <"$TMP/mnt/a")" = "$sha" ] || fail "the file on $part changed"
umount "$TMP/mnt"
del "$ID"

# --no-part-scan: no partition until BLKRRPART asks for one.
add -t loop -f "$TMP/img" --no-part-scan
part=${DEV}p1
sleep 1
[ -e "$part" ] && fail "$part appeared with --no-part-scan"
blockdev --rereadpt "$DEV" || fail "BLKRRPART on $DEV"
wait_until 10 test -b "$part" || fail "no $part after BLKRRPART"
# A partition as a backing: it discards as its disk does (a partition has
# no queue/ of its own in sysfs; its disk's is where that is said).
outer=$ID
[ "$(cat /sys/block/ublkb$outer/queue/discard_max_bytes)" -gt 0 ] || fail "ublkb$outer cannot discard"
add -t loop -f "$part"
max=$(cat "/sys/block/ublkb$ID/queue/discard_max_bytes")
[ "$max" -gt 0 ] || fail "a loop over the partition $part cannot discard"
blkdiscard "$DEV" || fail "blkdiscard over the partition $part"
note "a loop over the partition $part discards (up to $max bytes)"
del "$ID"
del "$outer"
# A block device that needs its memory more aligned than 512 bytes: a
# zublk loop over a file on an ext4 on a 4k-sector kernel loop device
# (O_DIRECT there needs 4k-aligned memory, and it asks that of its own
# requests).  A loop over that device asks the same, so O_DIRECT from a
# buffer aligned less is refused up front instead of failing in the backing.
modprobe loop 2>/dev/null
truncate -s 128M "$TMP/k4"
mkdir "$TMP/m4"
if ! kl=$(losetup -f --show -b 4096 "$TMP/k4" 2>/dev/null); then
	skip_check "a 4k-sector kernel loop device" "losetup -b 4096 failed here"
else
	# Straight over the 4k-sector device: its block size, and memory
	# aligned to it (older kernels check each segment of an O_DIRECT).
	add -t loop -f "$kl"
	[ "$(cat "/sys/block/ublkb$ID/queue/logical_block_size")" = 4096 ] ||
		fail "a loop over $kl: logical_block_size $(cat "/sys/block/ublkb$ID/queue/logical_block_size")"
	got=$(cat "/sys/block/ublkb$ID/queue/dma_alignment")
	[ "$got" -ge 4095 ] || fail "a loop over $kl (4k sectors): dma_alignment $got"
	fio_ok k4d --filename="$DEV" --rw=randwrite --bs=4k --iodepth=4 --size=4M \
		--verify=crc32c --do_verify=1
	note "a loop over $kl: 4k sectors, dma_alignment $got, fio verified"
	del "$ID"
	mkfs.ext4 -q -F "$kl" && mount "$kl" "$TMP/m4" && truncate -s 64M "$TMP/m4/f" ||
		fail "ext4 on $kl"
	add -t loop -f "$TMP/m4/f"
	inner=$ID
	need=$(cat "/sys/block/ublkb$inner/queue/dma_alignment")
	[ "$need" -gt 511 ] || fail "a loop over a file on a 4k-sector ext4: dma_alignment $need"
	add -t loop -f "/dev/ublkb$inner"
	got=$(cat "/sys/block/ublkb$ID/queue/dma_alignment")
	[ "$got" -ge "$need" ] || fail "dma_alignment $got over ublkb$inner, which needs $need"
	fio_ok k4 --filename="$DEV" --rw=randwrite --bs=4k --iodepth=4 --size=8M \
		--verify=crc32c --do_verify=1
	note "a loop over ublkb$inner (dma_alignment $need): dma_alignment $got, fio verified"
	del "$ID"
	del "$inner"
	umount "$TMP/m4"
	losetup -d "$kl"
fi
exit 0
