# SPDX-License-Identifier: MIT
# zoned: a host-managed zoned device from a directory of zone files in
# zloop's layout.  The kernel sees the geometry it was given; fio's zoned
# mode verifies sequential writes in both data modes, on 1 and 2 queues;
# reads past the write pointer are zeros; open, close, finish and reset move
# zones and their files; writes off the write pointer and into a full zone
# fail; max_open and max_active hold; zones and data survive del and add,
# and a directory laid out beforehand is taken as it is; a report of 20000
# zones; a zone capacity below the zone size; btrfs (zone appends) on 2
# queues keeps its files across del and add, and scrubs clean; the daemon
# killed under reads recovers; bad input is one line each; del under zoned
# writes.
. "$(dirname "$0")/lib.sh"
for t in blkzone cmp md5sum; do command -v $t >/dev/null || skip "no $t"; done
M=$((1 << 20))

# zone_line ID ZONE: blkzone's report line of zone ZONE (32M zones)
zone_line() { blkzone report -o $(($2 * 65536)) -c 1 "/dev/ublkb$1"; }
# cond_is ID ZONE COND: its condition, as blkzone prints it ("em", "oi", ...)
cond_is() { zone_line "$1" "$2" | grep -q "zcond:[ 0-9]*($3)"; }
# wp_is ID ZONE SECTORS: its write pointer, in sectors from the zone start
wp_is() {
	local line wp
	line=$(zone_line "$1" "$2")
	wp=$(sed -n 's/.*wptr 0x\([0-9a-f]*\).*/\1/p' <<<"$line")
	[ $((16#$wp)) -eq "$3" ]
}
# wdd ZONE OFFSET_4K COUNT_4K: direct 4k writes into zone ZONE of $DEV
wdd() {
	dd if=/dev/urandom of="$DEV" bs=4k seek=$(($1 * 8192 + $2)) count="$3" oflag=direct \
		conv=notrunc status=none 2>"$TMP/dd.err"
}
fsize() { stat -c %s "$1"; }
# zop CMD ZONE: blkzone CMD (open, close, finish, reset) of zone ZONE of $DEV
zop() { blkzone "$1" -o $(($2 * 65536)) -c 1 "$DEV"; }

# 1. Geometry, the zone files, list --json.
mkdir "$TMP/z"
add -t zoned dir="$TMP/z" size=512M zone_size=32M conv_zones=2
q=/sys/block/ublkb$ID/queue
[ "$(cat $q/zoned)" = host-managed ] || fail "zoned: $(cat $q/zoned)"
[ "$(cat $q/chunk_sectors)" = 65536 ] || fail "chunk_sectors $(cat $q/chunk_sectors)"
[ "$(cat $q/nr_zones)" = 16 ] || fail "nr_zones $(cat $q/nr_zones)"
[ "$(cat $q/logical_block_size)" = 4096 ] || fail "block size $(cat $q/logical_block_size)"
[ "$(cat $q/zone_append_max_bytes)" -gt 0 ] || fail "no zone append"
[ "$(blkzone report "$DEV" | grep -c 'CONVENTIONAL')" = 2 ] || fail "not 2 conventional zones"
[ "$(blkzone report "$DEV" | grep -c 'zcond: 1(em).*SEQ_WRITE_REQUIRED')" = 14 ] ||
	fail "not 14 empty sequential zones: $(blkzone report "$DEV")"
[ "$(fsize "$TMP/z/cnv-000001")" = $((32 * M)) ] || fail "cnv-000001 not 32M"
[ "$(fsize "$TMP/z/seq-000015")" = 0 ] || fail "seq-000015 not empty"
[ "$(ls "$TMP/z" | wc -l)" = 16 ] || fail "zone files: $(ls "$TMP/z")"
[ "$(dev_field "$ID" zones)" = 16 ] && [ "$(dev_field "$ID" conv_zones)" = 2 ] &&
	[ "$(dev_field "$ID" zone_size)" = $((32 * M)) ] && [ "$(dev_field "$ID" max_open)" = 0 ] ||
	fail "list --json: $("$Z" list -n "$ID" --json)"
[ "$(dev_field "$ID" mode)" = zero-copy ] || fail "default mode $(dev_field "$ID" mode)"
note "16 zones of 32M, 2 conventional: as the kernel and the files show"
del "$ID"

# 2. Every data mode, 1 and 2 queues, zone files on the VM's root (O_DIRECT,
# io_uring reads and writes) and on a tmpfs of their own (copied in the
# queue thread): fio's zoned mode, crc32c verified; reads past the write
# pointer are zeros.
mkdir "$TMP/ram"
mount -t tmpfs -o size=1200m zublk-zoned "$TMP/ram" || fail "mounting a tmpfs"
zoned_cleanup() {
	mountpoint -q "$TMP/mnt" 2>/dev/null && umount "$TMP/mnt"
	timeout 60 "$Z" del --all >/dev/null 2>&1
	umount "$TMP/ram" 2>/dev/null
	cleanup
}
trap zoned_cleanup EXIT
mkdir "$TMP/ram/z"
for mode in user-copy zero-copy; do
	for nq in 1 2; do
		fits_cpus "$nq" || continue
		zdir=$TMP/z
		[ "$nq" = 2 ] && zdir=$TMP/ram/z
		add -t zoned dir="$zdir" size=512M zone_size=32M conv_zones=2 --mode "$mode" -q "$nq"
		want=0
		[ "$zdir" = "$TMP/ram/z" ] && want=65536
		[ "$(dev_field "$ID" copy_max)" = "$want" ] ||
			fail "copy_max $(dev_field "$ID" copy_max) in $zdir"
		blkzone reset "$DEV" || fail "reset all"
		fio_ok zw --filename="$DEV" --zonemode=zbd --rw=write --bsrange=4k-256k \
			--iodepth=8 --offset=64M --size=64M --numjobs="$nq" --offset_increment=192M \
			--verify=crc32c --do_verify=1 --verify_fatal=1
		fio_ok zr --filename="$DEV" --zonemode=zbd --rw=randwrite --bs=4k --iodepth=16 \
			--offset=320M --size=128M --max_open_zones=3 --runtime=2 --time_based
		# Zone 2: 64k written, then 128k read: the second half is zeros.
		zop reset 2
		wdd 2 0 16 || fail "$mode: 64k write: $(cat "$TMP/dd.err")"
		dd if="$DEV" of="$TMP/r" bs=128k count=1 skip=$((64 * 8)) iflag=direct status=none
		cmp -s -n 65536 "$TMP/r" /dev/zero && fail "$mode: the 64k written read as zeros"
		cmp -s -i 65536:0 -n 65536 "$TMP/r" /dev/zero ||
			fail "$mode: past the write pointer not zeros"
		[ "$(counter "$ID" errors)" = 0 ] || fail "$mode: $(counter "$ID" errors) errors"
		how=O_DIRECT
		((want)) && how="copied on tmpfs"
		note "$mode q=$nq, $how: zoned writes verified, zeros past the write pointer"
		del "$ID"
	done
done

# 3. Open, close, finish, reset: conditions, write pointers, files.
add -t zoned dir="$TMP/z" size=512M zone_size=32M conv_zones=2
blkzone reset "$DEV"
[ "$(fsize "$TMP/z/seq-000003")" = 0 ] || fail "reset all left seq-000003 written"
zop open 3 && cond_is "$ID" 3 oe || fail "open: $(zone_line "$ID" 3)"
zop close 3 && cond_is "$ID" 3 em || fail "close: $(zone_line "$ID" 3)"
wdd 3 0 256 || fail "1M write: $(cat "$TMP/dd.err")"
cond_is "$ID" 3 oi && wp_is "$ID" 3 2048 || fail "1M written: $(zone_line "$ID" 3)"
[ "$(fsize "$TMP/z/seq-000003")" = "$M" ] || fail "seq-000003: $(fsize "$TMP/z/seq-000003")"
zop close 3 && cond_is "$ID" 3 cl || fail "close: $(zone_line "$ID" 3)"
wdd 3 300 1 && fail "a write past the write pointer succeeded"
wdd 3 16 1 && fail "a write before the write pointer succeeded"
zop finish 3 && cond_is "$ID" 3 fu ||
	fail "finish: $(zone_line "$ID" 3)"
[ "$(fsize "$TMP/z/seq-000003")" = $((32 * M)) ] || fail "finish: seq-000003 not 32M"
wdd 3 8191 1 && fail "a write into a full zone succeeded"
zop reset 3 && cond_is "$ID" 3 em && wp_is "$ID" 3 0 ||
	fail "reset: $(zone_line "$ID" 3)"
[ "$(fsize "$TMP/z/seq-000003")" = 0 ] || fail "reset: seq-000003 not empty"
wdd 0 100 10 && wdd 1 8191 1 || fail "conventional writes: $(cat "$TMP/dd.err")"
blkzone reset -o 0 -c 1 "$DEV" 2>/dev/null && fail "a conventional zone was reset"
note "open, close, finish, reset: conditions, write pointers and files follow"
del "$ID"

# 3b. A zone capacity below the zone size (24M of 32M): reported, full at
# the capacity, nothing written past it, finish truncates to it; fio's zoned
# mode verifies writes that stop at each zone's capacity.
mkdir "$TMP/zc"
add -t zoned dir="$TMP/zc" size=256M zone_size=32M zone_capacity=24M conv_zones=1
[ "$(dev_field "$ID" zone_capacity)" = $((24 * M)) ] || fail "zone_capacity in list --json"
zone_line "$ID" 0 | grep -q "cap 0x010000" || fail "conventional cap: $(zone_line "$ID" 0)"
zone_line "$ID" 1 | grep -q "cap 0x00c000" || fail "sequential cap: $(zone_line "$ID" 1)"
wdd 1 0 6144 || fail "24M into zone 1: $(cat "$TMP/dd.err")"
cond_is "$ID" 1 fu || fail "zone 1 at its capacity: $(zone_line "$ID" 1)"
[ "$(fsize "$TMP/zc/seq-000001")" = $((24 * M)) ] ||
	fail "seq-000001: $(fsize "$TMP/zc/seq-000001")"
wdd 2 0 6143 || fail "24M - 4k into zone 2: $(cat "$TMP/dd.err")"
# One 8k write from 4k below the capacity: refused whole.
dd if=/dev/urandom of="$DEV" bs=8k count=1 seek=$(((2 * 8192 + 6143) * 4096)) \
	oflag=direct,seek_bytes conv=notrunc status=none 2>/dev/null &&
	fail "a write across the capacity succeeded"
wp_is "$ID" 2 $((6143 * 8)) ||
	fail "zone 2 after a write across the capacity: $(zone_line "$ID" 2)"
reads_zeros "$DEV" $M $((2 * 32 + 24)) 8 || fail "past the capacity: not read, or not zeros"
zop finish 3 && cond_is "$ID" 3 fu || fail "finish: $(zone_line "$ID" 3)"
[ "$(fsize "$TMP/zc/seq-000003")" = $((24 * M)) ] || fail "finish: seq-000003 not 24M"
blkzone reset "$DEV" || fail "reset all"
fio_ok zc --filename="$DEV" --zonemode=zbd --rw=write --bsrange=4k-128k --iodepth=8 \
	--offset=32M --size=224M --verify=crc32c --do_verify=1 --verify_fatal=1
[ "$(fsize "$TMP/zc/seq-000001")" = $((24 * M)) ] || fail "fio: seq-000001 not filled to 24M"
for f in "$TMP"/zc/seq-*; do
	[ "$(fsize "$f")" -le $((24 * M)) ] || fail "fio: $f past the capacity"
done
del "$ID"
expect_err "zone_capacity '40M': not a multiple of 4096 up to zone_size" add -t zoned \
	dir="$TMP/zc" size=256M zone_size=32M zone_capacity=40M conv_zones=1
expect_err "seq-000001': 25165824 bytes, more than the zone's capacity" \
	add -t zoned dir="$TMP/zc" size=256M zone_size=32M zone_capacity=16M conv_zones=1
rm -rf "$TMP/zc"
note "zone capacity 24M of 32M: reported, full there, finish to it, fio verified up to it"

# 4. max_open=2 max_active=3.
add -t zoned dir="$TMP/z" size=512M zone_size=32M conv_zones=2 max_open=2 max_active=3
blkzone reset "$DEV"
[ "$(cat /sys/block/ublkb$ID/queue/max_open_zones)" = 2 ] &&
	[ "$(cat /sys/block/ublkb$ID/queue/max_active_zones)" = 3 ] || fail "limits not advertised"
blkzone open -o $((2 * 65536)) -c 2 "$DEV" || fail "opening 2 zones"
zop open 4 2>/dev/null && fail "a 3rd explicit open succeeded"
zop close 3
wdd 4 0 1 || fail "implicit open of zone 4: $(cat "$TMP/dd.err")"
# The open limit: zone 4 (implicitly open) is closed to open zone 5.
wdd 5 0 1 || fail "implicit open of zone 5: $(cat "$TMP/dd.err")"
cond_is "$ID" 4 cl && cond_is "$ID" 5 oi && cond_is "$ID" 2 oe ||
	fail "after zone 5: $(blkzone report -o $((2 * 65536)) -c 4 "$DEV")"
[ "$(blkzone report "$DEV" | grep -c 'zcond: [23](o')" = 2 ] &&
	[ "$(blkzone report "$DEV" | grep -c 'zcond: \([23](o\|4(cl\)')" = 3 ] ||
	fail "not 2 open and 3 active: $(blkzone report -o $((2 * 65536)) -c 5 "$DEV")"
# The active limit: 2, 4 and 5 are active, zone 6 cannot become so.
wdd 6 0 1 && fail "a 4th active zone was written"
cond_is "$ID" 6 em || fail "zone 6: $(zone_line "$ID" 6)"
zop finish 4
wdd 6 0 1 || fail "zone 6 after zone 4 was finished: $(cat "$TMP/dd.err")"
note "max_open=2 max_active=3: the 3rd explicit open and the 4th active zone refused"
# An explicit open closes an implicitly open zone for room, as a device
# does: 2 (oe) and 6 (oi) are open, 5 is closed.
zop open 5 || fail "an explicit open did not close the implicitly open zone 6"
cond_is "$ID" 5 oe && cond_is "$ID" 6 cl && cond_is "$ID" 2 oe ||
	fail "after opening zone 5: $(blkzone report -o $((2 * 65536)) -c 5 "$DEV")"
# A reset closes an explicitly opened empty zone (2, never written).
zop reset 2 || fail "reset of zone 2"
cond_is "$ID" 2 em || fail "zone 2 after its reset: $(zone_line "$ID" 2)"
# A report may start at any sector: from the zone that holds it.
[ "$(blkzone report -o $((5 * 65536 + 100)) -c 1 "$DEV")" = "$(zone_line "$ID" 5)" ] ||
	fail "a report from inside zone 5: $(blkzone report -o $((5 * 65536 + 100)) -c 1 "$DEV" 2>&1)"
note "an explicit open closed an implicitly open zone; a reset closed an open empty one"

# 5. Zones survive del and add; a directory laid out beforehand.
blkzone report "$DEV" | sed 's/zcond.*//' >"$TMP/before"
md5=$(dd if="$DEV" bs=4k skip=$((5 * 8192)) count=1 iflag=direct status=none | md5sum)
del "$ID"
add -t zoned dir="$TMP/z" size=512M zone_size=32M conv_zones=2
blkzone report "$DEV" | sed 's/zcond.*//' >"$TMP/after"
cmp -s "$TMP/before" "$TMP/after" ||
	fail "zones changed across del and add: $(diff "$TMP/before" "$TMP/after")"
cond_is "$ID" 5 cl && cond_is "$ID" 4 fu ||
	fail "after add: $(blkzone report -o $((4 * 65536)) -c 2 "$DEV")"
[ "$(dd if="$DEV" bs=4k skip=$((5 * 8192)) count=1 iflag=direct status=none | md5sum)" = "$md5" ] ||
	fail "zone 5's data changed across del and add"
del "$ID"
mkdir "$TMP/pre"
truncate -s 32M "$TMP/pre/cnv-000000"
head -c $((3 * M)) /dev/urandom >"$TMP/pre/seq-000001"
# A tail of a block (a write cut short by a full file system): cut off.
head -c $((8192 + 100)) /dev/urandom >"$TMP/pre/seq-000002"
add -t zoned dir="$TMP/pre" size=256M zone_size=32M conv_zones=1
cond_is "$ID" 1 cl && wp_is "$ID" 1 6144 || fail "laid out zone 1: $(zone_line "$ID" 1)"
wp_is "$ID" 2 16 && [ "$(fsize "$TMP/pre/seq-000002")" = 8192 ] ||
	fail "a zone file's partial block: $(zone_line "$ID" 2), $(fsize "$TMP/pre/seq-000002") bytes"
wdd 2 2 1 || fail "a write at the cut write pointer: $(cat "$TMP/dd.err")"
dd if="$DEV" bs=1M skip=32 count=3 iflag=direct status=none | cmp -s - "$TMP/pre/seq-000001" ||
	fail "zone 1 does not read back its file"
[ "$(ls "$TMP/pre" | wc -l)" = 8 ] || fail "missing zone files not created: $(ls "$TMP/pre")"
del "$ID"
note "zones and data kept across del and add; a zloop-style directory taken as it is"
# More zones active than max_active (a write that filled a zone gave its
# slot away before it landed, and the daemon died): the fullest finished,
# not by an add refused for a bad option beside.
"$Z" add -t zoned dir="$TMP/pre" size=256M zone_size=32M conv_zones=1 max_open=1 max_active=1 \
	colour=red >"$TMP/out" 2>"$TMP/err" && fail "an add with colour=red was taken"
[ "$(fsize "$TMP/pre/seq-000001")" = $((3 * M)) ] ||
	fail "a refused add finished zone 1: $(fsize "$TMP/pre/seq-000001") bytes"
add -t zoned dir="$TMP/pre" size=256M zone_size=32M conv_zones=1 max_open=1 max_active=1
cond_is "$ID" 1 fu && cond_is "$ID" 2 cl ||
	fail "2 closed zones, max_active=1: $(blkzone report -o 65536 -c 2 "$DEV")"
# Said before the device started: on add's stderr.
grep -q "zone 1: 2 zones active, more than max_active=1: finished" "$TMP/add.err" ||
	fail "max_active=1: no 'finished' line: $(cat "$TMP/add.err")"
dd if="$DEV" bs=1M skip=32 count=3 iflag=direct status=none |
	cmp -s - <(head -c $((3 * M)) "$TMP/pre/seq-000001") ||
	fail "zone 1's data changed when it was finished"
del "$ID"
note "2 zones active at add, max_active=1: the fuller one finished, its data kept"

# 6. Bad input: one line each, nothing left behind.
ZA=(add -t zoned size=512M zone_size=32M)
expect_err "needs dir=" add -t zoned size=512M
expect_err "dir '$TMP/none'" add -t zoned dir="$TMP/none"
expect_err "zone_size '3M'" add -t zoned dir="$TMP/z" zone_size=3M
expect_err "size 100663296: not a multiple" add -t zoned dir="$TMP/z" size=96M zone_size=64M
expect_err "conv_zones 16: leaves none" "${ZA[@]}" dir="$TMP/z" conv_zones=16
expect_err "holds seq-000002, but conv_zones=3" "${ZA[@]}" dir="$TMP/z" conv_zones=3
mkdir "$TMP/bad"
truncate -s 32M "$TMP/bad/cnv-000000" "$TMP/bad/cnv-000001"
expect_err "holds cnv-000001, but conv_zones=1" "${ZA[@]}" dir="$TMP/bad" conv_zones=1
expect_err "past the 8 zones" add -t zoned dir="$TMP/z" size=256M zone_size=32M conv_zones=2
# A zone's file missing where a later zone's is there: refused, nothing made.
mkdir "$TMP/hole"
truncate -s 32M "$TMP/hole/cnv-000000"
touch "$TMP/hole/seq-000002"
expect_err "zone 1's file seq-000001 is missing, and later zones' are there" \
	"${ZA[@]}" dir="$TMP/hole" conv_zones=1
[ "$(ls "$TMP/hole" | tr '\n' ' ')" = "cnv-000000 seq-000002 " ] ||
	fail "a refused add over a hole changed the files: $(ls "$TMP/hole")"
truncate -s 33M "$TMP/bad/seq-000002"
expect_err "seq-000002': 34603008 bytes" "${ZA[@]}" dir="$TMP/bad" conv_zones=2
expect_err "max_open 4, max_active 3" "${ZA[@]}" dir="$TMP/z" conv_zones=2 max_open=4 max_active=3
expect_err "mode copy: not supported by target zoned" "${ZA[@]}" dir="$TMP/z" conv_zones=2 \
	--mode copy
expect_err "mode auto-zero-copy: not supported" "${ZA[@]}" dir="$TMP/z" conv_zones=2 \
	--mode auto-zero-copy
(
	ulimit -n 64
	ulimit -Hn 64
	expect_err "16 zone files, but only 64 open files" "${ZA[@]}" dir="$TMP/z" conv_zones=2
) || exit 1
[ "$(fsize "$TMP/z/seq-000005")" -gt 0 ] || fail "bad input touched the zones"
# Refused after the zone files were made (the device number is taken):
# those it made go, those that were there stay.
mkdir "$TMP/fresh"
truncate -s 32M "$TMP/fresh/cnv-000000"
add -t null -n 5
"$Z" add -t zoned dir="$TMP/fresh" size=256M zone_size=32M conv_zones=1 -n 5 >/dev/null \
	2>"$TMP/err" && fail "a second device 5 was added"
grep -q "device 5: already exists" "$TMP/err" || fail "add said: $(cat "$TMP/err")"
[ "$(ls "$TMP/fresh")" = cnv-000000 ] || fail "a refused add left zone files: $(ls "$TMP/fresh")"
del 5

# 7. 20000 zones: more than one report request's worth.
ulimit -Hn 65536 && ulimit -n 65536 || fail "raising the open files limit"
mkdir "$TMP/many"
add -t zoned dir="$TMP/many" size=20000M zone_size=1M conv_zones=0
[ "$(blkzone report "$DEV" | grep -c 'zcond: 1(em)')" = 20000 ] ||
	fail "20000 zones: $(blkzone report "$DEV" | wc -l) reported"
dd if=/dev/urandom of="$DEV" bs=4k seek=$((19999 * 256)) count=3 oflag=direct status=none ||
	fail "write to the last zone"
[ "$(fsize "$TMP/many/seq-019999")" = 12288 ] || fail "seq-019999: $(fsize "$TMP/many/seq-019999")"
del "$ID"
rm -rf "$TMP/many"
note "20000 zones reported; the last one written"

# 8. btrfs on the device (zone appends), 2 queues where there are CPUs.
# (4G of 64M zones: on 1G of 32M zones and no active limit, btrfs's
# writeback waits for a zone to finish forever, on null_blk's zoned mode too.)
if command -v mkfs.btrfs >/dev/null && modprobe btrfs 2>/dev/null; then
	queues_upto 2
	mkdir "$TMP/ram/bt" "$TMP/mnt"
	# Written copied in the queue threads (tmpfs), read back and written
	# again through io_uring (copy_max=0) with batched commands, whose
	# commits carry the zone appends' sectors (where the kernel has them).
	batch=()
	"$Z" features | grep -qw BATCH_IO && batch=(--batch)
	add -t zoned dir="$TMP/ram/bt" size=4G zone_size=64M conv_zones=4 -q "$q"
	mkfs.btrfs -q -f "$DEV" >"$TMP/mkfs.log" 2>&1 || fail "mkfs.btrfs: $(cat "$TMP/mkfs.log")"
	mount "$DEV" "$TMP/mnt" || fail "mount btrfs"
	for f in a b c; do head -c $((10 * M)) /dev/urandom >"$TMP/mnt/$f"; done
	sync
	(cd "$TMP/mnt" && md5sum a b c) >"$TMP/sums"
	umount "$TMP/mnt"
	del "$ID"
	add -t zoned dir="$TMP/ram/bt" size=4G zone_size=64M conv_zones=4 -q "$q" copy_max=0 \
		"${batch[@]}"
	[ "$(dev_json "$ID" 'any(.flags[]; . == "BATCH_IO")')" = \
		"$( ((${#batch[@]})) && echo True || echo False)" ] || fail "BATCH_IO flag"
	mount "$DEV" "$TMP/mnt" || fail "mount btrfs after del and add"
	(cd "$TMP/mnt" && md5sum -c --quiet "$TMP/sums") || fail "btrfs files changed"
	head -c $((10 * M)) /dev/urandom >"$TMP/mnt/d"
	sync
	(cd "$TMP/mnt" && md5sum d) >>"$TMP/sums"
	umount "$TMP/mnt"
	mount "$DEV" "$TMP/mnt" || fail "mount btrfs again"
	(cd "$TMP/mnt" && md5sum -c --quiet "$TMP/sums") || fail "btrfs files changed"
	btrfs scrub start -B "$TMP/mnt" >"$TMP/scrub.log" 2>&1 || fail "scrub: $(cat "$TMP/scrub.log")"
	grep -q "no errors found" "$TMP/scrub.log" || fail "scrub: $(cat "$TMP/scrub.log")"
	umount "$TMP/mnt"
	[ "$(counter "$ID" errors)" = 0 ] || fail "btrfs: $(counter "$ID" errors) errors"
	del "$ID"
	note "btrfs on $q queue(s): 40M of files kept across del and add (then ${batch[*]:-no}" \
		"batch), scrub clean"
else
	skip_check "btrfs on a zoned device" "no mkfs.btrfs or btrfs module"
fi

# 9. The daemon killed under reads: recover; zones as they were, no error.
add -t zoned dir="$TMP/z" size=512M zone_size=32M conv_zones=2
blkzone report "$DEV" | sed 's/zcond.*//' >"$TMP/before"
bg_fio r --filename="$DEV" --rw=randread --bs=4k --iodepth=32 --offset=64M --size=64M \
	--time_based --runtime=600
sleep 3
fio_running || fail "recover: fio died: $(tail -3 "$TMP/r.log")"
kill_recover recover
sleep 2
bg_fio_stop r
blkzone report "$DEV" | sed 's/zcond.*//' >"$TMP/after"
cmp -s "$TMP/before" "$TMP/after" || fail "zones changed across the recovery"
note "daemon killed under reads: recovered, zones as they were"
# A recovery whose directory lacks a zone's file (not mounted, moved): refused
# with one line, the device left waiting for a daemon; the file back, it recovers.
kill -9 "$(dev_field "$ID" daemon_pid)"
wait_until 20 state_is "$ID" QUIESCED || fail "recover, a file away: $(dev_field "$ID" state)"
mv "$TMP/z/seq-000005" "$TMP/seq-000005.away"
timeout 30 "$Z" recover -n "$ID" >"$TMP/out" 2>"$TMP/err" &&
	fail "a recovery without zone 5's file was taken"
[ "$(wc -l <"$TMP/err")" = 1 ] && grep -q "zone 5's file seq-000005 is missing: a recovery" \
	"$TMP/err" || fail "recover without zone 5's file said: $(cat "$TMP/err")"
[ ! -e "$TMP/z/seq-000005" ] || fail "the refused recovery made zone 5's file anew"
state_is "$ID" QUIESCED || fail "after the refused recovery: $(dev_field "$ID" state)"
mv "$TMP/seq-000005.away" "$TMP/z/seq-000005"
timeout 30 "$Z" recover -n "$ID" >/dev/null || fail "recover with the file back failed"
wait_until 20 state_is "$ID" LIVE || fail "recovered: not LIVE ($(dev_field "$ID" state))"
blkzone report "$DEV" | sed 's/zcond.*//' >"$TMP/after"
cmp -s "$TMP/before" "$TMP/after" || fail "zones changed across the second recovery"
note "a recovery without a zone's file: '$(cat "$TMP/err")'; with it back, recovered"

# 10. del under zoned writes.
blkzone reset "$DEV"
del_under_load "zoned writes" --zonemode=zbd --rw=randwrite --offset=64M --max_open_zones=4
exit 0
