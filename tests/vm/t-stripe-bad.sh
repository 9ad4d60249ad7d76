# SPDX-License-Identifier: MIT
# stripe bad input: one line naming the thing and the cause, a non-zero
# exit, no device and no daemon left.
. "$(dirname "$0")/lib.sh"
LOOPS=()
stripe_cleanup() {
	timeout 60 "$Z" del --all >/dev/null 2>&1
	for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null; done
	cleanup
}
trap stripe_cleanup EXIT

truncate -s 64M "$TMP/a" "$TMP/b"
expect_err "stripe: needs 2 or more members .*got 1" add -t stripe file="$TMP/a"
expect_err "stripe: needs 2 or more members .*got 0" add -t stripe chunk=64k
expect_err "stripe: chunk '48k': not a power of two" \
	add -t stripe chunk=48k file="$TMP/a" file="$TMP/b"
expect_err "stripe: chunk '2k': not a power of two from 4k" \
	add -t stripe chunk=2k file="$TMP/a" file="$TMP/b"
expect_err "stripe: chunk 'big': not a power of two" \
	add -t stripe chunk=big file="$TMP/a" file="$TMP/b"
expect_err "stripe: member '$TMP/nosuch': No such file or directory" \
	add -t stripe file="$TMP/a" file="$TMP/nosuch"
expect_err "stripe: member '$TMP/a': the same as '$TMP/a'" \
	add -t stripe file="$TMP/a" file="$TMP/a"
truncate -s 32k "$TMP/small"
expect_err "stripe: member '$TMP/small': 32768 bytes, smaller than one 65536-byte chunk" \
	add -t stripe file="$TMP/a" file="$TMP/small"
expect_err "option 'colour': not an option of target stripe" \
	add -t stripe file="$TMP/a" file="$TMP/b" colour=red

# Members of different block sizes: kernel loop devices of 512 and 4096.
modprobe loop 2>/dev/null
l512=$(losetup -f --show -b 512 "$TMP/a" 2>/dev/null) || skip "no kernel loop devices"
LOOPS+=("$l512")
l4k=$(losetup -f --show -b 4096 "$TMP/b") || fail "losetup -b 4096"
LOOPS+=("$l4k")
expect_err "stripe: member '$l4k' has 4096-byte blocks but '$l512' has 512-byte blocks" \
	add -t stripe file="$l512" file="$l4k"

# The same data under two names: each pair would write over itself.
# A loop device and its file (buffered: 512-byte blocks, as the device's).
expect_err "stripe: member '$TMP/a': the same as '$l512'" \
	add -t stripe buffered=1 file="$l512" file="$TMP/a"
# Two loop devices over one file.
l2=$(losetup -f --show -b 512 "$TMP/a") || fail "losetup of $TMP/a again"
LOOPS+=("$l2")
expect_err "stripe: member '$l2': the same as '$l512'" add -t stripe file="$l512" file="$l2"
# A disk and its partition.  An MBR with two 64 MiB partitions, sectors
# 2048..133119 and 133120..264191.
truncate -s 160M "$TMP/p"
printf '\0\0\0\0\203\0\0\0\0\10\0\0\0\0\2\0\0\0\0\0\203\0\0\0\0\10\2\0\0\0\2\0' |
	dd of="$TMP/p" bs=1 seek=446 conv=notrunc status=none
printf '\125\252' | dd of="$TMP/p" bs=1 seek=510 conv=notrunc status=none
lp=$(losetup -f --show -P -b 512 "$TMP/p") || fail "losetup -P $TMP/p"
LOOPS+=("$lp")
wait_until 10 test -b "${lp}p2" || fail "no ${lp}p1, ${lp}p2"
expect_err "stripe: member '${lp}p1': the same as '$lp'" add -t stripe file="$lp" file="${lp}p1"
# A partition and the file under its loop device.
expect_err "stripe: member '$TMP/p': the same as '${lp}p2'" \
	add -t stripe buffered=1 file="${lp}p2" file="$TMP/p"
# Two partitions of one disk share nothing: served.
add -t stripe file="${lp}p1" file="${lp}p2"
[ "$(blockdev --getsize64 "$DEV")" = $((128 << 20)) ] || fail "stripe over ${lp}p1, ${lp}p2: size"
del "$ID"
# Two loop devices over disjoint ranges of one file share nothing either.
lo1=$(losetup -f --show -b 512 --sizelimit 64M "$TMP/p") || fail "losetup --sizelimit"
LOOPS+=("$lo1")
lo2=$(losetup -f --show -b 512 -o 64M --sizelimit 64M "$TMP/p") || fail "losetup -o"
LOOPS+=("$lo2")
add -t stripe file="$lo1" file="$lo2"
del "$ID"
lo3=$(losetup -f --show -b 512 -o 32M --sizelimit 64M "$TMP/p") || fail "losetup -o 32M"
LOOPS+=("$lo3")
expect_err "stripe: member '$lo3': the same as '$lo1'" add -t stripe file="$lo1" file="$lo3"
exit 0
