# SPDX-License-Identifier: MIT
# kill -9 under fio randwrite with crc32c verification (REISSUE), recover,
# three cycles, loop in each data mode: no IO error, no verify mismatch;
# QUIESCED within 20 s of the kill and LIVE within 20 s of recover.
. "$(dirname "$0")/lib.sh"
truncate -s 256M "$TMP/img"
for mode in copy user-copy zero-copy auto-zero-copy; do
	add -t loop -f "$TMP/img" --mode "$mode" -n 0
	[ "$(dev_field 0 state)" = LIVE ] || fail "not live"
	fio --name=v --filename="$DEV" --ioengine=io_uring --direct=1 --rw=randwrite --bs=4k \
		--iodepth=32 --size=64M --verify=crc32c --verify_backlog=1024 --verify_fatal=1 \
		--time_based --runtime=600 >"$FIO_LOG" 2>&1 &
	fio_pid=$!
	for cycle in 1 2 3; do
		sleep 2
		kill -0 $fio_pid 2>/dev/null || fail "$mode: fio died: $(grep -E 'err|verify' "$FIO_LOG" | head -3)"
		pid=$(dev_field 0 daemon_pid)
		kill -9 "$pid"
		start=$SECONDS
		wait_until 20 state_is 0 QUIESCED || fail "$mode cycle $cycle: not QUIESCED 20s after kill ($(dev_field 0 state))"
		t_q=$((SECONDS - start))
		start=$SECONDS
		timeout 30 "$Z" recover -n 0 >/dev/null || fail "$mode cycle $cycle: recover failed"
		wait_until 20 state_is 0 LIVE || fail "$mode cycle $cycle: not LIVE 20s after recover"
		note "$mode cycle $cycle: quiesced in ${t_q}s, live in $((SECONDS - start))s"
	done
	sleep 2
	kill -INT $fio_pid
	wait $fio_pid
	rc=$?
	grep -q "err= 0" "$FIO_LOG" || fail "$mode: fio error: $(grep -E 'err=|verify|error' "$FIO_LOG" | head -5)"
	grep -qi "verify.*bad\|crc32c.*wanted" "$FIO_LOG" && fail "$mode: verify mismatch"
	[ $rc -eq 0 ] || [ $rc -eq 128 ] || [ $rc -eq 130 ] || fail "$mode: fio exit $rc: $(tail -5 "$FIO_LOG")"
	errs=$(counter 0 errors)
	[ "$errs" = 0 ] || fail "$mode: $errs requests failed after the last recovery"
	del 0
done
exit 0
