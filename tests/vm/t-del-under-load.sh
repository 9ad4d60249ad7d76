# SPDX-License-Identifier: MIT
# del while fio drives iodepth 128: del returns, fio exits, the node and
# the daemon are gone.
. "$(dirname "$0")/lib.sh"
for target in null loop; do
	if [ $target = loop ]; then
		truncate -s 1G "$TMP/img"
		add -t loop -f "$TMP/img"
	else
		add -t null size=4G
	fi
	pid=$(dev_field "$ID" daemon_pid)
	fio --name=load --filename="$DEV" --ioengine=io_uring --direct=1 --rw=randrw --bs=4k \
		--iodepth=128 --time_based --runtime=120 >"$FIO_LOG" 2>&1 &
	fio_pid=$!
	sleep 3
	kill -0 $fio_pid 2>/dev/null || fail "fio did not run: $(tail -3 "$FIO_LOG")"
	start=$SECONDS
	timeout 30 "$Z" del -n "$ID" || fail "$target: del under load failed or hung"
	note "$target: del took $((SECONDS - start))s"
	wait_until 20 bash -c "! kill -0 $fio_pid 2>/dev/null" || fail "$target: fio still running 20s after del"
	wait $fio_pid
	[ ! -e "$DEV" ] || fail "$target: $DEV still exists"
	[ ! -e "/dev/ublkc$ID" ] || fail "$target: /dev/ublkc$ID still exists"
	! kill -0 "$pid" 2>/dev/null || fail "$target: daemon $pid still alive"
	no_devices || fail "$target: list not empty"
done
exit 0
