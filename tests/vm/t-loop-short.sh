# SPDX-License-Identifier: MIT
# A read or write carries its commit linked behind it (one turn per
# request); when the backing gives fewer bytes than asked (a file cut short
# under the device) the link breaks and the request still ends exactly
# once: the rest is tried, then EIO, the daemon lives on and data before the
# cut reads back right.  Every data mode.
. "$(dirname "$0")/lib.sh"
# In /tmp (not tmpfs itself): served through io_uring, not mapped.
modes=$("$Z" features | sed -n 's/^data modes://p')
[ -n "$modes" ] || fail "zublk features names no data mode"
for mode in $modes; do
	rm -f "$TMP/img"
	truncate -s 64M "$TMP/img"
	add -t loop -f "$TMP/img" --mode "$mode"
	fio_ok w-$mode --filename="$DEV" --rw=write --bs=64k --iodepth=8 --size=8M \
		--verify=crc32c --do_verify=1 --verify_fatal=1
	errs=$(counter "$ID" errors)
	# 8 MiB + 6 KiB: a 64 KiB read at 8 MiB gets 6 KiB, then nothing.
	truncate -s $((8 * 1048576 + 6144)) "$TMP/img"
	dd if="$DEV" of=/dev/null bs=64k skip=128 count=1 iflag=direct status=none 2>/dev/null &&
		fail "$mode: a read past the cut succeeded"
	dd if="$DEV" of=/dev/null bs=4k skip=4096 count=1 iflag=direct status=none 2>/dev/null &&
		fail "$mode: a read wholly past the cut succeeded"
	kill -0 "$(dev_field "$ID" daemon_pid)" 2>/dev/null || fail "$mode: the daemon died"
	now=$(counter "$ID" errors)
	[ "$now" -ge $((errs + 2)) ] || fail "$mode: $((now - errs)) errors counted for 2 failed reads"
	fio_ok v-$mode --filename="$DEV" --rw=write --bs=64k --iodepth=8 --size=8M \
		--verify=crc32c --verify_only --verify_fatal=1
	del "$ID"
	note "$mode: short and past-the-end reads failed alone, the rest verified"
done
exit 0
