# SPDX-License-Identifier: MIT
# zublk upgrade while a request cannot end (an nbd server that answers a
# read only after 15 s): the old daemon cannot exit, and upgrade says so
# in one line after --timeout, with the way out.  The device stays
# quiesced (a write waits); killing the old daemon and `zublk recover`
# serve them all: the write ends, the read goes again to the new daemon
# and ends.
. "$(dirname "$0")/lib.sh"
slow_nbd 15
add -t nbd socket="$TMP/s.sock" --no-part-scan
pid=$(dev_field "$ID" daemon_pid)
timeout 120 dd if="$DEV" of=/dev/null bs=4k count=1 iflag=direct status=none &
reader=$!
sleep 2
t0=$SECONDS
timeout 30 "$Z" upgrade -n "$ID" --timeout 3 >"$TMP/out" 2>"$TMP/err"
rc=$?
took=$((SECONDS - t0))
[ $rc -ne 124 ] || fail "upgrade hung"
[ $rc -ne 0 ] || fail "upgrade succeeded with a request stuck: $(cat "$TMP/out")"
[ "$(wc -l <"$TMP/err")" = 1 ] || fail "upgrade said: $(cat "$TMP/err")"
grep -q "the old daemon $pid did not exit; the device is quiesced: run 'zublk recover" \
	"$TMP/err" || fail "upgrade: $(cat "$TMP/err")"
note "$(cat "$TMP/err") (${took}s)"
kill -0 "$pid" || fail "the old daemon ended"
# New IO waits: a write (the server delays only reads).
timeout 120 dd if=/dev/zero of="$DEV" bs=4k count=1 seek=100 oflag=direct status=none &
writer=$!
sleep 3
kill -0 $writer 2>/dev/null || fail "a write to the quiesced device did not wait"
kill -9 "$pid"
wait_until 20 state_is "$ID" QUIESCED || fail "not QUIESCED after kill -9: $(dev_field "$ID" state)"
timeout 60 "$Z" recover -n "$ID" >"$TMP/out" 2>&1 || fail "recover: $(cat "$TMP/out")"
wait $writer || fail "the held write failed"
wait $reader || fail "the read failed after the recovery"
[ "$(counter "$ID" errors)" = 0 ] || fail "$(counter "$ID" errors) requests failed"
note "killed and recovered: the held write and the stuck read ended"
del "$ID"
