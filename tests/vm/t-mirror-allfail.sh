# SPDX-License-Identifier: MIT
# Every mirror leg fails under fio: the application gets EIO (never a hang),
# the last leg is kept (and keeps failing), and del works.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/raid-lib.sh"
truncate -s 64M "$TMP/a" "$TMP/b"
dm_leg a "$TMP/a"
leg0=$DM_DEV
dm_leg b "$TMP/b"
leg1=$DM_DEV
for mode in zero-copy copy; do
	dm_heal a
	dm_heal b
	add -t mirror file="$leg0" file="$leg1" --mode "$mode"
	bg_fio w --filename="$DEV" --rw=randrw --bsrange=4k-256k --iodepth=16 --size=48M \
		--time_based --runtime=300
	sleep 2
	fio_running || fail "$mode: fio ended early: $(tail -3 "$TMP/w.log")"
	dm_fail a
	dm_fail b
	# fio stops at the first error: it must, and soon.
	wait_until 60 eval '! fio_running' || fail "$mode: fio still running 60 s after both legs failed"
	wait "$FIO_PID"
	grep -qE "err=[ ]*5|Input/output error" "$TMP/w.log" ||
		fail "$mode: fio did not see EIO: $(grep -E 'err=' "$TMP/w.log" | head -3)"
	timeout 30 dd if="$DEV" of=/dev/null bs=4k count=1 iflag=direct 2>"$TMP/dd.err" &&
		fail "$mode: a read succeeded with every leg failed"
	[ $? -ne 124 ] || fail "$mode: a read hung"
	grep -q "Input/output error" "$TMP/dd.err" || fail "$mode: dd: $(cat "$TMP/dd.err")"
	timeout 30 dd if=/dev/zero of="$DEV" bs=4k count=1 oflag=direct 2>"$TMP/dd.err" &&
		fail "$mode: a write succeeded with every leg failed"
	grep -q "Input/output error" "$TMP/dd.err" || fail "$mode: dd write: $(cat "$TMP/dd.err")"
	[ "$(dev_field "$ID" in_sync)" = 1 ] || fail "$mode: in_sync is not 1"
	[ "$(dev_errors "$ID")" -gt 0 ] || fail "$mode: no errors counted"
	timeout 60 "$Z" del -n "$ID" || fail "$mode: del failed or hung"
	no_devices || fail "$mode: device left after del"
	note "$mode: EIO reached fio and dd, del worked"
done
exit 0
