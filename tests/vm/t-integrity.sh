# SPDX-License-Identifier: MIT
# Integrity metadata (UBLK_F_INTEGRITY) on the loop target, meta=FILE: the
# block layer puts T10 PI on every write and checks it on every read, so a
# read passes only when the daemon stored and gave back each block's PI.
# What the kernel shows; fio verify in the data modes that can carry it, on
# 1 and 2 queues, with --batch, across live upgrades; blocks never written;
# a flipped byte of data, and of metadata, fails that block's read only;
# discard and write zeroes; data and metadata across del and add, and
# across kill -9 and recover (refused without the metadata file); ext4;
# crc64 and metadata without PI; resize; bad input.
. "$(dirname "$0")/lib.sh"
"$Z" features | grep -qw INTEGRITY || skip "the driver has no UBLK_F_INTEGRITY"
truncate -s 64M "$TMP/img"
M=$TMP/img.meta

# integ FILE: the device's integrity attribute FILE
integ() { cat "/sys/block/ublkb$ID/integrity/$1"; }
# read_ok BLOCK / read_bad BLOCK: one 4k block of the device reads / fails
read_ok() { dd if="$DEV" of=/dev/null bs=4k skip="$1" count=1 iflag=direct status=none; }
read_bad() { ! dd if="$DEV" of=/dev/null bs=4k skip="$1" count=1 iflag=direct 2>/dev/null; }
# flip FILE OFFSET: invert one byte of FILE
flip() {
	python3 - "$1" "$2" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
off = int(sys.argv[2])
b = os.pread(fd, 1, off)
os.pwrite(fd, bytes([b[0] ^ 0xff]), off)
os.close(fd)
PY
}

# The device as the kernel sees it, and the metadata file made to fit.
cd "$TMP"
add -t loop -f "$TMP/img" meta=img.meta
[ "$(dev_field "$ID" meta)" = "$M" ] || fail "meta not made absolute: $(dev_field "$ID" meta)"
[ "$(integ format)" = T10-DIF-TYPE1-CRC ] || fail "format $(integ format)"
[ "$(integ read_verify)" = 1 ] && [ "$(integ write_generate)" = 1 ] ||
	fail "read_verify $(integ read_verify) write_generate $(integ write_generate)"
lbs=$(cat "/sys/block/ublkb$ID/queue/logical_block_size")
[ "$(integ protection_interval_bytes)" = "$lbs" ] ||
	fail "interval $(integ protection_interval_bytes), block $lbs"
[ "$(stat -c %s "$M")" = $((64 * 1048576 / lbs * 8)) ] || fail "meta file $(stat -c %s "$M") bytes"
[ "$(dev_field "$ID" pi)" = crc16 ] && [ "$(dev_field "$ID" meta_size)" = 8 ] ||
	fail "list: pi $(dev_field "$ID" pi) meta_size $(dev_field "$ID" meta_size)"
note "$(dev_field "$ID" mode), $lbs-byte blocks, $(integ format)"
# Never written: the hole's metadata is not checked, the data is zeros.
reads_zeros "$DEV" 1048576 0 4 || fail "unwritten blocks do not read, or not as zeros"
cd /
del "$ID"

# fio verify in every mode that can carry metadata, on 1 and 2 queues.
queues_upto 2
for mode in user-copy zero-copy auto-zero-copy; do
	for nq in 1 $q; do
		add -t loop -f "$TMP/img" meta="$M" --mode $mode -q $nq
		fio_ok v --filename="$DEV" --rw=randwrite --bsrange=4k-256k --iodepth=16 \
			--size=16M --numjobs=$nq --offset_increment=32M --verify=crc32c \
			--verify_fatal=1 --fsync=64 --cpus_allowed_policy=split
		del "$ID"
	done
done
note "fio verify: user-copy, zero-copy, auto-zero-copy on 1 and $q queue(s)"

# Batched commands (where the kernel has them), and a live upgrade under
# verified writes: the new daemon takes the metadata file up again.
if "$Z" features | grep -qw BATCH_IO; then
	add -t loop -f "$TMP/img" meta="$M" --batch
	fio_ok b --filename="$DEV" --rw=randwrite --bsrange=4k-64k --iodepth=16 --size=32M \
		--verify=crc32c --verify_fatal=1
	del "$ID"
	note "fio verify with --batch"
else
	skip_check "integrity with --batch" "the driver has no UBLK_F_BATCH_IO"
fi
add -t loop -f "$TMP/img" meta="$M"
bg_verified upgrades --bs=8k --iodepth=16 --size=32M --verify_backlog=256
for i in 1 2 3; do
	sleep 1
	timeout 60 "$Z" upgrade -n "$ID" >/dev/null || fail "upgrade $i"
done
sleep 1
bg_fio_stop upgrades
[ "$(dev_field "$ID" meta)" = "$M" ] || fail "meta after upgrades: $(dev_field "$ID" meta)"
del "$ID"
note "3 live upgrades under verified writes"

# Data and metadata across del and add: written once, verified afterwards.
add -t loop -f "$TMP/img" meta="$M"
fio_ok w --filename="$DEV" --rw=write --bs=64k --size=16M --verify=crc32c --do_verify=0
del "$ID"
add -t loop -f "$TMP/img" meta="$M"
fio_ok r --filename="$DEV" --rw=write --bs=64k --size=16M --verify=crc32c --verify_only
del "$ID"

# A flipped byte of data fails its block's read (a guard mismatch), the
# next block reads; so does a flipped byte of a block's metadata.
flip "$TMP/img" $((5 * 4096 + 100))
flip "$M" $((7 * 4096 / lbs * 8 + 6))
add -t loop -f "$TMP/img" meta="$M"
read_bad 5 || fail "block 5 read with its data changed"
read_ok 6 || fail "block 6 did not read"
read_bad 7 || fail "block 7 read with its metadata changed"
read_ok 8 || fail "block 8 did not read"
note "kernel: $(dmesg | grep "ublkb$ID" | grep -i -m1 -E 'protection|integrity|guard|ref')"
# Written again, both read.
dd if=/dev/urandom of="$DEV" bs=4k seek=5 count=3 oflag=direct status=none ||
	fail "rewrite blocks 5-7"
read_ok 5 && read_ok 7 || fail "blocks 5 and 7 rewritten do not read"

# Discard and write zeroes take the metadata along: zeros, read cleanly.
blkdiscard -o 0 -l 1M "$DEV" || fail "blkdiscard"
blkdiscard -z -o 1M -l 1M "$DEV" || fail "blkdiscard -z"
reads_zeros "$DEV" 1048576 0 2 || fail "discarded or zeroed blocks do not read, or not as zeros"

# kill -9 under writes, recover: the metadata file is taken up again.
bg_verified recover --bs=16k --iodepth=16 --size=16M --offset=16M
sleep 2
kill_recover "kill -9 under writes"
sleep 2
bg_fio_stop recover
fio_ok after --filename="$DEV" --rw=randread --bs=16k --size=16M --offset=16M --iodepth=16
# A recovery without its metadata file is refused (a new one would check no
# block), the device left waiting; with the file back, it recovers.
kill -9 "$(dev_field "$ID" daemon_pid)"
wait_until 20 state_is "$ID" QUIESCED || fail "not QUIESCED after kill"
mv "$M" "$M.away"
timeout 30 "$Z" recover -n "$ID" >/dev/null 2>"$TMP/err" && fail "recovered without $M"
grep -q "metadata file '$M': No such file" "$TMP/err" || fail "recover said: $(cat "$TMP/err")"
[ "$(wc -l <"$TMP/err")" = 1 ] || fail "recover said more than one line: $(cat "$TMP/err")"
[ ! -e "$M" ] && state_is "$ID" QUIESCED || fail "refused recover left $(dev_field "$ID" state)"
note "$(cat "$TMP/err")"
mv "$M.away" "$M"
timeout 30 "$Z" recover -n "$ID" >/dev/null || fail "recover with the metadata file back"
wait_until 20 state_is "$ID" LIVE || fail "not LIVE after recover"
fio_ok again --filename="$DEV" --rw=randread --bs=16k --size=16M --offset=16M --iodepth=16

# ext4 on it: files written, read back after a remount, fsck clean.
mkfs.ext4 -q -F "$DEV" || fail "mkfs.ext4"
mkdir -p "$TMP/mnt"
mount "$DEV" "$TMP/mnt" || fail "mount"
head -c 8M /dev/urandom >"$TMP/f"
cp "$TMP/f" "$TMP/mnt/f" && sync
umount "$TMP/mnt"
del "$ID"
add -t loop -f "$TMP/img" meta="$M"
mount "$DEV" "$TMP/mnt" || fail "mount again"
cmp "$TMP/f" "$TMP/mnt/f" || fail "ext4 file differs"
umount "$TMP/mnt"
fsck.ext4 -n -f "$DEV" >/dev/null 2>&1 || fail "fsck after integrity writes"
del "$ID"

# The metadata file keeps the layout it was written in (an extended
# attribute, where the file system has them): other options are refused.
layout=$(python3 - "$M" 2>/dev/null <<'PY'
import os, sys
print(os.getxattr(sys.argv[1], "user.zublk.integrity").decode())
PY
)
# Whether the file system takes user attributes at all, on a file of its own.
xattr_ok=$(python3 - "$TMP/xattr-probe" 2>/dev/null <<'PY'
import os, sys
open(sys.argv[1], "w").close()
os.setxattr(sys.argv[1], "user.zublk.probe", b"1")
print("yes")
PY
)
[ -n "$layout" ] || [ "$xattr_ok" != yes ] || fail "no user.zublk.integrity attribute on $M"
if [ -n "$layout" ]; then
	[[ $layout == "interval=$lbs meta_size=8 pi=crc16 pi_offset=0" ]] || fail "layout '$layout'"
	expect_err "metadata file '$M': written as interval=$lbs meta_size=8 pi=crc16 pi_offset=0, not \
interval=$lbs meta_size=16 pi=crc64" add -t loop -f "$TMP/img" meta="$M" pi=crc64 meta_size=16
else
	skip_check "the metadata file's layout" "no user extended attributes on $TMP's file system"
fi

# crc64 in 16 bytes; metadata without PI (nothing checked: a flipped byte reads).
rm -f "$M"
add -t loop -f "$TMP/img" meta="$M" pi=crc64 meta_size=16
[ "$(integ format)" = EXT-DIF-TYPE1-CRC64 ] || fail "crc64 format $(integ format)"
fio_ok c --filename="$DEV" --rw=randwrite --bs=8k --size=16M --iodepth=16 --verify=crc32c
del "$ID"
rm -f "$M"
add -t loop -f "$TMP/img" meta="$M" pi=none meta_size=16
[ "$(integ format)" = nop ] || fail "pi=none format $(integ format)"
fio_ok n --filename="$DEV" --rw=randwrite --bs=8k --size=16M --iodepth=16 --verify=crc32c
del "$ID"

# A resize grows the metadata file with the device; the new blocks verify.
truncate -s 32M "$TMP/img2"
add -t loop -f "$TMP/img2" meta="$TMP/img2.meta"
"$Z" resize -n "$ID" 48M >/dev/null || fail "resize to 48M"
[ "$(stat -c %s "$TMP/img2.meta")" = $((48 * 1048576 / lbs * 8)) ] ||
	fail "metadata file after resize: $(stat -c %s "$TMP/img2.meta") bytes"
fio_ok g --filename="$DEV" --rw=randwrite --bs=16k --offset=32M --size=16M --iodepth=8 \
	--verify=crc32c --verify_fatal=1
del "$ID"

# Bad input: one line each, nothing left behind.
expect_err "mode copy: no integrity" add -t loop -f "$TMP/img" meta="$TMP/new.meta" --mode copy
[ ! -e "$TMP/new.meta" ] || fail "a refused add left its new metadata file"
# Refused after the target made its file (the device number is taken).
add -t loop -f "$TMP/img" -n 3
"$Z" add -t loop -f "$TMP/img" meta="$TMP/new.meta" -n 3 >/dev/null 2>"$TMP/err" &&
	fail "a second device 3 was added"
grep -q "device 3: already exists" "$TMP/err" || fail "add said: $(cat "$TMP/err")"
[ ! -e "$TMP/new.meta" ] || fail "an add refused after init left its new metadata file"
del 3
expect_err "pi 'md5': not" add -t loop -f "$TMP/img" meta="$M" pi=md5
expect_err "do not fit in meta_size=4" add -t loop -f "$TMP/img" meta="$M" meta_size=4
expect_err "at offset 4 do not fit" add -t loop -f "$TMP/img" meta="$M" pi_offset=4
expect_err "meta_size '300'" add -t loop -f "$TMP/img" meta="$M" meta_size=300
expect_err "pi: integrity options need meta=PATH" add -t loop -f "$TMP/img" pi=crc16
expect_err "metadata file '/nonexistent/m'" add -t loop -f "$TMP/img" meta=/nonexistent/m
expect_err "metadata file '$TMP': Is a directory" add -t loop -f "$TMP/img" meta="$TMP"
exit 0
