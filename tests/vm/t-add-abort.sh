# SPDX-License-Identifier: MIT
# zublk add given up while the device comes up: an nbd server that answers
# a read only after 4 s keeps START_DEV in the driver's partition scan.
# Past --timeout, and on SIGINT, SIGTERM or SIGQUIT, add stops the daemon and deletes
# the device it made (it knows the id from right after ADD_DEV): one line,
# a non-zero exit, no device, no daemon.  (A daemon killed in START_DEV
# hangs in the kernel for good: add must let it stop.)  A signal the
# caller ignores stays ignored: that add goes on, and its device reads.
. "$(dirname "$0")/lib.sh"
slow_nbd 4

# The driver scans the partitions in a work of its own after START_DEV;
# add waits for the scan's first read through its last step (the switch to
# the none scheduler waits for IO in flight).  Now and then the switch
# comes before the read, and the device is up at once: then again.
# again TRY DEV: that case, said; DEV deleted.
again() {
	note "try $1: $2 came up before the partition scan's read; again"
	del "${2#/dev/ublkb}"
	return 2
}
# tries WHAT LEG [ARGS]: LEG ARGS TRY, for TRY 1 to 3, while it returns 2.
tries() {
	local what=$1 try
	shift
	for try in 1 2 3; do
		"$@" $try
		[ $? -eq 2 ] || return 0
	done
	skip_check "$what" "3 devices came up before their partition scan's read"
}

timed_out() {
	local t0=$SECONDS out rc
	out=$(timeout 60 "$Z" add -t nbd socket="$TMP/s.sock" --timeout 3 2>"$TMP/err")
	rc=$?
	[ $rc -ne 0 ] || { again "$1" "$out"; return; }
	[ $rc -ne 124 ] || fail "add --timeout 3 hung"
	[ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q "the device did not come up within 3 s" "$TMP/err" ||
		fail "add --timeout 3 said: $(cat "$TMP/err")"
	[ -z "$out" ] || fail "add --timeout 3 printed '$out'"
	no_devices || fail "add --timeout 3 left a device: $("$Z" list)"
	wait_until 5 no_daemons || fail "add --timeout 3 left a daemon: $(pgrep -a zublk)"
	note "$(cat "$TMP/err") ($((SECONDS - t0)) s)"
}
tries "add's time-out" timed_out

signalled() {
	local sig=$1 adder up t0 dog rc
	# A background job of a script starts with SIGINT and SIGQUIT ignored: not here.
	env --default-signal=INT,QUIT "$Z" add -t nbd socket="$TMP/s.sock" >"$TMP/out" 2>"$TMP/err" &
	adder=$!
	# Past ADD_DEV: the device exists, START_DEV waits for the scan.
	wait_until 20 test -e /dev/ublkc0 || fail "SIG$sig: no device after 20 s: $(cat "$TMP/err")"
	sleep 1
	# Up already (it printed the device): then not the case to see.
	up=0
	[ -s "$TMP/out" ] && up=1
	kill -"$sig" $adder 2>/dev/null
	t0=$SECONDS
	(sleep 60; kill -9 $adder 2>/dev/null) &
	dog=$!
	wait $adder
	rc=$?
	kill $dog 2>/dev/null
	[ $rc -ne 0 ] || ((up)) || fail "SIG$sig: add went on after the signal: $(cat "$TMP/out")"
	# Up before the scan's read (as above), and so before the signal.
	[ $rc -ne 0 ] || { again "$2" "$(cat "$TMP/out")"; return; }
	[ $rc -ne 137 ] || fail "SIG$sig: add still ran after 60 s"
	[ $rc -eq $((128 + $(kill -l "$sig"))) ] || fail "SIG$sig: add exited $rc: $(cat "$TMP/err")"
	[ "$(wc -l <"$TMP/err")" = 1 ] || fail "SIG$sig: add said: $(cat "$TMP/err")"
	grep -q "zublk: add: interrupted (SIG$sig): the daemon is stopped and the device deleted" \
		"$TMP/err" || fail "SIG$sig: $(cat "$TMP/err")"
	[ ! -s "$TMP/out" ] || fail "SIG$sig: add printed '$(cat "$TMP/out")'"
	no_devices || fail "SIG$sig: a device is left: $("$Z" list)"
	wait_until 5 no_daemons || fail "SIG$sig: a daemon is left: $(pgrep -a zublk)"
	[ ! -e /dev/ublkc0 ] || fail "SIG$sig: /dev/ublkc0 is left"
	note "$(cat "$TMP/err") ($((SECONDS - t0)) s)"
}
tries SIGINT signalled INT
tries SIGTERM signalled TERM
tries SIGQUIT signalled QUIT

# A signal the caller ignores (nohup, a shell's background job) stays
# ignored: the add goes on and its device serves.
(trap '' HUP; exec "$Z" add -t nbd socket="$TMP/s.sock") >"$TMP/out" 2>"$TMP/err" &
adder=$!
wait_until 20 test -e /dev/ublkc0 || fail "SIGHUP ignored: no device after 20 s: $(cat "$TMP/err")"
sleep 1
kill -HUP $adder
wait $adder || fail "add with SIGHUP ignored failed: $(cat "$TMP/err")"
DEV=$(cat "$TMP/out")
[ -b "$DEV" ] || fail "add with SIGHUP ignored printed '$DEV'"
timeout 60 dd if="$DEV" of=/dev/null bs=4k count=1 iflag=direct status=none ||
	fail "read from $DEV failed"
note "SIGHUP ignored by the caller: add went on, $DEV reads"
del "${DEV#/dev/ublkb}"
