# SPDX-License-Identifier: MIT
# stripe: size is members x the smallest member rounded down to the chunk;
# every member holds exactly its chunks of what was written (checked
# against the striped layout computed independently); flush, FUA, discard
# and write zeroes; ext4 on it, fsck clean.
. "$(dirname "$0")/lib.sh"
# Uneven members: 8M, 8M + 100k, 9M -> 3 x 8M.
truncate -s 8M "$TMP/a"
truncate -s $(((8 << 20) + 102400)) "$TMP/b"
truncate -s 9M "$TMP/c"
add -t stripe chunk=64k file="$TMP/a" file="$TMP/b" file="$TMP/c"
[ "$(blockdev --getsize64 "$DEV")" = $((24 << 20)) ] ||
	fail "size $(blockdev --getsize64 "$DEV"), not 24M"
head -c 24M /dev/urandom >"$TMP/data"
dd if="$TMP/data" of="$DEV" bs=1M oflag=direct conv=fsync status=none || fail "dd to device"
cmp "$TMP/data" <(dd if="$DEV" bs=1M iflag=direct status=none) || fail "read back differs"
# Odd sizes and offsets through the page cache too.
dd if="$TMP/data" of="$DEV" bs=3584 skip=3 seek=3 count=2000 conv=notrunc,fsync status=none ||
	fail "dd 3.5k"
del "$ID"
# member k, row r holds device chunk r * 3 + k
python3 - "$TMP/data" 65536 "$TMP/a" "$TMP/b" "$TMP/c" <<'PY' || fail "members differ from the striped layout"
import sys
data = open(sys.argv[1], "rb").read()
chunk = int(sys.argv[2])
members = [open(p, "rb").read() for p in sys.argv[3:]]
n = len(members)
bad = 0
for c in range(len(data) // chunk):
    m, row = c % n, c // n
    want = data[c * chunk:(c + 1) * chunk]
    have = members[m][row * chunk:(row + 1) * chunk]
    if want != have:
        print(f"chunk {c}: member {m} row {row} differs")
        bad += 1
        if bad > 5:
            break
sys.exit(1 if bad else 0)
PY
note "members hold the striped layout"

# chunk=4k, four members: the same from the other side (members -> device).
for x in a b c d; do head -c 4M /dev/urandom >"$TMP/m$x"; done
add -t stripe chunk=4k file="$TMP/ma" file="$TMP/mb" file="$TMP/mc" file="$TMP/md"
python3 - "$DEV" 4096 "$TMP/ma" "$TMP/mb" "$TMP/mc" "$TMP/md" <<'PY' || fail "device reads differ from the members"
import os, sys
chunk = int(sys.argv[2])
members = [open(p, "rb").read() for p in sys.argv[3:]]
n = len(members)
fd = os.open(sys.argv[1], os.O_RDONLY)
data = b""
while True:
    b = os.read(fd, 1 << 20)
    if not b:
        break
    data += b
if len(data) != n * len(members[0]):
    sys.exit(f"device has {len(data)} bytes")
for c in range(len(data) // chunk):
    if data[c * chunk:(c + 1) * chunk] != members[c % n][(c // n) * chunk:(c // n + 1) * chunk]:
        sys.exit(f"chunk {c} differs")
PY
del "$ID"

# Discard and write zeroes: split per member, read back as zeros.
truncate -s 256M "$TMP/d1" "$TMP/d2"
add -t stripe chunk=64k file="$TMP/d1" file="$TMP/d2"
q=/sys/block/ublkb$ID/queue
[ "$(cat $q/write_cache)" = "write back" ] || fail "no volatile cache advertised"
[ "$(cat $q/fua)" = 1 ] || fail "FUA not advertised"
fio_ok fua --filename="$DEV" --rw=randwrite --bs=4k --iodepth=8 --size=16M --sync=dsync \
	--fsync=4 --verify=crc32c --do_verify=1
dd if=/dev/urandom of="$DEV" bs=1M count=256 oflag=direct status=none || fail "fill"
blkdiscard -o $((3 * 65536 + 4096)) -l $((100 << 20)) "$DEV" || fail "blkdiscard"
cmp -n $((100 << 20)) <(dd if="$DEV" bs=4096 skip=$((3 * 16 + 1)) iflag=direct status=none) \
	/dev/zero >/dev/null || fail "discarded range is not zero"
cmp -s <(dd if="$DEV" bs=4096 skip=$((3 * 16)) count=1 iflag=direct status=none) \
	<(head -c 4096 /dev/zero) && fail "discard went before its start"
blkdiscard -z -o $((200 << 20)) -l $((50 << 20)) "$DEV" || fail "blkdiscard -z"
cmp -n $((50 << 20)) <(dd if="$DEV" bs=1M skip=200 iflag=direct status=none) /dev/zero \
	>/dev/null || fail "zeroed range is not zero"

# A file system on it.
mkfs.ext4 -q -F "$DEV" || fail "mkfs.ext4"
mkdir -p "$TMP/mnt"
mount "$DEV" "$TMP/mnt" || fail "mount"
for i in 1 2 3 4 5 6; do
	head -c $((i * 1500000 + 12345)) /dev/urandom >"$TMP/mnt/f$i"
done
(cd "$TMP/mnt" && sha256sum f*) >"$TMP/sums"
umount "$TMP/mnt" || fail "umount"
fsck.ext4 -fn "$DEV" >"$TMP/fsck" 2>&1 || fail "fsck not clean: $(tail -5 "$TMP/fsck")"
mount "$DEV" "$TMP/mnt" || fail "remount"
(cd "$TMP/mnt" && sha256sum -c --quiet "$TMP/sums") || fail "checksums differ after remount"
umount "$TMP/mnt"
errs=$(counter "$ID" errors)
[ "$errs" = 0 ] || fail "$errs requests ended in error"
del "$ID"
exit 0
