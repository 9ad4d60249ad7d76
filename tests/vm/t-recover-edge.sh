# SPDX-License-Identifier: MIT
# Recovery's bad days: recover (which keeps the queue options) then kill
# again then delete; a recovering daemon killed half-way; del right after
# kill -9; recover right after the daemon is gone; one queue thread dying; a
# different backing file refused with the device left quiesced.
. "$(dirname "$0")/lib.sh"
truncate -s 64M "$TMP/img"

# Recover (keeping --poll-us and --pin-queues), kill again, delete: no hang.
add -t loop -f "$TMP/img" -n 0 --poll-us 50 --pin-queues
kill -9 "$(dev_field 0 daemon_pid)"
wait_until 20 state_is 0 QUIESCED || fail "not quiesced"
timeout 30 "$Z" recover -n 0 >/dev/null || fail "recover"
[ "$(dev_field 0 poll_us)" = 50 ] || fail "recovered with poll_us $(dev_field 0 poll_us)"
[ "$(dev_field 0 poll)" = fixed ] || fail "recovered with poll $(dev_field 0 poll)"
[ "$(dev_field 0 pin_queues)" = True ] || fail "recovered without --pin-queues"
kill -9 "$(dev_field 0 daemon_pid)"
timeout 60 "$Z" del -n 0 || fail "del after recover+kill"
[ ! -e /dev/ublkb0 ] || fail "node left"

# A recovering daemon killed half-way: del completes within 60 s.  Held
# in its target's start (an nbd server stopped: the handshake waits), so
# the kill is sure to land before the device is LIVE again.
if command -v nbdkit >/dev/null; then
	nbdkit_up rk memory 64M
	srv=$SRV
	add -t nbd socket="$TMP/rk.sock" -n 1
	kill -9 "$(dev_field 1 daemon_pid)"
	wait_until 20 state_is 1 QUIESCED || fail "nbd: not quiesced"
	kill -STOP "$srv"
	timeout 30 "$Z" recover -n 1 >/dev/null 2>"$TMP/rerr" &
	tpid=$!
	sleep 3
	# The newest zublk: the daemon (recover's CLI waits for it; the fork between is gone).
	p=$(pgrep -n -x zublk)
	[ -n "$p" ] && [ "$(ps -o ppid= -p "$p" | tr -d ' ')" != "$tpid" ] ||
		fail "no recovering daemon to kill: $(pgrep -a zublk)"
	kill -9 "$p"
	wait $tpid && fail "recover succeeded with its daemon killed"
	state_is 1 LIVE && fail "LIVE after its recovering daemon was killed"
	kill -CONT "$srv"
	timeout 60 "$Z" del -n 1 || fail "del after a half-way recovery"
	[ ! -e /dev/ublkb1 ] || fail "node 1 left"
	no_devices || fail "devices left"
	kill "$srv"
	note "a recovering daemon killed in its target's start: recover failed, del worked"
else
	skip_check "a recovering daemon killed half-way" "no nbdkit (a server to hold its start)"
fi

# del right after kill -9, without waiting.
add -t loop -f "$TMP/img" -n 2
dd if=/dev/zero of=/dev/ublkb2 bs=64k count=100 oflag=direct status=none &
kill -9 "$(dev_field 2 daemon_pid)"
timeout 60 "$Z" del -n 2 || fail "del right after kill -9"
wait
[ ! -e /dev/ublkb2 ] || fail "node 2 left"

# recover the moment the killed daemon is gone, without waiting for QUIESCED:
# the driver leaves LIVE only once the ring's teardown has dropped the
# request buffers it registered (zero copy), which may be after the process
# has been reaped, and meanwhile the 7.2 driver reports the daemon pid as
# -1.  recover waits for that; it used to refuse "state LIVE" (seen in
# t-upgrade in CI, and in these cycles on a host twice as fast, once in a
# full run).
add -t loop -f "$TMP/img" -n 5 --mode zero-copy
bg_fio r --filename=/dev/ublkb5 --rw=randread --bs=64k --iodepth=32 --time_based --runtime=120
for cycle in 1 2 3 4 5; do
	sleep 0.5
	pid=$(dev_field 5 daemon_pid)
	kill -9 "$pid"
	wait_until 20 bash -c "! kill -0 $pid 2>/dev/null" || fail "daemon $pid not gone"
	timeout 30 "$Z" recover -n 5 >/dev/null 2>"$TMP/err" ||
		fail "recover right after the daemon went (cycle $cycle): $(cat "$TMP/err")"
	state_is 5 LIVE || fail "cycle $cycle: $(dev_field 5 state) after recover"
done
bg_fio_stop r
del 5

# One queue thread dies (the last one's): the device leaves LIVE and can be
# deleted.
queues_upto 2
add -t loop -f "$TMP/img" -n 3 -q $q
exit_queue 3 $((q - 1))
wait_until 20 bash -c "! $Z list -n 3 --json | grep -q '\"LIVE\"'" || fail "still LIVE after a queue died"
note "after a queue died: $(dev_field 3 state)"
timeout 60 "$Z" del -n 3 || fail "del after a queue died"

# A different backing file: refused, the device stays quiesced, files untouched.
truncate -s 64M "$TMP/other"
head -c 4M /dev/urandom | dd of="$TMP/other" conv=notrunc status=none
add -t loop -f "$TMP/img" -n 4
dd if=/dev/urandom of=/dev/ublkb4 bs=1M count=2 oflag=direct status=none
kill -9 "$(dev_field 4 daemon_pid)"
wait_until 20 state_is 4 QUIESCED || fail "not quiesced"
mv "$TMP/img" "$TMP/img.orig"
mv "$TMP/other" "$TMP/img"
before=$(sha256sum "$TMP/img" "$TMP/img.orig")
timeout 30 "$Z" recover -n 4 >/dev/null 2>"$TMP/err" && fail "recovered onto a different file"
note "$(cat "$TMP/err")"
grep -q "not the one it was served from" "$TMP/err" || fail "unclear refusal: $(cat "$TMP/err")"
[ "$(wc -l <"$TMP/err")" -eq 1 ] || fail "more than one line: $(cat "$TMP/err")"
state_is 4 QUIESCED || fail "device left $(dev_field 4 state)"
[ "$before" = "$(sha256sum "$TMP/img" "$TMP/img.orig")" ] || fail "a backing file changed"
# Same size, other size: a shorter file is refused too.
truncate -s 32M "$TMP/img"
timeout 30 "$Z" recover -n 4 >/dev/null 2>&1 && fail "recovered onto a smaller file"
mv "$TMP/img.orig" "$TMP/img"
timeout 30 "$Z" recover -n 4 >/dev/null || fail "recover with the right file"
del 4
exit 0
