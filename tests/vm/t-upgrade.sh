# SPDX-License-Identifier: MIT
# zublk upgrade under fio verify: the daemon is replaced (new pid, the binary
# given), IO keeps going, zero errors.
. "$(dirname "$0")/lib.sh"
truncate -s 256M "$TMP/img"
cp "$Z" "$TMP/zublk-new"
add -t loop -f "$TMP/img" -n 0
fio --name=v --filename="$DEV" --ioengine=io_uring --direct=1 --rw=randwrite --bs=4k \
	--iodepth=32 --size=64M --verify=crc32c --verify_backlog=512 --verify_fatal=1 \
	--time_based --runtime=600 >"$FIO_LOG" 2>&1 &
fio_pid=$!
for round in 1 2; do
	sleep 3
	old=$(dev_field 0 daemon_pid)
	timeout 60 "$Z" upgrade -n 0 --binary "$TMP/zublk-new" >/dev/null || fail "upgrade $round"
	new=$(dev_field 0 daemon_pid)
	[ "$new" != "$old" ] || fail "same daemon after upgrade"
	[ "$(readlink /proc/$new/exe)" = "$TMP/zublk-new" ] || fail "new daemon runs $(readlink /proc/$new/exe)"
	state_is 0 LIVE || fail "not live after upgrade"
	kill -0 $fio_pid || fail "fio died: $(grep -E 'err|verify' "$FIO_LOG" | head)"
	note "upgrade $round: $old -> $new"
done
sleep 2
kill -INT $fio_pid
wait $fio_pid
grep -q "err= 0" "$FIO_LOG" || fail "fio: $(grep -E 'err=|error|verify' "$FIO_LOG" | head -5)"
del 0
exit 0
