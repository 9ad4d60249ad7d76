# SPDX-License-Identifier: MIT
# mirror in every data mode on 1 and 2 queues: fio random writes of 512
# bytes to 1 MiB, crc32c-verified (reads spread over the legs); after del
# the legs are identical.  Then three legs, flush/FUA and discard, ext4.
. "$(dirname "$0")/lib.sh"
legs_same() { # legs_same FILE... : every file equals the first
	local f
	for f in "${@:2}"; do
		cmp "$1" "$f" >/dev/null || fail "legs differ: $(cmp "$1" "$f" 2>&1 | head -1)"
	done
}
errors_of() { counter "$ID" errors; }
for mode in copy user-copy zero-copy auto-zero-copy; do
	for q in 1 2; do
		fits_cpus "$q" || continue
		rm -f "$TMP/a" "$TMP/b"
		truncate -s 128M "$TMP/a" "$TMP/b"
		add -t mirror file="$TMP/a" file="$TMP/b" --mode "$mode" -q "$q"
		[ "$(blockdev --getsize64 "$DEV")" = $((128 << 20)) ] ||
			fail "size $(blockdev --getsize64 "$DEV"), not 128M"
		fio_ok v --filename="$DEV" --rw=randwrite --bsrange=512-1M --iodepth=16 \
			--size=48M --verify=crc32c --do_verify=1 --verify_fatal=1
		# The same job again, reading only: reads spread over both legs.
		fio_ok r --filename="$DEV" --rw=randwrite --bsrange=512-1M --iodepth=16 \
			--size=48M --verify=crc32c --verify_only=1 --verify_fatal=1
		[ "$(errors_of)" = 0 ] || fail "$(errors_of) requests ended in error"
		del "$ID"
		legs_same "$TMP/a" "$TMP/b"
		note "mirror $mode q=$q: verified, legs identical"
	done
done

# Three legs of different sizes: the smallest one counts.
rm -f "$TMP/a" "$TMP/b"
truncate -s 200M "$TMP/a"
truncate -s 190M "$TMP/b"
truncate -s 300M "$TMP/c"
add -t mirror file="$TMP/a" file="$TMP/b" file="$TMP/c"
[ "$(blockdev --getsize64 "$DEV")" = $((190 << 20)) ] ||
	fail "size $(blockdev --getsize64 "$DEV"), not 190M"
q=/sys/block/ublkb$ID/queue
[ "$(cat $q/write_cache)" = "write back" ] || fail "no volatile cache advertised"
[ "$(cat $q/fua)" = 1 ] || fail "FUA not advertised"
fio_ok fua --filename="$DEV" --rw=randwrite --bs=4k --iodepth=8 --size=16M --sync=dsync \
	--fsync=4 --verify=crc32c --do_verify=1
mkfs.ext4 -q -F "$DEV" || fail "mkfs.ext4"
mkdir -p "$TMP/mnt"
mount "$DEV" "$TMP/mnt" || fail "mount"
for i in 1 2 3 4; do
	head -c $((i * 1500000 + 12345)) /dev/urandom >"$TMP/mnt/f$i"
done
rm "$TMP/mnt/f2"
fstrim "$TMP/mnt" || fail "fstrim"
(cd "$TMP/mnt" && sha256sum f*) >"$TMP/sums"
umount "$TMP/mnt" || fail "umount"
fsck.ext4 -fn "$DEV" >"$TMP/fsck" 2>&1 || fail "fsck not clean: $(tail -5 "$TMP/fsck")"
blkdiscard -f -o $((100 << 20)) -l $((50 << 20)) "$DEV" || fail "blkdiscard"
[ "$(errors_of)" = 0 ] || fail "$(errors_of) requests ended in error"
del "$ID"
# Only the device's 190M: the bigger legs' tails are nobody's.
for x in a b c; do head -c 190M "$TMP/$x" >"$TMP/$x.190"; done
legs_same "$TMP/a.190" "$TMP/b.190" "$TMP/c.190"
rm -f "$TMP"/*.190
add -t mirror file="$TMP/c" file="$TMP/a" file="$TMP/b"
mount "$DEV" "$TMP/mnt" || fail "mount with the legs in another order"
(cd "$TMP/mnt" && sha256sum -c --quiet "$TMP/sums") || fail "checksums differ"
umount "$TMP/mnt"
del "$ID"
exit 0
