# SPDX-License-Identifier: MIT
# null in every data mode with 1 and 2 queues: writes of 4k..1M complete
# without error and every read returns zeros (null keeps no data, so the
# read-back check is a zero pattern, not crc32c; reads up to copy_max, 64k,
# get their zeros by user copy, longer ones from /dev/zero).  fill=none (what null_blk
# does) leaves a read's pages as they were: in the zero-copy modes a read
# into a buffer of 0xab bytes keeps them; the default fill would zero them.
. "$(dirname "$0")/lib.sh"
for mode in copy user-copy zero-copy auto-zero-copy; do
	for q in 1 2; do
		fits_cpus "$q" || continue
		add -t null size=1G --mode "$mode" -q "$q"
		"$Z" list --json | grep -q "\"mode\": \"$mode\"" || fail "$mode not in effect"
		fio_ok w --filename="$DEV" --rw=randwrite --bsrange=4k-1M --iodepth=32 \
			--numjobs="$q" --size=128M --group_reporting
		# Dirty the pages fio reads into, so stale data would show.
		fio_ok r --filename="$DEV" --rw=randread --bsrange=4k-1M --iodepth=32 \
			--size=128M --verify=pattern --verify_pattern=0 --verify_only
		case $mode in *zero-copy)
			# Busy CPUs: a /dev/zero read into 1M of request pages
			# stops short now and then; the rest must follow, not EIO.
			for _ in 1 2; do timeout 20 sh -c 'while :; do :; done' & done
			fio_ok busy --filename="$DEV" --rw=read --bs=1M --iodepth=8 --numjobs=2 \
				--size=128M --offset_increment=256M --verify=pattern \
				--verify_pattern=0 --verify_only --loops=2
			pkill -f 'while :; do :; done' 2>/dev/null
			wait
			;;
		esac
		note "null $mode q=$q: ok"
		del "$ID"
	done
done
# readab DEV: read 64k at 1M with O_DIRECT into a buffer of 0xab bytes and
# print how many of them are still 0xab.
readab() {
	python3 - "$1" <<'PY'
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECT)
buf = mmap.mmap(-1, 65536)
buf.write(b"\xab" * 65536)
assert os.preadv(fd, [buf], 1 << 20) == 65536
print(buf[:].count(b"\xab"))
PY
}
for mode in zero-copy auto-zero-copy copy; do
	add -t null size=1G --mode "$mode" fill=none
	fio_ok w --filename="$DEV" --rw=randwrite --bs=64k --iodepth=8 --size=64M
	fio_ok r --filename="$DEV" --rw=randread --bsrange=4k-1M --iodepth=32 --size=256M
	if [ "$mode" != copy ]; then
		n=$(readab "$DEV") || fail "fill=none $mode: O_DIRECT read failed"
		[ "$n" = 65536 ] || fail "fill=none $mode: the read changed $((65536 - n)) bytes"
	fi
	del "$ID"
	for copy_max in 64k 0; do
		add -t null size=1G --mode "$mode" copy_max=$copy_max
		n=$(readab "$DEV") || fail "$mode copy_max=$copy_max: O_DIRECT read failed"
		[ "$n" = 0 ] || fail "$mode copy_max=$copy_max: $n bytes of the read buffer not zeroed"
		del "$ID"
	done
	note "null $mode: fill=none leaves the pages, the default zeroes them (copied or read)"
done
# copy_max with fill=none is refused now; an older zublk took it and did
# nothing with it, and the recovery of a device it added still comes up.
add -t null size=1G fill=none
kill -9 "$(dev_field "$ID" daemon_pid)"
wait_until 20 state_is "$ID" QUIESCED || fail "fill=none: not QUIESCED after kill -9"
sed -i 's|"options":\[|"options":["copy_max=4k",|' "/run/zublk/$ID.json"
grep -q '"copy_max=4k"' "/run/zublk/$ID.json" || fail "copy_max not put in the state file"
timeout 30 "$Z" recover -n "$ID" >/dev/null 2>"$TMP/err" || fail "recover with copy_max: $(cat "$TMP/err")"
wait_until 20 state_is "$ID" LIVE || fail "fill=none, copy_max: not LIVE after recover"
n=$(readab "$DEV") || fail "fill=none after recover: O_DIRECT read failed"
del "$ID"
note "fill=none with an older zublk's copy_max=4k: recovered"
exit 0
