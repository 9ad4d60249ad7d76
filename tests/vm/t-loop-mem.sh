# SPDX-License-Identifier: MIT
# loop, stripe and mirror over tmpfs files, which they map and copy requests
# straight into (zublk_backing_copy): data verifies in every data mode, the
# copy really is taken, reading holes allocates no memory, discard gives the
# memory back, a grown file is mapped further, a file truncated under the
# device gives EIO (no crash; in copy mode too), bad map options are refused.
. "$(dirname "$0")/lib.sh"
MNT=$TMP/shm
mkdir "$MNT" && mount -t tmpfs -o size=900m zublk-test "$MNT" || fail "mounting a tmpfs"
mem_cleanup() {
	timeout 60 "$Z" del --all >/dev/null 2>&1
	umount "$MNT" 2>/dev/null
	cleanup
}
trap mem_cleanup EXIT

used_mb() { df -m --output=used "$MNT" | tail -1; }

truncate -s 128M "$MNT/img"
for mode in copy user-copy zero-copy auto-zero-copy; do
	for q in 1 2; do
		fits_cpus "$q" || continue
		# With 2 queues a copy limit, so that requests above it take the
		# io_uring way on the same device.
		lim=
		[ "$q" = 2 ] && lim=map_max=16k
		add -t loop -f "$MNT/img" --mode "$mode" -q "$q" $lim
		[ "$(dev_field "$ID" mapped)" = True ] || fail "$mode: loop on tmpfs is not mapped"
		# Sizes up to 64k (around the limit), holes and written blocks mixed.
		fio_ok v --filename="$DEV" --rw=randwrite --bsrange=512-64k --iodepth=16 \
			--size=16M --verify=crc32c --do_verify=1 --verify_fatal=1 --numjobs="$q" \
			--offset_increment=48M
		fio_ok v4 --filename="$DEV" --rw=randwrite --bs=4k --iodepth=32 --size=8M \
			--offset=96M --verify=crc32c --do_verify=1 --verify_fatal=1
		# The 4k reads of written blocks were copied in the queue thread, in
		# every mode: the copies counter counts one for each, and the
		# commit is the only SQE of each (the io_uring way has two).  The
		# SQE bound here and below, 1.25 a request, sits between the two
		# and leaves room for the odd extra SQE (CI once saw auto-zero-copy
		# make 284 for 256 64k reads, 1.11).
		sqes_from "$ID"
		fio_ok r4 --filename="$DEV" --rw=randread --bs=4k --iodepth=32 --size=8M \
			--offset=96M --number_ios=2000
		sqes_to "$ID"
		[ "$IOS" -ge 2000 ] || fail "$mode: $IOS requests counted for 2000 reads"
		[ "$CP" -ge "$IOS" ] || fail "$mode: $CP of $IOS 4k reads copied straight"
		[ $((SUB * 4)) -le $((IOS * 5)) ] ||
			fail "$mode: $SUB SQEs for $IOS 4k reads: not copied straight"
		note "loop $mode q=$q: $SUB SQEs, $CP copies, $HR hand registrations for $IOS 4k reads"
		# 64k reads: copied straight too without a limit, the io_uring
		# way (at least 2 SQEs each, no copy) above map_max=16k.
		sqes_from "$ID"
		fio_ok r64 --filename="$DEV" --rw=randread --bs=64k --iodepth=8 --size=8M \
			--offset=96M
		sqes_to "$ID"
		if [ -z "$lim" ]; then
			[ "$CP" -ge "$IOS" ] || fail "$mode: $CP of $IOS 64k reads copied straight"
			[ $((SUB * 4)) -le $((IOS * 5)) ] ||
				fail "$mode: $SUB SQEs for $IOS 64k reads: not copied straight"
		else
			[ $((SUB * 2)) -ge $((IOS * 3)) ] && [ "$CP" = 0 ] ||
				fail "$mode $lim: $SUB SQEs, $CP copies for $IOS 64k reads: copied past the limit"
		fi
		note "loop $mode q=$q $lim: $SUB SQEs, $CP copies, $HR hand registrations for $IOS 64k reads"
		# What the device shows is what the file holds.
		cmp <(dd if="$DEV" bs=1M iflag=direct status=none) "$MNT/img" ||
			fail "$mode: device and file differ"
		note "loop $mode q=$q: verified"
		del "$ID"
	done
done
rm -f "$MNT/img"

# Reading holes allocates nothing; discard frees what writing took.
truncate -s 512M "$MNT/sparse"
add -t loop -f "$MNT/sparse"
before=$(used_mb)
fio_ok holes --filename="$DEV" --rw=randread --bs=4k --iodepth=32 --size=512M --number_ios=8000
fio_ok holes-seq --filename="$DEV" --rw=read --bs=4k --iodepth=32 --size=64M
[ $(($(used_mb) - before)) -le 4 ] || fail "reading holes took $(($(used_mb) - before)) MiB of tmpfs"
fio_ok fill --filename="$DEV" --rw=write --bs=4k --iodepth=32 --size=64M
[ $(($(used_mb) - before)) -ge 60 ] || fail "64 MiB written, tmpfs grew $(($(used_mb) - before)) MiB"
blkdiscard "$DEV" || fail "blkdiscard"
[ $(($(used_mb) - before)) -le 4 ] || fail "after discard tmpfs still holds $(($(used_mb) - before)) MiB"
reads_zeros "$DEV" 4096 0 16 || fail "discarded blocks do not read, or not as zeros"
note "holes: read without allocating, discard gave the memory back"

# Grown: the new end is mapped too and keeps its data.
"$Z" resize -n "$ID" 640M >/dev/null || fail "resize"
fio_ok grown --filename="$DEV" --rw=randwrite --bs=4k --iodepth=16 --offset=600M --size=40M \
	--verify=crc32c --do_verify=1 --verify_fatal=1
note "grown to 640M: the new end verified"

# Truncated under the device: errors, no crash, del works.
truncate -s 1M "$MNT/sparse"
dd if="$DEV" of=/dev/null bs=4k skip=153600 count=1 iflag=direct status=none 2>/dev/null &&
	fail "a read past the truncated file succeeded"
kill -0 "$(dev_field "$ID" daemon_pid)" 2>/dev/null || fail "the daemon died"
del "$ID"
note "truncated under the device: EIO, daemon alive, deleted"

# The same in copy mode, whose straight copy goes through the daemon's
# buffer: a read past the truncated end fails; a write there (which may
# grow the file again) leaves the daemon alive.
truncate -s 64M "$MNT/cut"
add -t loop -f "$MNT/cut" --mode copy
dd if=/dev/urandom of="$DEV" bs=1M count=64 oflag=direct status=none || fail "copy mode: filling"
truncate -s 1M "$MNT/cut"
dd if="$DEV" of=/dev/null bs=4k skip=8192 count=1 iflag=direct status=none 2>/dev/null &&
	fail "copy mode: a read past the truncated file succeeded"
dd if=/dev/zero of="$DEV" bs=4k seek=8192 count=1 oflag=direct status=none 2>/dev/null
kill -0 "$(dev_field "$ID" daemon_pid)" 2>/dev/null || fail "copy mode: the daemon died"
del "$ID"
rm -f "$MNT/cut"
note "copy mode, truncated under the device: EIO, daemon alive, deleted"

# stripe over two tmpfs files maps them the same way.
truncate -s 128M "$MNT/a" "$MNT/b"
add -t stripe file="$MNT/a" file="$MNT/b" chunk=16k --mode zero-copy
fio_ok s --filename="$DEV" --rw=randwrite --bsrange=512-64k --iodepth=16 --size=48M \
	--verify=crc32c --do_verify=1 --verify_fatal=1
sqes_from "$ID"
fio_ok s4 --filename="$DEV" --rw=randread --bs=4k --iodepth=32 --size=16M --number_ios=2000
sqes_to "$ID"
[ "$CP" -ge "$IOS" ] || fail "stripe: $CP of $IOS 4k reads copied straight"
[ $((SUB * 4)) -le $((IOS * 5)) ] || fail "stripe: $SUB SQEs for $IOS 4k reads"
del "$ID"
note "stripe on tmpfs: verified, $SUB SQEs, $CP copies for $IOS 4k reads"

# mirror over tmpfs files maps its legs: reads from one leg's pages, writes
# into every leg's; a replaced leg gives up its mapping and goes the
# io_uring way, and the data stays right through it all.
leg() { dev_json "$ID" ".legs[$1].$2"; }
truncate -s 128M "$MNT/ma" "$MNT/mb"
add -t mirror file="$MNT/ma" file="$MNT/mb" --mode zero-copy
[ "$(leg 0 mapped)/$(leg 1 mapped)" = True/True ] || fail "mirror legs on tmpfs not mapped"
fio_ok m --filename="$DEV" --rw=randwrite --bsrange=512-128k --iodepth=16 --size=48M \
	--verify=crc32c --do_verify=1 --verify_fatal=1
sqes_from "$ID"
fio_ok m4 --filename="$DEV" --rw=randread --bs=4k --iodepth=32 --size=16M --number_ios=2000
fio_ok mw --filename="$DEV" --rw=randwrite --bs=64k --iodepth=8 --size=16M --offset=100M \
	--number_ios=200
sqes_to "$ID"
# A read copies from one leg, a write into both.
[ "$CP" -ge $((IOS + 200)) ] || fail "mirror: $CP copies for $IOS 4k reads and 200 64k writes"
[ $((SUB * 4)) -le $((IOS * 5)) ] || fail "mirror: $SUB SQEs for $IOS 4k reads and 64k writes"
cmp "$MNT/ma" "$MNT/mb" || fail "mirror legs differ"
cmp <(dd if="$DEV" bs=1M iflag=direct status=none) "$MNT/ma" || fail "mirror: device and leg differ"
note "mirror on tmpfs: legs mapped, identical, $SUB SQEs, $CP copies for $IOS 4k reads and 64k writes"
truncate -s 128M "$MNT/mc"
"$Z" mirror replace -n "$ID" 1 "$MNT/mc" >/dev/null || fail "mirror replace"
wait_until 120 eval '[ "$(leg 1 state)" = ok ]' || fail "leg 1 not rebuilt: $(leg 1 state)"
[ "$(leg 0 mapped)/$(leg 1 mapped)" = True/False ] || fail "after replace: mapped $(leg 0 mapped)/$(leg 1 mapped)"
fio_ok m2 --filename="$DEV" --rw=randwrite --bsrange=512-128k --iodepth=16 --size=32M \
	--offset=64M --verify=crc32c --do_verify=1 --verify_fatal=1
"$Z" mirror fail -n "$ID" 0 >/dev/null || fail "mirror fail leg 0"
cmp <(dd if="$DEV" bs=1M iflag=direct status=none) "$MNT/mc" || fail "mirror: device and new leg differ"
cmp "$MNT/ma" "$MNT/mc" || fail "mirror: old and new leg differ"
del "$ID"
rm -f "$MNT/ma" "$MNT/mb" "$MNT/mc"
note "mirror: replaced leg not mapped, rebuilt, read from alone: same data"

# The default mode: zero-copy when every request is copied straight (auto
# registration would register each request's pages for nothing), else
# auto-zero-copy; same for a stripe over tmpfs.
truncate -s 16M "$MNT/dm"
for c in ":zero-copy" "map=0:auto-zero-copy" "map_max=16k:auto-zero-copy"; do
	# shellcheck disable=SC2086
	add -t loop -f "$MNT/dm" ${c%%:*}
	[ "$(dev_field "$ID" mode)" = "${c#*:}" ] ||
		fail "loop ${c%%:*}: default mode $(dev_field "$ID" mode), not ${c#*:}"
	fio_ok dm --filename="$DEV" --rw=randwrite --bsrange=4k-128k --iodepth=8 --size=16M \
		--verify=crc32c --do_verify=1 --verify_fatal=1
	del "$ID"
done
add -t stripe file="$MNT/a" file="$MNT/b" chunk=16k
[ "$(dev_field "$ID" mode)" = zero-copy ] || fail "stripe on tmpfs: mode $(dev_field "$ID" mode)"
del "$ID"
note "default modes: zero-copy when copied straight, else auto-zero-copy"

# A queue per CPU: copied straight, each queue gets a thread of its own
# (the copies run on every CPU); through io_uring (map=0), a thread per two.
ncpu=$(nproc)
half=$(((ncpu + 1) / 2))
if [ "$ncpu" -ge 2 ]; then
	truncate -s 160M "$MNT/qpc"
	add -t loop -f "$MNT/qpc" -q "$ncpu"
	[ "$(dev_field "$ID" threads)" = "$ncpu" ] ||
		fail "mapped, -q $ncpu: threads $(dev_field "$ID" threads), want $ncpu"
	fio_ok qpc --filename="$DEV" --rw=randwrite --bs=64k --iodepth=8 --size=64M \
		--numjobs=2 --offset_increment=64M --verify=crc32c --cpus_allowed=0-1 \
		--cpus_allowed_policy=split
	del "$ID"
	add -t loop -f "$MNT/qpc" -q "$ncpu" map=0
	[ "$(dev_field "$ID" threads)" = "$half" ] ||
		fail "map=0, -q $ncpu: threads $(dev_field "$ID" threads), want $half"
	del "$ID"
	rm -f "$MNT/qpc"
	note "-q $ncpu: $ncpu threads mapped, $half with map=0"
else
	skip_check "a queue per CPU" "this machine has 1 CPU"
fi

# Bad input: one line, no device.
truncate -s 16M "$TMP/disk"
for args in "map=1 -f $TMP/disk" "map_max=64q -f $MNT/a" "map=2 -f $MNT/a"; do
	# shellcheck disable=SC2086
	"$Z" add -t loop $args >/dev/null 2>"$TMP/err" && fail "add -t loop $args accepted"
	[ "$(wc -l <"$TMP/err")" = 1 ] || fail "add -t loop $args: $(cat "$TMP/err")"
	note "$(cat "$TMP/err")"
done
"$Z" add -t stripe map=1 file="$MNT/a" file="$TMP/disk" >/dev/null 2>"$TMP/err" &&
	fail "stripe map=1 with a member on disk accepted"
note "$(cat "$TMP/err")"
"$Z" add -t mirror map=1 file="$MNT/a" file="$TMP/disk" >/dev/null 2>"$TMP/err" &&
	fail "mirror map=1 with a leg on disk accepted"
[ "$(wc -l <"$TMP/err")" = 1 ] || fail "mirror map=1: $(cat "$TMP/err")"
note "$(cat "$TMP/err")"
no_devices || fail "bad input left a device: $("$Z" list)"
exit 0
