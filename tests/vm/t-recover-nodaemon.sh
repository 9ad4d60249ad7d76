# SPDX-License-Identifier: MIT
# While no daemon runs: recovery off -> IO fails within 5 s; reissue -> IO
# waits and completes after recover; fail-io -> IO fails within ~1 s and
# recover still works.
. "$(dirname "$0")/lib.sh"
truncate -s 64M "$TMP/img"
head -c 1M /dev/urandom >"$TMP/data"

kill_daemon() { kill -9 "$(dev_field "$1" daemon_pid)"; }
# start_read: a direct read of 1 MiB in the background; sets RD_PID
start_read() {
	dd if="$DEV" of="$TMP/out" bs=1M count=1 iflag=direct status=none 2>"$TMP/dd.err" &
	RD_PID=$!
}

# off: the device dies with its daemon.
add -t loop -f "$TMP/img" --recovery=off
kill_daemon "$ID"
sleep 0.5
start=$SECONDS
start_read
wait_until 5 bash -c "! kill -0 $RD_PID 2>/dev/null" || fail "off: IO still pending after 5s"
wait $RD_PID && fail "off: IO succeeded without a daemon"
note "off: IO failed after $((SECONDS - start))s"
del "$ID"

# reissue: IO waits for the new daemon, then completes.
add -t loop -f "$TMP/img"
dd if="$TMP/data" of="$DEV" bs=1M oflag=direct status=none || fail "write"
kill_daemon "$ID"
wait_until 20 state_is "$ID" QUIESCED || fail "reissue: not quiesced"
start_read
sleep 1
kill -0 $RD_PID 2>/dev/null || fail "reissue: IO did not wait ($(cat "$TMP/dd.err"))"
timeout 30 "$Z" recover -n "$ID" >/dev/null || fail "reissue: recover"
wait_until 20 bash -c "! kill -0 $RD_PID 2>/dev/null" || fail "reissue: IO still pending after recover"
wait $RD_PID || fail "reissue: IO failed: $(cat "$TMP/dd.err")"
cmp "$TMP/out" "$TMP/data" || fail "reissue: read the wrong data"
note "reissue: IO waited and completed"
del "$ID"

# fail-io: IO fails at once; recover still works.
add -t loop -f "$TMP/img" --recovery=fail-io
kill_daemon "$ID"
wait_until 20 bash -c "s=\$($Z list -n $ID --json | tr -d ' '); [[ \$s == *FAIL_IO* || \$s == *QUIESCED* ]]" ||
	fail "fail-io: state $(dev_field "$ID" state)"
start=$(date +%s%N)
start_read
wait_until 3 bash -c "! kill -0 $RD_PID 2>/dev/null" || fail "fail-io: IO still pending after 3s"
wait $RD_PID && fail "fail-io: IO succeeded without a daemon"
ms=$((($(date +%s%N) - start) / 1000000))
note "fail-io: IO failed after ${ms}ms"
[ $ms -lt 2000 ] || fail "fail-io: took ${ms}ms"
timeout 30 "$Z" recover -n "$ID" >/dev/null || fail "fail-io: recover"
dd if="$DEV" of="$TMP/out" bs=1M count=1 iflag=direct status=none || fail "fail-io: IO after recover"
cmp "$TMP/out" "$TMP/data" || fail "fail-io: wrong data after recover"
del "$ID"
exit 0
