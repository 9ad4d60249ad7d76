# SPDX-License-Identifier: MIT
# kill -9 of a daemon without recovery, under load: IO fails (no hang), del works within
# 20 s, and a new add on the same id works.
. "$(dirname "$0")/lib.sh"
truncate -s 1G "$TMP/img"
add -t loop -f "$TMP/img" -n 7 --recovery=off
pid=$(dev_field "$ID" daemon_pid)
fio --name=load --filename="$DEV" --ioengine=io_uring --direct=1 --rw=randwrite --bs=16k \
	--iodepth=64 --time_based --runtime=120 >"$FIO_LOG" 2>&1 &
fio_pid=$!
sleep 3
kill -0 $fio_pid 2>/dev/null || fail "fio did not run"
kill -9 "$pid"
wait_until 20 bash -c "! kill -0 $fio_pid 2>/dev/null" || fail "IO did not fail within 20s of kill -9"
wait $fio_pid && fail "fio succeeded on a device whose daemon is dead"
grep -qE 'err= *[1-9]|io_u error' "$FIO_LOG" || fail "fio saw no error: $(tail -3 "$FIO_LOG")"
start=$SECONDS
timeout 20 "$Z" del -n 7 || fail "del after kill -9 failed or took over 20s"
note "IO failed, del took $((SECONDS - start))s"
[ ! -e /dev/ublkb7 ] || fail "node still there"
for f in json stats sock; do
	[ ! -e "/run/zublk/7.$f" ] || fail "the killed daemon's 7.$f is still there after del"
done
add -t loop -f "$TMP/img" -n 7 --recovery=off
fio_ok again --filename="$DEV" --rw=randwrite --bs=4k --iodepth=16 --size=32M \
	--verify=crc32c --do_verify=1
del 7
exit 0
