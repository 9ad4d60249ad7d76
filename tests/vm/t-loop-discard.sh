# SPDX-License-Identifier: MIT
# loop flush, FUA, discard and write-zeroes.  Discard and write-zeroes run
# over a 3 GiB device in requests larger than 2 GiB: they must complete
# with 0, read back as zeros, and never turn into EIO.
. "$(dirname "$0")/lib.sh"
truncate -s 3G "$TMP/img"
add -t loop -f "$TMP/img"
q=/sys/block/ublkb$ID/queue
[ "$(cat $q/write_cache)" = "write back" ] || fail "no volatile cache advertised: $(cat $q/write_cache)"
[ "$(cat $q/fua)" = 1 ] || fail "FUA not advertised"
max=$(cat $q/discard_max_bytes)
[ "$max" -gt $((2 << 30)) ] || fail "discard_max_bytes $max: too small for the >2 GiB case"
[ "$(cat $q/write_zeroes_max_bytes)" -gt 0 ] || fail "write zeroes not advertised"

# FUA writes and flushes: fio with O_DSYNC + fsync, data verified.
fio_ok fua --filename="$DEV" --rw=randwrite --bs=4k --iodepth=8 --size=16M --sync=dsync \
	--fsync=4 --verify=crc32c --do_verify=1
dd if=/dev/urandom of="$DEV" bs=1M count=4 oflag=direct,sync status=none || fail "sync dd"
sync "$DEV" || fail "flush"

stamp() { # write 4 MiB of random data at each GiB offset
	for off in 0 1024 2048 3068; do
		dd if=/dev/urandom of="$DEV" bs=1M seek=$off count=4 oflag=direct status=none ||
			fail "write at ${off}M"
	done
}
zeros_at() {
	for off in 0 1024 2048 3068; do
		reads_zeros "$DEV" 1048576 $off 4 || fail "$1: not zero at ${off}M"
	done
}
stamp
blkdiscard "$DEV" 2>"$TMP/err" || fail "blkdiscard: $(cat "$TMP/err")"
zeros_at discard
stamp
blkdiscard -z "$DEV" 2>"$TMP/err" || fail "blkdiscard -z: $(cat "$TMP/err")"
zeros_at write-zeroes
stamp
# Unaligned to the GiB stamps: only the middle one goes.
blkdiscard -o 1G -l 1G "$DEV" || fail "partial discard"
reads_zeros "$DEV" 1048576 1024 4 || fail "partial discard left data"
reads_zeros "$DEV" 1048576 2048 4 && fail "partial discard zeroed beyond its range"
errs=$(counter "$ID" errors)
[ "$errs" = 0 ] || fail "$errs requests ended in error"
exit 0
