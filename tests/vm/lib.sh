# SPDX-License-Identifier: MIT
# Sourced by every tests/vm/t-*.sh scenario.  Runs as root next to the real
# ublk driver (in the VM, or natively where the host has one).
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
Z=${ZUBLK:-$ROOT/build/zublk}
TMP=$(mktemp -d /tmp/zublk-test.XXXXXX)
FIO_LOG=$TMP/fio.log

fail() { echo "FAIL: $*"; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }
note() { echo "  [${SECONDS}s] $*"; }
# skip_check WHAT WHY: one check this scenario cannot make here, said and
# counted: run-all prints every such line, also under a scenario that passes.
skip_check() { echo "SKIP-CHECK: $1: $2"; }
# fits_cpus Q: a device with Q queues gets one fio job per queue, one per
# CPU; false (and a skipped check) where the machine has fewer CPUs.
fits_cpus() {
	[ "$1" -le "$(nproc)" ] && return 0
	skip_check "$1 queues" "$(nproc) CPU(s) here"
	return 1
}
# queues_upto Q: q=Q where fits_cpus Q, else q=1.
queues_upto() { q=$1; fits_cpus "$q" || q=1; }

cleanup() {
	pkill -9 -x fio 2>/dev/null
	# What the scenario left in the background (holders, memfd owners).
	local j
	j=$(jobs -p)
	# Not waited for: one in the kernel (a read of a stuck device) ends
	# only with the deletion below.
	[ -z "$j" ] || { disown -a; kill -9 $j; } 2>/dev/null
	# A mount left by a failed check would hold its device, and every
	# scenario after this one would find that device left.
	findmnt -rn -o TARGET | grep "^$TMP/" | sort -r | while read -r m; do umount -l "$m"; done
	timeout 60 "$Z" del --all >/dev/null 2>&1
	# Servers go after the devices (deleted while their servers still answer).
	[ ${#SERVERS[@]} -eq 0 ] || kill -9 "${SERVERS[@]}" 2>/dev/null
	rm -rf "$TMP"
}
# The servers (nbdkit, qemu-nbd) this scenario started: killed at its end.
SERVERS=()
trap cleanup EXIT
for t in fio jq pgrep findmnt; do
	command -v $t >/dev/null || fail "$t not installed (scripts/setup.sh)"
done

# add ARGS... -> sets DEV (/dev/ublkbN) and ID
add() {
	local out
	out=$("$Z" add "$@" 2>"$TMP/add.err") || fail "zublk add $*: $(cat "$TMP/add.err")"
	DEV=$out
	ID=${DEV#/dev/ublkb}
	[ -b "$DEV" ] || fail "add $*: $DEV is not a block device"
}

del() { timeout 60 "$Z" del -n "$1" || fail "zublk del -n $1 failed"; }

# fio_ok NAME ARGS...: fio must exit 0 with no error; output kept in FIO_LOG
fio_ok() {
	local name=$1
	shift
	fio --name="$name" --ioengine=io_uring --direct=1 "$@" >"$FIO_LOG" 2>&1 ||
		fail "fio $name $*: $(grep -E 'err=|error|verify' "$FIO_LOG" | head -5)"
	grep -q "err= 0" "$FIO_LOG" || fail "fio $name: $(grep err= "$FIO_LOG")"
}

# bg_fio NAME ARGS...: fio in the background (FIO_PID), output in $TMP/NAME.log
bg_fio() {
	local name=$1
	shift
	fio --name="$name" --ioengine=io_uring --direct=1 "$@" >"$TMP/$name.log" 2>&1 &
	FIO_PID=$!
}
# bg_fio_ok NAME: wait for it; it must end well with err= 0
bg_fio_ok() {
	wait "$FIO_PID" || fail "fio $1: $(grep -E 'err=|error|verify' "$TMP/$1.log" | head -5)"
	grep -q "err= 0" "$TMP/$1.log" || fail "fio $1: $(grep err= "$TMP/$1.log")"
}
fio_running() { kill -0 "$FIO_PID" 2>/dev/null; }
# bg_fio_stop NAME: it must still run; stop it now (SIGINT: its jobs end
# and report), and every job ended with err= 0
bg_fio_stop() {
	fio_running || fail "fio $1 ended before it was stopped: $(grep -E 'err=|error|verify' "$TMP/$1.log" | head -5)"
	kill -INT "$FIO_PID"
	wait "$FIO_PID"
	grep -q "err= 0" "$TMP/$1.log" || fail "fio $1: $(grep -E 'err=|error|verify' "$TMP/$1.log" | head -5)"
	[ "$(grep -c 'err= 0' "$TMP/$1.log")" = "$(grep -c 'err=' "$TMP/$1.log")" ] ||
		fail "fio $1: $(grep 'err=' "$TMP/$1.log")"
}
# reads_zeros DEV BS SKIP COUNT: COUNT blocks of BS bytes (a number) from
# block SKIP read with O_DIRECT, all of them, and all zeros (a failed or
# short read is not zeros).
reads_zeros() {
	cmp -s -n $(($2 * $4)) <(dd if="$1" bs="$2" skip="$3" count="$4" iflag=direct status=none) \
		/dev/zero
}
# wait_until SECS CMD...: poll CMD until it succeeds; false on timeout
wait_until() {
	local end=$((${EPOCHREALTIME//[.,]/} + $1 * 1000000))
	shift
	until "$@"; do
		[ "${EPOCHREALTIME//[.,]/}" -lt $end ] || return 1
		sleep 0.1
	done
}

# dev_json ID FILTER: jq's FILTER on device ID's entry of `zublk list -n ID
# --json`; nothing if there is no such device.  null, true and false print
# as None, True and False; strings raw, objects on one line.  (jq starts in
# a third of the time Python takes in the VM.)
dev_json() {
	"$Z" list -n "$1" --json 2>/dev/null | jq -c -r "if length == 0 then empty else .[0] | $2 end |
		if . == null then \"None\" elif . == true then \"True\" elif . == false then \"False\" else . end"
}
# counter ID NAME: one of the counters `zublk list -n ID --json` gives
counter() { dev_json "$1" ".counters[\"$2\"]"; }
# sqes_from ID, later sqes_to ID: IOS and SUB are the requests device ID
# served and the SQEs its daemon submitted in between, CP its straight
# copies and HR the auto-zero-copy requests it registered by hand.
# (One `zublk list` each: the four counters of one moment.)
sqes_counters() { dev_json "$1" '.counters | "\(.ios) \(.submits) \(.copies) \(.hand_regs)"'; }
sqes_from() { read -r IOS0 SUB0 CP0 HR0 < <(sqes_counters "$1"); }
sqes_to() {
	local ios sub cp hr
	read -r ios sub cp hr < <(sqes_counters "$1")
	IOS=$((ios - IOS0)) SUB=$((sub - SUB0)) CP=$((cp - CP0)) HR=$((hr - HR0))
}

# hold_open DEV: a process (HOLDER, its pid) with DEV open, once it has it.
hold_open() {
	sleep 120 <"$1" &
	HOLDER=$!
	wait_until 10 fd0_is "$HOLDER" "$1" || fail "sleep did not open $1"
}
fd0_is() { [ "$(readlink "/proc/$1/fd/0")" = "$2" ]; }

# del_held ID WHAT HOLDER LET_GO...: deleting device ID while WHAT holds it
# times out naming it ("/dev/ublkbID HOLDER; ..."); once the command LET_GO
# has let go of it, the device and its daemon go.
del_held() {
	local id=$1 what=$2 holder=$3
	shift 3
	timeout 60 "$Z" del -n "$id" --timeout 3 >/dev/null 2>"$TMP/err" &&
		fail "del of device $id $what succeeded"
	"$@" || fail "$*"
	grep -q "device $id: deleting timed out: /dev/ublkb$id $holder; " "$TMP/err" ||
		fail "del of device $id $what: $(cat "$TMP/err")"
	wait_until 20 no_devices || fail "device $id stayed after $*: $("$Z" list)"
	wait_until 5 no_daemons || fail "a daemon stayed: $(pgrep -a zublk)"
	note "$(cat "$TMP/err")"
}

# bg_verified NAME FIO_ARGS...: bg_fio NAME of crc32c-verified random writes
# at $DEV, for 120 s at most; bg_fio_stop NAME ends them.
bg_verified() {
	local name=$1
	shift
	bg_fio "$name" --filename="$DEV" --rw=randwrite --verify=crc32c --verify_fatal=1 \
		--time_based --runtime=120 "$@"
}

# del_under_load WHAT [FIO_ARGS...]: delete device $ID while fio drives
# QD128 random 4k reads and writes at it (FIO_ARGS added): del returns
# within 30 s, fio ends, the device's nodes, its daemon and its list entry go.
del_under_load() {
	local what=$1 pid fio_pid start
	shift
	pid=$(dev_field "$ID" daemon_pid)
	fio --name=load --filename="$DEV" --ioengine=io_uring --direct=1 --rw=randrw --bs=4k \
		--iodepth=128 --time_based --runtime=120 "$@" >"$FIO_LOG" 2>&1 &
	fio_pid=$!
	sleep 3
	kill -0 $fio_pid 2>/dev/null || fail "$what: fio did not run: $(tail -3 "$FIO_LOG")"
	start=$SECONDS
	timeout 30 "$Z" del -n "$ID" || fail "$what: del under load failed or hung"
	note "$what: del took $((SECONDS - start))s"
	wait_until 20 bash -c "! kill -0 $fio_pid 2>/dev/null" ||
		fail "$what: fio still running 20s after del"
	wait $fio_pid
	[ ! -e "$DEV" ] || fail "$what: $DEV still exists"
	[ ! -e "/dev/ublkc$ID" ] || fail "$what: /dev/ublkc$ID still exists"
	! kill -0 "$pid" 2>/dev/null || fail "$what: daemon $pid still alive"
	no_devices || fail "$what: list not empty"
}

# exit_queue ID Q: fault injection: device ID's daemon lets queue Q's thread
# quit as if it died (debug-exit-queue on its control socket).
exit_queue() {
	python3 - "$1" "$2" <<'PY' || fail "could not reach device $1's daemon"
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect("/run/zublk/%s.sock" % sys.argv[1])
s.send(b"debug-exit-queue\x00" + sys.argv[2].encode())
r = s.recv(1024).split(b"\0")
assert r[0] == b"0", r
PY
}

# kill_recover WHAT: kill -9 device $ID's daemon, wait for the device to
# be QUIESCED, `zublk recover` it, wait for LIVE.
kill_recover() {
	kill -9 "$(dev_field "$ID" daemon_pid)"
	wait_until 20 state_is "$ID" QUIESCED || fail "$1: not QUIESCED ($(dev_field "$ID" state))"
	timeout 30 "$Z" recover -n "$ID" >/dev/null || fail "$1: recover failed"
	wait_until 20 state_is "$ID" LIVE || fail "$1: not LIVE ($(dev_field "$ID" state))"
}

no_devices() { [ "$("$Z" list --json | tr -d ' \n')" = "[]" ]; }
no_daemons() { ! pgrep -f "$Z add" >/dev/null && ! pgrep -x zublk >/dev/null; }

# nbdkit_up NAME ARGS...: nbdkit ARGS serving on $TMP/NAME.sock, its log in
# $TMP/NAME.log; SRV its pid once it listens (it writes its pidfile then).
nbdkit_up() {
	local name=$1
	shift
	nbdkit -f -U "$TMP/$name.sock" -P "$TMP/$name.pid" "$@" 2>"$TMP/$name.log" &
	disown
	wait_until 20 test -s "$TMP/$name.pid" ||
		fail "nbdkit $*: not up after 20s: $(cat "$TMP/$name.log")"
	SRV=$(cat "$TMP/$name.pid")
	SERVERS+=("$SRV")
	[ -S "$TMP/$name.sock" ] || fail "nbdkit $*: no socket $TMP/$name.sock"
}
# slow_nbd SECS: an nbdkit (memory, 64M) that answers each read after SECS
# seconds, on $TMP/s.sock (SKIP without it)
slow_nbd() {
	command -v nbdkit >/dev/null || skip "no nbdkit"
	nbdkit --filter=delay memory --help >/dev/null 2>&1 || skip "no nbdkit delay filter"
	nbdkit_up s --filter=delay memory 64M rdelay="$1"
}

# expect_err PATTERN ARGS...: zublk ARGS fails (not by timeout) with one stderr
# line matching PATTERN, prints nothing, and leaves no device and no daemon
expect_err() {
	local pat=$1 rc lines
	shift
	timeout 60 "$Z" "$@" >"$TMP/out" 2>"$TMP/err"
	rc=$?
	[ $rc -ne 0 ] || fail "zublk $* succeeded"
	[ $rc -ne 124 ] || fail "zublk $* hung"
	lines=$(wc -l <"$TMP/err")
	[ "$lines" -eq 1 ] || fail "zublk $*: $lines lines on stderr: $(cat "$TMP/err")"
	grep -qE -- "$pat" "$TMP/err" || fail "zublk $*: '$(cat "$TMP/err")' does not match '$pat'"
	[ ! -s "$TMP/out" ] || fail "zublk $*: printed '$(cat "$TMP/out")'"
	no_devices || fail "zublk $*: left a device: $("$Z" list)"
	wait_until 5 no_daemons || fail "zublk $*: left a daemon: $(pgrep -a zublk)"
	note "$(cat "$TMP/err")"
}

modprobe ublk_drv 2>/dev/null
modprobe ext4 2>/dev/null
# A bare devtmpfs has no /dev/fd, which process substitution needs.
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
[ -c /dev/ublk-control ] || skip "no /dev/ublk-control (ublk_drv not available)"

# dev_field ID FIELD: one field of `zublk list -n ID --json`
dev_field() { dev_json "$1" ".[\"$2\"]"; }
state_is() { [ "$(dev_field "$1" state)" = "$2" ]; }
