# SPDX-License-Identifier: MIT
# kill -9 under fio randwrite with crc32c verification (REISSUE), recover,
# three cycles, loop in each data mode: no IO error, no verify mismatch;
# QUIESCED within 20 s of the kill and LIVE within 20 s of recover.
. "$(dirname "$0")/lib.sh"
truncate -s 256M "$TMP/img"
for mode in copy user-copy zero-copy auto-zero-copy; do
	add -t loop -f "$TMP/img" --mode "$mode" -n 0
	[ "$(dev_field 0 state)" = LIVE ] || fail "not live"
	bg_verified "v-$mode" --bs=4k --iodepth=32 --size=64M --verify_backlog=1024 --runtime=600
	for cycle in 1 2 3; do
		sleep 2
		fio_running || fail "$mode: fio died: $(grep -E 'err|verify' "$TMP/v-$mode.log" | head -3)"
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
	bg_fio_stop "v-$mode"
	grep -qi "verify.*bad\|crc32c.*wanted" "$TMP/v-$mode.log" && fail "$mode: verify mismatch"
	errs=$(counter 0 errors)
	[ "$errs" = 0 ] || fail "$mode: $errs requests failed after the last recovery"
	del 0
done
exit 0
