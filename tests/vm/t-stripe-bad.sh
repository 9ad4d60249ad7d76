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
exit 0
