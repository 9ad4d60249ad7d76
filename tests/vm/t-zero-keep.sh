# SPDX-License-Identifier: MIT
# Write zeroes that say NOUNMAP (blkdiscard -z) keep the backing files'
# blocks where their file system has zeroed ranges (ext4 here), and those
# that do not (fallocate -p on the device) punch them out: loop, stripe and
# mirror.  On tmpfs, which has no zeroed range, the same requests become
# punched holes (the file system's refusal is no error).  Every range reads
# back as zeros, what is around it is kept, and no request fails.  Last, a
# mirror leg on tmpfs replaced by one on ext4 keeps its blocks again.
. "$(dirname "$0")/lib.sh"
for t in mkfs.ext4 blkdiscard fallocate du; do
	command -v $t >/dev/null || skip "$t not installed (scripts/setup.sh)"
done
modprobe loop 2>/dev/null
M=$((1 << 20))
truncate -s 256M "$TMP/fs.img"
mkfs.ext4 -q -F -b 4096 "$TMP/fs.img" || fail "mkfs.ext4"
mkdir "$TMP/ext4"
# A loop device of mount's own, freed with the unmount (lib.sh's cleanup).
mount -o loop "$TMP/fs.img" "$TMP/ext4" || fail "mount ext4 on a loop device"
mkdir "$TMP/tmpfs"
mount -t tmpfs -o size=128m zublk-zero "$TMP/tmpfs" || fail "mount tmpfs"

kib() { du -k --total "$@" | tail -1 | cut -f1; }
zeros() { # zeros OFF_MB LEN_MB WHAT
	cmp -n $(($2 * M)) <(dd if="$DEV" bs=1M skip="$1" count="$2" iflag=direct status=none) \
		/dev/zero >/dev/null || fail "$3: ${1}M+${2}M does not read as zeros"
}
kept() { # kept OFF_MB WHAT: the 1M there still holds the data written
	cmp <(dd if="$DEV" bs=1M skip="$1" count=1 iflag=direct status=none) \
		<(dd if="$TMP/data" bs=1M skip="$1" count=1 status=none) ||
		fail "$2: ${1}M lost its data"
}
# check DIR WHAT TARGET-ARGS...: 32M of data on a device over files in DIR;
# then 8M zeroed with NOUNMAP, 8M zeroed without it, and 8M discarded.
check() {
	local dir=$1 what=$2 full k1 k2 k3
	shift 2
	add "$@"
	dd if="$TMP/data" of="$DEV" bs=1M oflag=direct conv=fsync status=none || fail "$what: write"
	del "$ID"
	full=$(kib "$dir"/m*)
	add "$@"
	blkdiscard -z -o $((4 * M)) -l $((8 * M)) "$DEV" || fail "$what: blkdiscard -z"
	zeros 4 8 "$what: write zeroes NOUNMAP"
	sync "$DEV"
	k1=$(kib "$dir"/m*)
	fallocate -p -o $((12 * M)) -l $((8 * M)) "$DEV" || fail "$what: fallocate -p"
	zeros 12 8 "$what: write zeroes"
	blkdiscard -o $((20 * M)) -l $((8 * M)) "$DEV" || fail "$what: blkdiscard"
	zeros 20 8 "$what: discard"
	kept 3 "$what"
	kept 28 "$what"
	sync "$DEV"
	k2=$(kib "$dir"/m*)
	[ "$(counter "$ID" errors)" = 0 ] || fail "$what: $(counter "$ID" errors) requests ended in error"
	del "$ID"
	# Per copy of the data (a mirror's legs hold one each).
	k3=$(((full - k1) * 32 * 1024 / full))
	if [ "$dir" = "$TMP/ext4" ]; then
		[ "$k3" -lt 1024 ] ||
			fail "$what: write zeroes NOUNMAP freed $((full - k1))k of ${full}k"
	else
		# tmpfs: a punched hole instead, its 8M freed.
		[ "$k3" -ge $((7 * 1024)) ] ||
			fail "$what: write zeroes NOUNMAP freed only $((full - k1))k of ${full}k"
	fi
	k3=$(((full - k2) * 32 * 1024 / full))
	[ "$k3" -ge $((15 * 1024)) ] ||
		fail "$what: write zeroes without NOUNMAP and discard freed $((full - k2))k of ${full}k"
	note "$what: ${full}k, after write zeroes NOUNMAP ${k1}k, after the rest ${k2}k"
}

head -c $((32 * M)) /dev/urandom >"$TMP/data"
for dir in "$TMP/ext4" "$TMP/tmpfs"; do
	fs=$(findmnt -n -o FSTYPE --target "$dir")
	[ "$fs" = "${dir##*/}" ] || fail "$dir: on $fs"
	rm -f "$dir"/m*
	truncate -s 32M "$dir/m0"
	check "$dir" "loop on $fs" -t loop -f "$dir/m0"
	rm -f "$dir"/m*
	truncate -s 16M "$dir/m0" "$dir/m1"
	check "$dir" "stripe on $fs" -t stripe chunk=64k file="$dir/m0" file="$dir/m1"
	rm -f "$dir"/m*
	truncate -s 32M "$dir/m0" "$dir/m1"
	check "$dir" "mirror on $fs" -t mirror file="$dir/m0" file="$dir/m1"
	rm -f "$dir"/m*
done

# A mirror leg's refusal is its file's: replaced by a file on ext4, the
# leg keeps its blocks again.  Legs on ext4 and tmpfs; zeroed with NOUNMAP,
# the tmpfs leg punches.  Then that leg is replaced by an ext4 file and
# rebuilt, and zeroing with NOUNMAP keeps the new file's blocks.
. "$ROOT/tests/vm/raid-lib.sh"
truncate -s 32M "$TMP/ext4/m0" "$TMP/tmpfs/m1" "$TMP/ext4/m2"
add -t mirror file="$TMP/ext4/m0" file="$TMP/tmpfs/m1"
dd if="$TMP/data" of="$DEV" bs=1M oflag=direct conv=fsync status=none || fail "replace: write"
k1=$(kib "$TMP/tmpfs/m1")
blkdiscard -z -o $((4 * M)) -l $((8 * M)) "$DEV" || fail "replace: blkdiscard -z"
zeros 4 8 "replace: write zeroes NOUNMAP on ext4 + tmpfs"
k2=$(kib "$TMP/tmpfs/m1")
[ $((k1 - k2)) -ge $((7 * 1024)) ] || fail "the tmpfs leg went from ${k1}k to ${k2}k, not punched"
"$Z" mirror replace -n "$ID" 1 "$TMP/ext4/m2" >"$TMP/out" 2>&1 || fail "replace: $(cat "$TMP/out")"
wait_until 120 rebuild_done "$ID" 1 || fail "the rebuild did not end: $(dev_json "$ID" .rebuild)"
sync "$DEV"
k1=$(kib "$TMP/ext4/m2")
blkdiscard -z -o $((16 * M)) -l $((8 * M)) "$DEV" || fail "replaced: blkdiscard -z"
zeros 16 8 "replaced: write zeroes NOUNMAP"
kept 12 "replaced"
kept 24 "replaced"
sync "$DEV"
k2=$(kib "$TMP/ext4/m2")
[ $((k1 - k2)) -lt 1024 ] || fail "the new ext4 leg went from ${k1}k to ${k2}k: write zeroes NOUNMAP punched it"
[ "$(counter "$ID" errors)" = 0 ] || fail "replace: $(counter "$ID" errors) requests ended in error"
note "mirror, tmpfs leg replaced by ext4: the new leg ${k1}k, after write zeroes NOUNMAP ${k2}k"
del "$ID"
exit 0
