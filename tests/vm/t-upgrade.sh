# SPDX-License-Identifier: MIT
# zublk upgrade under fio verify: the daemon is replaced (new pid, the binary
# given), IO keeps going, zero errors.  Many rounds, back to back: a request
# the old daemon commits just after the driver cancelled its idle commands
# re-arms a fetch nobody aborts, and an old daemon that waited for that
# abort never left (seen once in 30-60 upgrades under load).  Then the same
# with two queues on two threads in zero-copy mode, and with --batch (the
# old daemon killed, its requests reissued).  A fail-io device is refused,
# and so is a device whose state file is not its daemon's.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/raid-lib.sh"
truncate -s 256M "$TMP/img"
cp "$Z" "$TMP/zublk-new"

# pid_state: device 0's daemon pid and state, from one `zublk list` (python
# starts slowly under load in the VM)
pid_state() {
	"$Z" list -n 0 --json |
		sed -n 's/.*"state": "\([A-Z_]*\)".*"daemon_pid": \([0-9-]*\).*/\2 \1/p'
}

# upgrades ROUNDS: replace device 0's daemon ROUNDS times while fio runs
upgrades() {
	local round old new state
	for round in $(seq 1 "$1"); do
		sleep 0.5
		read -r old state <<<"$(pid_state)"
		[ "$state" = LIVE ] || fail "upgrade $round: device state '$state' (pid '$old')"
		timeout 60 "$Z" upgrade -n 0 --binary "$TMP/zublk-new" >/dev/null ||
			fail "upgrade $round: did not finish (daemon $old: $(tail -3 /run/zublk/0.log))"
		read -r new state <<<"$(pid_state)"
		[ "$state" = LIVE ] || fail "not live after upgrade $round: $state"
		[ "$new" != "$old" ] || fail "same daemon after upgrade"
		[ "$(readlink /proc/$new/exe)" = "$TMP/zublk-new" ] ||
			fail "new daemon runs $(readlink /proc/$new/exe)"
		! kill -0 "$old" 2>/dev/null || fail "old daemon $old still running"
		fio_running || fail "fio died: $(grep -E 'err|verify' "$TMP/v.log" | head)"
	done
	note "$1 upgrades: last $old -> $new"
}

# verify_under_upgrades ROUNDS FIO-ARGS...
verify_under_upgrades() {
	local rounds=$1
	shift
	bg_fio v --filename="$DEV" --rw=randwrite --bs=4k \
		--iodepth=32 --size=64M --verify=crc32c --verify_backlog=512 --verify_fatal=1 \
		--time_based --runtime=600 "$@"
	upgrades "$rounds"
	sleep 1
	bg_fio_stop v
}

add -t loop -f "$TMP/img" -n 0
verify_under_upgrades 10
del 0

if fits_cpus 2; then
	add -t loop -f "$TMP/img" -n 0 -q 2 --threads 2 --mode zero-copy
	verify_under_upgrades 5 --numjobs=2 --offset_increment=64M --cpus_allowed_policy=split \
		--cpus_allowed=0-1
	[ "$(dev_field 0 threads)" = 2 ] || fail "threads after upgrades: $(dev_field 0 threads)"
	del 0
fi

# --batch: the driver's quiesce fails requests of a batch device under
# load (seen with every binary), so upgrade kills the old daemon and the
# driver hands what it held to the new one (reissue): no error either.
if "$Z" features | grep -q BATCH_IO; then
	add -t loop -f "$TMP/img" -n 0 --batch
	verify_under_upgrades 10
	del 0
else
	skip_check batch "the running kernel has no UBLK_F_BATCH_IO"
fi

# A quiesce aborts only the fetches of idle tags, so the old daemon's thread
# whose queue is idle leaves first; its other thread, with a read in hand
# that the backing answers 4 s later, commits it still: kicked with the
# first, it dropped the read, and the new daemon was handed it to do again.
# The loop target over a dm device whose reads then wait 4 s (dm-delay).
modprobe dm-delay 2>/dev/null
if ! fits_cpus 2; then
	skip_check "a read in hand at upgrade" "fewer than 2 CPUs"
elif ! dmsetup targets 2>/dev/null | grep -q '^delay'; then
	skip_check "a read in hand at upgrade" "no dm-delay target"
else
	truncate -s 32M "$TMP/slow"
	dm_leg slow "$TMP/slow"
	add -t loop -f "$DM_DEV" -n 0 -q 2 --threads 2
	dm_table slow "delay ${DM_LOOP[slow]} 0 4000"
	old=$(dev_field 0 daemon_pid)
	taskset -c 1 dd if="$DEV" of=/dev/null bs=4k count=1 skip=1280 iflag=direct \
		status=none 2>"$TMP/dd.err" &
	rd=$!
	wait_until 5 eval '[ "$(dmsetup status zublk-test-slow | awk '"'"'{ print $4 + 0 }'"'"')" -gt 0 ]' ||
		fail "in hand: the read did not reach the slow device: $(dmsetup status zublk-test-slow)"
	timeout 60 "$Z" upgrade -n 0 --binary "$TMP/zublk-new" >"$TMP/out" 2>&1 ||
		fail "in hand: upgrade: $(cat "$TMP/out")"
	wait $rd || fail "in hand: the read across the upgrade failed: $(cat "$TMP/dd.err")"
	[ "$(dev_field 0 daemon_pid)" != "$old" ] || fail "in hand: the same daemon after upgrade"
	n=$(counter 0 ios)
	[ "$n" = 0 ] || fail "in hand: the new daemon did $n requests again (the old one dropped them)"
	del 0
	note "a read in hand on one thread of two at upgrade: committed by the old daemon"
fi

# fail-io: the driver fails IO while no daemon serves the device, so upgrade
# refuses it, in one line, and the daemon serves on.
add -t null -n 0 --recovery fail-io
pid=$(dev_field 0 daemon_pid)
timeout 60 "$Z" upgrade -n 0 >"$TMP/out" 2>"$TMP/err" && fail "upgrade of a fail-io device went"
[ "$(wc -l <"$TMP/err")" = 1 ] || fail "upgrade said: $(cat "$TMP/err")"
grep -q "device 0: --recovery fail-io: the driver fails IO while no daemon serves it" "$TMP/err" ||
	fail "upgrade: $(cat "$TMP/err")"
state_is 0 LIVE && [ "$(dev_field 0 daemon_pid)" = "$pid" ] ||
	fail "after the refusal: $(dev_field 0 state), daemon $(dev_field 0 daemon_pid) (was $pid)"
dd if=/dev/zero of="$DEV" bs=4k count=16 oflag=direct status=none || fail "IO after the refusal"
note "$(cat "$TMP/err")"
del 0

# A state file not of the serving daemon (stale: the id another server's
# device now) is refused, in one line, and the daemon serves on.
add -t null -n 0
pid=$(dev_field 0 daemon_pid)
sed -i "s/\"daemon_pid\":$pid,/\"daemon_pid\":1,/" /run/zublk/0.json
grep -q '"daemon_pid":1,' /run/zublk/0.json || fail "state file not rewritten: $(cat /run/zublk/0.json)"
timeout 60 "$Z" upgrade -n 0 >"$TMP/out" 2>"$TMP/err" && fail "upgrade with a stale state went"
[ "$(wc -l <"$TMP/err")" = 1 ] || fail "upgrade said: $(cat "$TMP/err")"
grep -q "device 0: served by daemon $pid .* is of daemon 1 .*: a stale state, not upgraded" \
	"$TMP/err" || fail "upgrade: $(cat "$TMP/err")"
state_is 0 LIVE && [ "$(dev_field 0 daemon_pid)" = "$pid" ] ||
	fail "after the refusal: $(dev_field 0 state), daemon $(dev_field 0 daemon_pid) (was $pid)"
note "$(cat "$TMP/err")"
del 0

# A SIGTERM to upgrade while it waits for the old daemon to go (stopped
# here, so that the wait is long enough to hit): the upgrade goes on to its
# end, a new daemon serving, never the device quiesced with none; then the
# held signal takes effect (exit 143).
add -t null -n 0
old=$(dev_field 0 daemon_pid)
kill -STOP "$old"
timeout 60 "$Z" upgrade -n 0 --binary "$TMP/zublk-new" >"$TMP/out" 2>&1 &
up=$!
sleep 3
kill -0 $up 2>/dev/null || fail "upgrade ended while the old daemon was stopped: $(cat "$TMP/out")"
kill -TERM $up
sleep 1
kill -CONT "$old"
wait $up
rc=$?
[ $rc = 143 ] || fail "upgrade after a SIGTERM: exit $rc, not 143: $(cat "$TMP/out")"
read -r new state <<<"$(pid_state)"
[ "$state" = LIVE ] && [ "$new" != "$old" ] ||
	fail "after a SIGTERM to upgrade: daemon $new (was $old), state $state"
timeout 20 dd if="$DEV" of=/dev/null bs=4k count=16 iflag=direct status=none ||
	fail "IO after a SIGTERM to upgrade"
note "SIGTERM to upgrade: went on, daemon $old -> $new"
del 0
exit 0
