# SPDX-License-Identifier: MIT
# nbd: an NBD client of nbdkit and qemu-nbd.  Every data mode verified over
# a unix socket, and 2 queues on 2 connections; data stays in the server
# across del and add; ext4 on a qcow2 image qemu-nbd serves over TCP, the
# image clean after; a read-only export; discard and write zeroes; bad input
# (nothing listening, an unknown export, no server, no multi-conn) one line
# each; URIs (uri=nbd://, nbd+unix://) and bad ones; a server killed under
# load and one that stops answering (timeout=3; timeout=0: del bounded),
# one that answers writes but not a read (timeout=3), one that answers
# every read with ESHUTDOWN (reconnect=30: failed after 3 connections):
# IO fails with EIO in bounded time, the daemon lives on, del removes it;
# upgrade and recover connect anew; del under load; reconnect= (the server
# killed and back: no error; away too long; another export; del meanwhile).
. "$(dirname "$0")/lib.sh"
for t in nbdkit qemu-nbd qemu-img mkfs.ext4 blkdiscard python3; do
	command -v $t >/dev/null || skip "no $t"
done
nbdkit memory --help >/dev/null 2>&1 || skip "no nbdkit memory plugin"
nbdkit --filter=delay memory --help >/dev/null 2>&1 || skip "no nbdkit delay filter"

# qnbd_up PORT EXPORT ARGS...: qemu-nbd serving ARGS (options and the
# image) as EXPORT on 127.0.0.1:PORT, as long as it is not killed; SRV its pid.
qnbd_up() {
	local port=$1 export=$2
	shift 2
	rm -f "$TMP/q$port.pid"
	qemu-nbd -b 127.0.0.1 -p "$port" -x "$export" -t --fork --pid-file "$TMP/q$port.pid" \
		"$@" 2>"$TMP/q$port.log" || fail "qemu-nbd $*: $(cat "$TMP/q$port.log")"
	wait_until 10 test -s "$TMP/q$port.pid" || fail "qemu-nbd $*: no pid file"
	SRV=$(cat "$TMP/q$port.pid")
	SERVERS+=("$SRV")
}
# gone PID: no such process, or a zombie (qemu-nbd --fork is no child of ours)
gone() { [ ! -e "/proc/$1" ] || grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }
qnbd_down() { kill "$1" && wait_until 20 gone "$1" || fail "qemu-nbd $1 did not stop"; }
# conns NAME: connections open to $TMP/NAME.sock (server side, /proc/net/unix
# state 03); conns_are NAME N
conns() { awk -v p="$TMP/$1.sock" '$8 == p && $6 == "03"' /proc/net/unix | wc -l; }
conns_are() { [ "$(conns "$1")" = "$2" ]; }
connected_is() { [ "$(dev_field "$1" connected)" = "$2" ]; }
# dlog ID: the last lines device ID's daemon logged
dlog() { tail -n 3 "/run/zublk/$1.log" 2>/dev/null; }
# is_nbd ID SERVER EXPORT SIZE: list --json shows device ID as nbd, served
# by SERVER's EXPORT, connected, SIZE bytes
is_nbd() {
	local id=$1 server=$2 export=$3 size=$4
	[ "$(dev_field "$id" target)" = nbd ] || fail "device $id: target $(dev_field "$id" target)"
	[ "$(dev_field "$id" server)" = "$server" ] ||
		fail "device $id: server '$(dev_field "$id" server)', not '$server'"
	[ "$(dev_json "$id" ".export == \"$export\"")" = True ] ||
		fail "device $id: export '$(dev_field "$id" export)', not '$export'"
	connected_is "$id" True || fail "device $id: connected $(dev_field "$id" connected)"
	[ "$(blockdev --getsize64 "/dev/ublkb$id")" = "$size" ] ||
		fail "device $id: $(blockdev --getsize64 "/dev/ublkb$id") bytes, not $size"
}
# read_eio WHAT MIN MAX [BS SKIP]: a direct read of $DEV (a BS block,
# default 4k, SKIP of them in, default 100) fails with EIO after MIN to MAX
# seconds (TOOK: how many).
read_eio() {
	local what=$1 min=$2 max=$3 bs=${4:-4k} skip=${5:-100} rc start
	start=$(date +%s)
	timeout 60 dd if="$DEV" of=/dev/null bs="$bs" count=1 skip="$skip" iflag=direct status=none \
		2>"$TMP/err"
	rc=$?
	TOOK=$(($(date +%s) - start))
	[ $rc -ne 124 ] || fail "$what: a read hung for 60s"
	[ $rc -ne 0 ] || fail "$what: a read succeeded after ${TOOK}s"
	grep -q "Input/output error" "$TMP/err" || fail "$what: a read: $(cat "$TMP/err")"
	[ "$TOOK" -ge "$min" ] && [ "$TOOK" -le "$max" ] ||
		fail "$what: a read failed after ${TOOK}s, not within ${min}..${max}s"
}
# del_waiting WHAT [VERB]: a read of $DEV that waits (for a server that
# does not answer, or for a connection); `zublk del` (or VERB: stop)
# returns within 40 s, the read fails, nothing is left; TOOK: how long
del_waiting() {
	local what=$1 verb=${2:-del} dd_pid start
	dd if="$DEV" of=/dev/null bs=4k count=1 iflag=direct status=none 2>/dev/null &
	dd_pid=$!
	sleep 2
	kill -0 $dd_pid 2>/dev/null || fail "$what: the read did not wait"
	start=$SECONDS
	timeout 40 "$Z" "$verb" -n "$ID" || fail "$what: $verb failed or took over 40s"
	TOOK=$((SECONDS - start))
	wait_until 10 bash -c "! kill -0 $dd_pid 2>/dev/null" || fail "$what: the read hangs"
	wait $dd_pid && fail "$what: the waiting read succeeded"
	no_devices || fail "$what: a device stayed: $("$Z" list)"
	wait_until 5 no_daemons || fail "$what: a daemon stayed: $(pgrep -a zublk)"
}
# What the python proxies in front of nbdkit below share ($TMP/NAME.py
# imports it): a request header found in what came, a simple reply, and
# the accept loop (a connection to TARGET per client, two pump threads).
cat >"$TMP/nbdproxy.py" <<'PY'
import socket, struct, threading
def request_in(d):
    """(offset in d, type, cookie, length) of the first request in d, or None."""
    i = d.find(bytes.fromhex("25609513"))  # a request's magic
    if i < 0 or len(d) < i + 28:
        return None
    # magic, flags, type, cookie, offset, length
    _, _, typ, _, _, length = struct.unpack(">IHHQQI", d[i:i + 28])
    return i, typ, d[i + 8:i + 16], length
def reply(cookie, error=0):
    return struct.pack(">II", 0x67446698, error) + cookie
def run(listen, target, pump, state=lambda: None):
    """pump(client, server, False, st) and pump(server, client, True, st)."""
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(listen)
    srv.listen(4)
    while True:
        c, _ = srv.accept()
        s = socket.socket(socket.AF_UNIX)
        s.connect(target)
        st = state()
        threading.Thread(target=pump, args=(c, s, False, st), daemon=True).start()
        threading.Thread(target=pump, args=(s, c, True, st), daemon=True).start()
PY
mkdir "$TMP/mnt"

# 1. nbdkit's memory plugin over a unix socket, in every data mode: fio
# random writes 4k..512k, each verified; then 2 queues, 2 connections.
nbdkit_up mem memory 256M
sock=$TMP/mem.sock
for mode in copy user-copy zero-copy auto-zero-copy; do
	add -t nbd socket="$sock" --mode "$mode"
	is_nbd "$ID" "unix:$sock" "" $((256 << 20))
	[ "$(dev_field "$ID" mode)" = "$mode" ] || fail "$mode: mode $(dev_field "$ID" mode)"
	wait_until 5 conns_are mem 1 || fail "$mode: $(conns mem) connections to nbdkit, not 1"
	fio_ok v --filename="$DEV" --rw=randwrite --bsrange=4k-512k --iodepth=16 --size=16M \
		--verify=crc32c --do_verify=1 --verify_fatal=1
	del "$ID"
	wait_until 10 conns_are mem 0 || fail "$mode: $(conns mem) connections open after del"
	note "nbdkit memory, $mode: verified"
done
if fits_cpus 2; then
	add -t nbd socket="$sock" -q 2
	[ "$(dev_field "$ID" queues)" = 2 ] || fail "-q 2: queues $(dev_field "$ID" queues)"
	wait_until 5 conns_are mem 2 || fail "-q 2: $(conns mem) connections to nbdkit, not 2"
	# Two jobs on two queues, each verifying its own half.
	fio_ok v2 --filename="$DEV" --rw=randwrite --bsrange=4k-512k --iodepth=16 --numjobs=2 \
		--size=16M --offset_increment=128M --verify=crc32c --do_verify=1 --verify_fatal=1
	del "$ID"
	wait_until 10 conns_are mem 0 || fail "-q 2: $(conns mem) connections open after del"
	note "nbdkit memory, 2 queues on 2 connections: verified"
fi

# 2. What a device wrote stays in the server: read back by a new device.
dd if=/dev/urandom of="$TMP/pat" bs=1M count=16 status=none || fail "making the pattern"
sum=$(sha256sum <"$TMP/pat")
add -t nbd socket="$sock"
for off in 0 200; do
	dd if="$TMP/pat" of="$DEV" bs=1M seek=$off oflag=direct status=none ||
		fail "writing the pattern at ${off}M"
done
del "$ID"
# The same export named by a URI (the slash in the socket's path encoded).
add -t nbd uri="nbd+unix:///?socket=${sock//\//%2F}" --mode zero-copy
is_nbd "$ID" "unix:$sock" "" $((256 << 20))
for off in 0 200; do
	[ "$(dd if="$DEV" bs=1M skip=$off count=16 iflag=direct status=none | sha256sum)" = "$sum" ] ||
		fail "the pattern at ${off}M did not come back from nbdkit"
done
del "$ID"
note "data stayed in nbdkit across del and add"

# 3. qemu-nbd serving a qcow2 image over TCP: ext4 with files on it, the
# image clean once qemu-nbd stops, the files there when it serves it again.
# qemu-nbd (-e 1, the default) does not offer multi-conn: -q 2 is refused.
qemu-img create -q -f qcow2 "$TMP/disk.qcow2" 256M || fail "qemu-img create"
qnbd_up 10901 disk -f qcow2 "$TMP/disk.qcow2"
add -t nbd host=127.0.0.1 port=10901 export=disk
is_nbd "$ID" 127.0.0.1:10901 disk $((256 << 20))
mkfs.ext4 -q -F "$DEV" || fail "mkfs.ext4 over qemu-nbd; the daemon: $(dlog "$ID")"
mount "$DEV" "$TMP/mnt" || fail "mounting the ext4 over qemu-nbd"
dd if=/dev/urandom of="$TMP/mnt/a" bs=1M count=8 status=none &&
	head -c 100000 /dev/urandom >"$TMP/mnt/b" && mkdir "$TMP/mnt/d" &&
	cp "$TMP/mnt/a" "$TMP/mnt/d/c" || fail "writing files into the ext4 over qemu-nbd"
(cd "$TMP/mnt" && sha256sum a b d/c) >"$TMP/sums" || fail "sha256sum"
umount "$TMP/mnt" || fail "umount"
del "$ID"
qnbd_down "$SRV"
qemu-img check "$TMP/disk.qcow2" >"$TMP/check" 2>&1 || fail "qemu-img check: $(cat "$TMP/check")"
qnbd_up 10901 disk -f qcow2 "$TMP/disk.qcow2"
add -t nbd host=127.0.0.1 port=10901 export=disk --mode auto-zero-copy
fsck.ext4 -fn "$DEV" >"$TMP/fsck" 2>&1 ||
	fail "fsck over qemu-nbd: $(tail -3 "$TMP/fsck"); the daemon: $(dlog "$ID")"
mount "$DEV" "$TMP/mnt" || fail "mounting the ext4 over qemu-nbd again"
(cd "$TMP/mnt" && sha256sum -c --quiet "$TMP/sums") || fail "the files changed"
umount "$TMP/mnt" || fail "umount"
del "$ID"
note "ext4 on qcow2 over qemu-nbd: files kept, qemu-img check clean"
if fits_cpus 2; then
	expect_err "multi-conn" add -t nbd host=127.0.0.1 port=10901 export=disk -q 2
fi
qnbd_down "$SRV"

# 4. A read-only export makes a read-only device: reads work, writes fail.
nbdkit_up ro -r memory 64M
add -t nbd socket="$TMP/ro.sock"
is_nbd "$ID" "unix:$TMP/ro.sock" "" $((64 << 20))
[ "$(blockdev --getro "$DEV")" = 1 ] || fail "read-only export: getro $(blockdev --getro "$DEV")"
dd if="$DEV" of=/dev/null bs=1M count=4 iflag=direct status=none ||
	fail "reading a read-only export"
dd if=/dev/zero of="$DEV" bs=4k count=1 oflag=direct status=none 2>"$TMP/err" &&
	fail "a write to a read-only export succeeded"
note "read-only export: $(head -1 "$TMP/err")"
del "$ID"

# 5. nbdkit's memory plugin offers flush, FUA, trim and write zeroes: the
# device has them, write zeroes zeroes just its range, discard works.
add -t nbd socket="$sock"
q=/sys/block/ublkb$ID/queue
[ "$(cat "$q/write_cache")" = "write back" ] || fail "no volatile cache: $(cat "$q/write_cache")"
[ "$(cat "$q/fua")" = 1 ] || fail "FUA not advertised"
[ "$(cat "$q/discard_max_bytes")" -gt 0 ] || fail "discard (trim) not advertised"
[ "$(cat "$q/write_zeroes_max_bytes")" -gt 0 ] || fail "write zeroes not advertised"
fio_ok fua --filename="$DEV" --rw=randwrite --bs=4k --iodepth=8 --size=8M --sync=dsync \
	--fsync=4 --verify=crc32c --do_verify=1
dd if=/dev/urandom of="$TMP/r8" bs=1M count=8 status=none || fail "making random data"
dd if="$TMP/r8" of="$DEV" bs=1M oflag=direct status=none || fail "writing 8M"
blkdiscard -z -o 0 -l 4M "$DEV" 2>"$TMP/err" || fail "blkdiscard -z: $(cat "$TMP/err")"
cmp -n 4194304 <(dd if="$DEV" bs=1M count=4 iflag=direct status=none) /dev/zero >/dev/null ||
	fail "the first 4M are not zeros after blkdiscard -z"
cmp <(dd if="$DEV" bs=1M skip=4 count=4 iflag=direct status=none) <(tail -c 4M "$TMP/r8") \
	>/dev/null || fail "blkdiscard -z of 0..4M changed 4M..8M"
blkdiscard -o 4M -l 4M "$DEV" 2>"$TMP/err" || fail "blkdiscard: $(cat "$TMP/err")"
errs=$(counter "$ID" errors)
[ "$errs" = 0 ] || fail "$errs requests ended in error"
del "$ID"
note "flush, FUA, write zeroes and discard over nbd"

# 6. Bad input: one line naming the server or the export, nothing left.
expect_err "$TMP/none\.sock.*(refused|No such file)" add -t nbd socket="$TMP/none.sock"
# A socket file nothing listens on (bound, never listened, its owner gone).
python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' \
	"$TMP/stale.sock" || fail "making a stale socket"
expect_err "$TMP/stale\.sock.*refused" add -t nbd socket="$TMP/stale.sock"
# A server that sends its greeting a byte every 2 s, each within the 10 s a
# read may wait: the handshake as a whole gives up after 10 s (it took
# add's 60 s, and the line did not name the server).
cat >"$TMP/drip.py" <<'PY'
import socket, sys, threading, time
srv = socket.socket(socket.AF_UNIX)
srv.bind(sys.argv[1])
srv.listen(4)
def drip(c):
    for b in b"NBDMAGIC" + bytes.fromhex("49484156454f5054") + b"\x00\x03" * 1000:
        time.sleep(2)
        c.send(bytes([b]))
while True:
    c, _ = srv.accept()
    threading.Thread(target=drip, args=(c,), daemon=True).start()
PY
python3 "$TMP/drip.py" "$TMP/drip.sock" 2>"$TMP/drip.log" &
SERVERS+=($!)
wait_until 10 test -S "$TMP/drip.sock" || fail "the drip server did not listen: $(cat "$TMP/drip.log")"
start=$SECONDS
expect_err "drip\.sock.*handshake.*timed out" \
	add -t nbd socket="$TMP/drip.sock"
[ $((SECONDS - start)) -le 30 ] || fail "a dripping handshake took $((SECONDS - start)) s"
expect_err "127\.0\.0\.1:10999.*refused" add -t nbd host=127.0.0.1 port=10999
# A URI's host is percent-decoded, as its export is.
expect_err "127\.0\.0\.1:10999.*refused" add -t nbd uri=nbd://%31%32%37.0.0.1:10999/
truncate -s 16M "$TMP/raw"
qnbd_up 10902 known -f raw "$TMP/raw"
expect_err "[\"']nosuch[\"'].*unknown|unknown.*[\"']nosuch[\"']" \
	add -t nbd host=127.0.0.1 port=10902 export=nosuch
# The export qemu-nbd does have works (it was the name that was wrong).
add -t nbd host=127.0.0.1 port=10902 export=known
is_nbd "$ID" 127.0.0.1:10902 known $((16 << 20))
del "$ID"
add -t nbd uri=nbd://127.0.0.1:10902/known
is_nbd "$ID" 127.0.0.1:10902 known $((16 << 20))
del "$ID"
expect_err "[\"']nosuch[\"'].*unknown|unknown.*[\"']nosuch[\"']" \
	add -t nbd uri=nbd://127.0.0.1:10902/nosuch
qnbd_down "$SRV"
expect_err "host=.*socket=|socket=.*host=" add -t nbd
expect_err "uri 'nbds://h/': TLS" add -t nbd uri=nbds://h/
expect_err "uri 'http://h/': not an NBD URI" add -t nbd uri=http://h/
expect_err "uri 'nbd\+unix:///e': needs \?socket=PATH" add -t nbd uri=nbd+unix:///e
expect_err "uri 'nbd://h:1x/': the port is not a number 1..65535" add -t nbd uri=nbd://h:1x/
expect_err "uri 'nbd://h:70000/': the port is not a number 1..65535" add -t nbd uri=nbd://h:70000/
expect_err "port '70000': not a port number 1..65535" add -t nbd host=127.0.0.1 port=70000
expect_err "port '0': not a port number 1..65535" add -t nbd host=127.0.0.1 port=0
expect_err "uri 'nbd://\[::1\]x/': 'x' after the IPv6 address" add -t nbd "uri=nbd://[::1]x/"
expect_err "uri= says where" add -t nbd uri=nbd://h/ export=e

# 7. The server killed under load: fio ends with errors, later IO fails at
# once with EIO, list says disconnected, the daemon lives; the server back,
# upgrade reconnects; del works.
nbdkit_up doomed memory 128M
doomed=$SRV
add -t nbd socket="$TMP/doomed.sock"
pid=$(dev_field "$ID" daemon_pid)
fio --name=load --filename="$DEV" --ioengine=io_uring --direct=1 --rw=randrw --bs=4k \
	--iodepth=32 --size=64M --time_based --runtime=30 >"$FIO_LOG" 2>&1 &
fio_pid=$!
sleep 2
kill -0 $fio_pid 2>/dev/null || fail "fio did not run: $(tail -3 "$FIO_LOG")"
kill -9 "$doomed"
killed=$(date +%s)
wait_until 40 bash -c "! kill -0 $fio_pid 2>/dev/null" ||
	fail "fio still running 40s after its server was killed"
wait $fio_pid && fail "fio succeeded against a killed server"
grep -q "Input/output error" "$FIO_LOG" || fail "fio saw no EIO: $(grep -E 'err=|error' "$FIO_LOG")"
note "server killed: fio failed after $(($(date +%s) - killed))s"
read_eio "after the server died" 0 5
wait_until 5 connected_is "$ID" False ||
	fail "server killed: connected $(dev_field "$ID" connected)"
kill -0 "$pid" 2>/dev/null || fail "the daemon died with its server"
# The server back (empty: a new memory plugin): upgrade's new daemon connects anew.
rm -f "$TMP/doomed.sock" "$TMP/doomed.pid"
nbdkit_up doomed memory 128M
timeout 60 "$Z" upgrade -n "$ID" >"$TMP/out" 2>&1 || fail "upgrade: $(cat "$TMP/out")"
[ "$(dev_field "$ID" daemon_pid)" != "$pid" ] || fail "upgrade: the same daemon"
pid=$(dev_field "$ID" daemon_pid)
connected_is "$ID" True || fail "after upgrade: connected $(dev_field "$ID" connected)"
fio_ok back --filename="$DEV" --rw=randwrite --bs=4k --iodepth=8 --size=8M \
	--verify=crc32c --do_verify=1 --verify_fatal=1
note "server back: upgrade reconnected, IO verified"
del "$ID"
[ ! -e "$DEV" ] || fail "$DEV still there after del"
no_devices || fail "a device stayed: $("$Z" list)"
wait_until 5 no_daemons || fail "a daemon stayed: $(pgrep -a zublk)"
note "server killed: IO failed, connected false, del worked"

# 8. A server that stops answering: reads wait 20s in nbdkit, timeout=3 declares
# the connection dead and the read fails well before nbdkit would answer.
# --no-part-scan: no read at add that the timeout would already catch.
nbdkit_up slow --filter=delay memory 64M rdelay=20
add -t nbd socket="$TMP/slow.sock" timeout=3 --no-part-scan
pid=$(dev_field "$ID" daemon_pid)
connected_is "$ID" True || fail "timeout=3: not connected at start"
dd if=/dev/zero of="$DEV" bs=4k count=1 oflag=direct status=none 2>"$TMP/err" ||
	fail "timeout=3: a write (not delayed) failed: $(cat "$TMP/err")"
# nbdkit would answer after 20 s; the timeout runs out after 3.
read_eio "timeout=3" 2 14
wait_until 5 connected_is "$ID" False || fail "timeout=3: connected $(dev_field "$ID" connected)"
kill -0 "$pid" 2>/dev/null || fail "timeout=3: the daemon died"
start=$(date +%s)
timeout 30 "$Z" del -n "$ID" || fail "timeout=3: del failed or took over 30s"
no_devices || fail "a device stayed: $("$Z" list)"
wait_until 5 no_daemons || fail "a daemon stayed: $(pgrep -a zublk)"
note "timeout=3: the read failed after ${TOOK}s, del took $(($(date +%s) - start))s"
# ... and with timeout=0 (wait for ever): del does not wait for ever.  The
# read still waits 5 s after the device begins to stop; then the connection
# is shut down, the read fails and the deletion goes on.
nbdkit_up hung --filter=delay memory 64M rdelay=100
add -t nbd socket="$TMP/hung.sock" timeout=0 --no-part-scan
del_waiting "timeout=0"
[ $TOOK -ge 4 ] || fail "timeout=0: del took ${TOOK}s: the waiting read had no 5 s"
grep -q "nothing came or went out for 5 s since the device began to stop" "/run/zublk/$ID.log" ||
	fail "timeout=0: no 'nothing came or went out' line: $(dlog "$ID")"
note "timeout=0, a server that does not answer: del took ${TOOK}s"
# ... and a server that answers a 1M WRITE before reading its data, and
# then reads no more (a proxy in front of nbdkit, once told to): an answer
# to data it cannot have, so the connection is lost at once and the write
# fails (no reconnect=), where it was taken for done (the rest of its data
# waiting for room in the socket for ever, a deletion with it).
cat >"$TMP/early.py" <<'PY'
import os, sys, threading, time
from nbdproxy import request_in, reply, run
listen, target, trigger, log = sys.argv[1:5]
def pump(a, b, to_client, lock):
    try:
        while True:
            d = a.recv(1 << 16)
            if not d:
                break
            r = None if to_client or not os.path.exists(trigger) else request_in(d)
            if r and r[1] == 1 and r[3] > 65536:  # a WRITE of more than 64 KiB
                os.unlink(trigger)
                with lock:
                    b.sendall(d[:r[0]])
                    a.sendall(reply(r[2]))
                with open(log, "a") as f:
                    print("answered early", file=f, flush=True)
                while True:
                    time.sleep(3600)  # and read no more
            with lock:
                b.sendall(d)
    except OSError:
        pass
run(listen, target, pump, threading.Lock)
PY
nbdkit_up eback memory 64M
python3 "$TMP/early.py" "$TMP/early.sock" "$TMP/eback.sock" "$TMP/early.now" "$TMP/early.log" \
	2>"$TMP/early.err" &
SERVERS+=($!)
wait_until 10 test -S "$TMP/early.sock" || fail "the early-answer proxy did not listen: $(cat "$TMP/early.err")"
add -t nbd socket="$TMP/early.sock" timeout=0 --no-part-scan
[ "$(cat "/sys/block/ublkb$ID/queue/max_sectors_kb")" -ge 1024 ] ||
	fail "early answer: max_sectors_kb $(cat "/sys/block/ublkb$ID/queue/max_sectors_kb"), not 1M"
touch "$TMP/early.now"
start=$SECONDS
timeout 40 dd if=/dev/urandom of="$DEV" bs=1M count=1 oflag=direct status=none \
	2>"$TMP/err" && fail "early answer: the write succeeded"
TOOK=$((SECONDS - start))
grep -q "Input/output error" "$TMP/err" || fail "early answer: the write: $(cat "$TMP/err")"
grep -qs "answered early" "$TMP/early.log" ||
	fail "early answer: the proxy answered no write: $(cat "$TMP/early.err")"
[ $TOOK -le 10 ] || fail "early answer: the write failed after ${TOOK}s"
grep -q "lost: a reply to a WRITE whose data had not all gone out" "/run/zublk/$ID.log" ||
	fail "early answer: no 'reply to a WRITE' line: $(dlog "$ID")"
timeout 40 "$Z" del -n "$ID" || fail "early answer: del failed or took over 40s"
no_devices || fail "early answer: a device stayed: $("$Z" list)"
note "a server that answered a write before reading its data: the write failed after ${TOOK}s"
# ... and a server that answers writes but not a read: once the read is
# older than timeout=3, the next reply ends the connection (the receive's
# own timeout never runs out while the writes are answered).
nbdkit_up rslow --filter=delay memory 64M rdelay=20
add -t nbd socket="$TMP/rslow.sock" timeout=3 --no-part-scan
start=$SECONDS
dd if="$DEV" of=/dev/null bs=4k count=1 skip=100 iflag=direct status=none 2>/dev/null &
rd=$!
for i in 1 2 3 4 5 6 7 8 9 10; do
	sleep 1
	dd if=/dev/zero of="$DEV" bs=4k count=1 seek=$i oflag=direct status=none 2>/dev/null ||
		break
done
wait $rd && fail "timeout=3, writes answered: the read waited for its reply"
TOOK=$((SECONDS - start))
[ $TOOK -le 12 ] || fail "timeout=3, writes answered: the read failed after ${TOOK}s"
grep -q "a request unanswered past timeout=" "/run/zublk/$ID.log" ||
	fail "timeout=3, writes answered: no 'unanswered' line: $(dlog "$ID")"
del "$ID"
note "timeout=3, writes answered but not a read: the read failed after ${TOOK}s"
# A server that answers every read with ESHUTDOWN (the client must
# disconnect): with reconnect=30 the read is sent again on new
# connections, and fails once 3 of them were lost with it, not after 30 s.
nbdkit_up eshut --filter=error memory 64M error=ESHUTDOWN error-pread-rate=100%
add -t nbd socket="$TMP/eshut.sock" reconnect=30 --no-part-scan
read_eio "ESHUTDOWN, reconnect=30" 0 10
grep -q "lost with 3 connections: failed" "/run/zublk/$ID.log" ||
	fail "ESHUTDOWN: no 'lost with 3 connections' line: $(dlog "$ID")"
dd if=/dev/zero of="$DEV" bs=4k count=1 oflag=direct status=none 2>"$TMP/err" ||
	fail "ESHUTDOWN: a write (not refused) failed: $(cat "$TMP/err")"
del "$ID"
note "ESHUTDOWN to every read, reconnect=30: the read failed after ${TOOK}s, writes served"
# ... and a server that stops in the middle of a long read's data (which
# goes straight into the request, not through a header's receive):
# timeout=3 ends that wait too.  A proxy in front of nbdkit, once told
# to, waits for a READ of more than 64 KiB to go by, then passes on 4 KiB
# of its reply's data after the header, and nothing more.
cat >"$TMP/stall.py" <<'PY'
import os, sys, threading
from nbdproxy import request_in, run
listen, target, trigger = sys.argv[1:4]
big = threading.Event()
def pump(a, b, to_client, _):
    budget = None
    while True:
        d = a.recv(1 << 16)
        if not d:
            return  # b stays open: a server that stalls, not one that hangs up
        r = None if to_client or not os.path.exists(trigger) else request_in(d)
        if r and r[1] == 0 and r[3] > 65536:  # a READ of more than 64 KiB
            big.set()
        if to_client and budget is None and big.is_set():
            budget = 16 + 4096
        if budget is not None:
            d, budget = d[:budget], budget - min(budget, len(d))
        if d:
            b.sendall(d)
run(listen, target, pump)
PY
nbdkit_up mid memory 64M
python3 "$TMP/stall.py" "$TMP/stall.sock" "$TMP/mid.sock" "$TMP/stall.now" 2>"$TMP/stall.log" &
SERVERS+=($!)
wait_until 10 test -S "$TMP/stall.sock" || fail "the proxy did not listen: $(cat "$TMP/stall.log")"
add -t nbd socket="$TMP/stall.sock" timeout=3 --no-part-scan
dd if=/dev/urandom of="$DEV" bs=1M count=1 seek=1 oflag=direct status=none 2>"$TMP/err" ||
	fail "mid-read stall: a write through the proxy failed: $(cat "$TMP/err")"
touch "$TMP/stall.now"
read_eio "mid-read stall" 2 14 1M 1
wait_until 5 connected_is "$ID" False || fail "mid-read stall: connected $(dev_field "$ID" connected)"
grep -q "no more of a read's data for 3 s" "/run/zublk/$ID.log" ||
	fail "mid-read stall: no 'no more of a read's data' line: $(dlog "$ID")"
timeout 30 "$Z" del -n "$ID" || fail "mid-read stall: del failed or took over 30s"
note "a server stalled in a 1M read's data: the read failed after ${TOOK}s"

# 9. The daemon killed under verified writes: the requests it had out wait
# for the next daemon (recovery, reissue), which connects anew; no error.
# The socket is given relative to the directory add runs in: add makes it
# absolute, and recover, run from another, finds it.
nbdkit_up rec memory 128M
cd "$TMP" || fail "cd $TMP"
add -t nbd socket=rec.sock
cd / || fail "cd /"
dev_json "$ID" '.options[]' | grep -qx "socket=$TMP/rec.sock" ||
	fail "socket=rec.sock not made absolute: $(dev_json "$ID" .options)"
bg_verified v --bs=4k --iodepth=32 --size=32M --verify_backlog=512 --runtime=600
sleep 3
fio_running || fail "recover: fio died: $(tail -3 "$TMP/v.log")"
kill_recover recover
connected_is "$ID" True || fail "recover: connected $(dev_field "$ID" connected)"
sleep 3
bg_fio_stop v
[ "$(counter "$ID" errors)" = 0 ] || fail "recover: $(counter "$ID" errors) requests failed"
del "$ID"
note "daemon killed under verified writes: recover connected anew, no error"
# A server back with less than the device takes (read-only now): the
# recovery is refused in one line (the device's writes would fail there)
# and the device waits; the server back writable, the recovery takes.
nbdkit_up back memory 64M
add -t nbd socket="$TMP/back.sock"
kill -9 "$(dev_field "$ID" daemon_pid)"
wait_until 20 state_is "$ID" QUIESCED || fail "read-only back: not QUIESCED ($(dev_field "$ID" state))"
# back_server ARGS...: the server on back.sock again, with ARGS
back_server() {
	kill "$SRV" 2>/dev/null
	wait_until 10 eval "! kill -0 $SRV 2>/dev/null" || fail "nbdkit $SRV did not end"
	rm -f "$TMP/back.sock" "$TMP/back.pid"
	nbdkit_up back "$@"
}
back_server -r memory 64M
timeout 30 "$Z" recover -n "$ID" >"$TMP/out" 2>"$TMP/err" &&
	fail "a recovery over a server back read-only was taken"
[ "$(wc -l <"$TMP/err")" = 1 ] &&
	grep -q "device $ID: takes writes, which the backing no longer does; not recovering" "$TMP/err" ||
	fail "recover over a read-only server said: $(cat "$TMP/err")"
state_is "$ID" QUIESCED || fail "after the refused recovery: $(dev_field "$ID" state)"
back_server memory 64M
timeout 30 "$Z" recover -n "$ID" >/dev/null || fail "recover over the server back writable failed"
wait_until 20 state_is "$ID" LIVE || fail "read-only back: not LIVE ($(dev_field "$ID" state))"
dd if=/dev/zero of="$DEV" bs=4k count=1 oflag=direct status=none || fail "a write after the recovery"
del "$ID"
note "server back read-only: '$(cat "$TMP/err")'; back writable, recovered"

# 10. del while fio drives QD128 at the device: del returns, fio ends, the
# device and its daemon go, the server serves on.
add -t nbd socket="$TMP/rec.sock"
del_under_load "nbd under load" --bsrange=4k-256k
wait_until 10 conns_are rec 0 || fail "del under load: $(conns rec) connections still open"
add -t nbd socket="$TMP/rec.sock"
dd if="$DEV" of=/dev/null bs=64k count=16 iflag=direct status=none || fail "nbdkit gone after del"
del "$ID"
note "nbdkit serves on after del under load"

# 11. reconnect=: the server killed under verified writes and started again
# over the same file: the requests wait, go again on the new connection,
# and fio finishes with no error (zero-copy and copy); the server gone for
# longer than reconnect=: IO fails with EIO; back with another export: the
# tries stop at once; del while requests wait; bad input.
if ! nbdkit file --help >/dev/null 2>&1; then
	skip_check "reconnect" "no nbdkit file plugin (a server whose data outlive it)"
	exit 0
fi
truncate -s 64M "$TMP/rc.img"
# rc_down: kill -9 the server; rc_up [FILE]: serve FILE (rc.img) again
rc_down() { kill -9 "$SRV" && wait_until 10 gone "$SRV" || fail "nbdkit $SRV did not die"; }
rc_up() {
	rm -f "$TMP/rc.sock" "$TMP/rc.pid"
	nbdkit_up rc file "${1:-$TMP/rc.img}"
}
rc_up
# zero-copy on one queue, sizes up to 256k (big reads straight into their
# requests, sends cut short); copy on 2 queues (2 connections) where 2 fit,
# a thread each (each ring has its own queue's connection, a stand-in for
# the other's).
queues_upto 2
for mode in zero-copy copy; do
	nq=1
	[ $mode = zero-copy ] || nq=$q
	add -t nbd socket="$TMP/rc.sock" reconnect=30 --mode "$mode" -q $nq --threads $nq
	[ "$(dev_field "$ID" threads)" = $nq ] || fail "reconnect: threads $(dev_field "$ID" threads)"
	pid=$(dev_field "$ID" daemon_pid)
	[ "$(dev_field "$ID" reconnect)" = 30 ] || fail "reconnect: $(dev_field "$ID" reconnect)"
	# A job per queue, each on a CPU of that queue: a connection with no
	# request in flight when the server dies finds it lost only at its next
	# request (zublk-nbd(8)), and one fio job on one CPU feeds one queue.
	jobs=()
	((nq == 1)) || jobs=(--numjobs=$nq --group_reporting --cpus_allowed=0-$((nq - 1))
		--cpus_allowed_policy=split --offset_increment=$((32 / nq))M)
	bg_verified "rc-$mode" --bsrange=4k-256k --iodepth=16 --size=$((32 / nq))M --verify_backlog=64 \
		${jobs[@]+"${jobs[@]}"}
	sleep 3
	fio_running || fail "reconnect $mode: fio died: $(tail -3 "$TMP/rc-$mode.log")"
	rc_down
	wait_until 10 connected_is "$ID" False ||
		fail "reconnect $mode: connected $(dev_field "$ID" connected) with the server dead"
	# No socket file while the server is away (a restart makes it again):
	# the tries go on, as for a socket nobody listens on.
	rm -f "$TMP/rc.sock"
	sleep 2
	fio_running || fail "reconnect $mode: fio ended with the server away"
	rc_up
	wait_until 20 connected_is "$ID" True ||
		fail "reconnect $mode: not connected again: $(dlog "$ID")"
	[ "$(grep -c "zublk\[$pid\]: .* back after" "/run/zublk/$ID.log")" = $nq ] ||
		fail "reconnect $mode: not $nq 'back after' lines: $(dlog "$ID")"
	sleep 3
	bg_fio_stop "rc-$mode"
	[ "$(dev_field "$ID" reconnects)" = $nq ] ||
		fail "reconnect $mode: reconnects $(dev_field "$ID" reconnects), not $nq"
	[ "$(counter "$ID" errors)" = 0 ] ||
		fail "reconnect $mode: $(counter "$ID" errors) requests failed"
	[ "$(dev_field "$ID" daemon_pid)" = "$pid" ] || fail "reconnect $mode: another daemon"
	note "reconnect, $mode, $nq queue(s): $(grep -o 'back after.*' "/run/zublk/$ID.log" |
		tail -1)"
	del "$ID"
done
# Away for longer than reconnect=3: a read waits for the tries, then fails.
add -t nbd socket="$TMP/rc.sock" reconnect=3 --no-part-scan
pid=$(dev_field "$ID" daemon_pid)
rc_down
read_eio "reconnect=3, the server away" 2 14
grep -q "not back within 3 s" "/run/zublk/$ID.log" ||
	fail "reconnect=3: no 'not back' line: $(dlog "$ID")"
connected_is "$ID" False || fail "reconnect=3: connected $(dev_field "$ID" connected)"
read_eio "reconnect=3, after the tries" 0 3
kill -0 "$pid" 2>/dev/null || fail "reconnect=3: the daemon died"
note "reconnect=3: $(grep -o 'not back within.*' "/run/zublk/$ID.log" | tail -1)"
del "$ID"
# Back with another export (half the size): no use trying for the rest of 60 s.
rc_up
add -t nbd socket="$TMP/rc.sock" reconnect=60 --no-part-scan
rc_down
truncate -s 32M "$TMP/rc2.img"
rc_up "$TMP/rc2.img"
read_eio "reconnect=60, another export" 0 15
grep -q "changed: 33554432 bytes" "/run/zublk/$ID.log" ||
	fail "another export: no 'changed' line: $(dlog "$ID")"
note "another export: gave up after ${TOOK}s"
del "$ID"
# del while requests wait for a connection: bounded, nothing left.
rc_up
add -t nbd socket="$TMP/rc.sock" reconnect=120 --no-part-scan
rc_down
del_waiting "reconnect=120"
grep -q "given up: the device is stopping" "/run/zublk/$ID.log" ||
	fail "reconnect=120: no 'device is stopping' line: $(dlog "$ID")"
note "del while a read waited for a connection: ${TOOK}s"
rc_up
add -t nbd socket="$TMP/rc.sock" reconnect=120 --no-part-scan
rc_down
del_waiting "stop, reconnect=120" stop
note "stop while a read waited for a connection: ${TOOK}s"
rc_up
# A server without NBD_OPT_GO (a proxy that refuses it and reaches nbdkit
# only at NBD_OPT_EXPORT_NAME) hangs up there while nbdkit is away: at a
# reconnect that is a server going away, tried again, not an unknown export.
cat >"$TMP/nogo.py" <<'PY'
import socket, struct, sys, threading
listen, target = sys.argv[1:3]
OPTS, REPLY = 0x49484156454F5054, 0x3E889045565A9
def rd(s, n):
    b = b""
    while len(b) < n:
        d = s.recv(n - len(b))
        if not d:
            raise EOFError
        b += d
    return b
def pipe(a, b):
    try:
        while True:
            d = a.recv(1 << 16)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    for x in (a, b):
        try:
            x.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
def serve(c):
    try:
        c.sendall(b"NBDMAGIC" + struct.pack(">QH", OPTS, 3))  # fixed newstyle, no zeroes
        rd(c, 4)
        while True:
            _, opt, n = struct.unpack(">QII", rd(c, 16))
            name = rd(c, n)
            if opt == 1:  # NBD_OPT_EXPORT_NAME
                break
            c.sendall(struct.pack(">QIII", REPLY, opt, (1 << 31) + 1, 0))  # ERR_UNSUP
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(target)
        except OSError:
            c.close()  # nbdkit away: hang up, as a server without the export does
            print("hung up at EXPORT_NAME", file=sys.stderr, flush=True)
            return
        rd(s, 18)
        s.sendall(struct.pack(">I", 3) + struct.pack(">QII", OPTS, 1, len(name)) + name)
        c.sendall(rd(s, 10))  # size, transmission flags
    except (EOFError, OSError):
        c.close()
        return
    threading.Thread(target=pipe, args=(c, s), daemon=True).start()
    pipe(s, c)
srv = socket.socket(socket.AF_UNIX)
srv.bind(listen)
srv.listen(4)
while True:
    threading.Thread(target=serve, args=(srv.accept()[0],), daemon=True).start()
PY
python3 "$TMP/nogo.py" "$TMP/nogo.sock" "$TMP/rc.sock" 2>"$TMP/nogo.log" &
SERVERS+=($!)
wait_until 10 test -S "$TMP/nogo.sock" || fail "no-GO proxy did not listen: $(cat "$TMP/nogo.log")"
add -t nbd socket="$TMP/nogo.sock" reconnect=30 --no-part-scan
pid=$(dev_field "$ID" daemon_pid)
head -c 1M /dev/urandom >"$TMP/nogo.data"
dd if="$TMP/nogo.data" of="$DEV" bs=1M seek=1 oflag=direct status=none ||
	fail "no-GO server: the write failed"
rc_down
timeout 60 dd if="$DEV" of="$TMP/nogo.back" bs=1M skip=1 count=1 iflag=direct status=none &
rpid=$!
wait_until 10 grep -q "hung up at EXPORT_NAME" "$TMP/nogo.log" ||
	fail "no-GO server: no try was hung up on: $(dlog "$ID")"
sleep 2
kill -0 $rpid 2>/dev/null || fail "no-GO server: the read ended while the server was away"
rc_up
wait $rpid || fail "no-GO server: the read failed: $(dlog "$ID")"
cmp "$TMP/nogo.data" "$TMP/nogo.back" || fail "no-GO server: the read returned other data"
grep -q "zublk\[$pid\]: .* back after" "/run/zublk/$ID.log" ||
	fail "no-GO server: no 'back after' line: $(dlog "$ID")"
note "no NBD_OPT_GO, hung up on while away: $(grep -o 'back after.*' "/run/zublk/$ID.log" | tail -1)"
del "$ID"
# A server that shuts down answers a request with NBD_ESHUTDOWN, having
# not done it: the client disconnects, and with reconnect= the request
# goes again on a new connection (no error).  A proxy in front of nbdkit,
# once told to, answers the next request so and forwards nothing more on
# that connection.
cat >"$TMP/shut.py" <<'PY'
import os, sys, threading
from nbdproxy import request_in, reply, run
listen, target, trigger, log = sys.argv[1:5]
def pump(a, b, to_client, done):
    try:
        while not done.is_set():
            d = a.recv(1 << 16)
            if not d or done.is_set():
                break
            r = None if to_client or not os.path.exists(trigger) else request_in(d)
            if r:
                os.unlink(trigger)
                done.set()
                if r[0]:
                    b.sendall(d[:r[0]])
                a.sendall(reply(r[2], 108))  # NBD_ESHUTDOWN
                with open(log, "a") as f:
                    print("ESHUTDOWN sent", file=f, flush=True)
                break
            b.sendall(d)
    except OSError:
        pass
run(listen, target, pump, threading.Event)
PY
python3 "$TMP/shut.py" "$TMP/shut.sock" "$TMP/rc.sock" "$TMP/shut.now" "$TMP/shut.log" \
	2>"$TMP/shut.err" &
SERVERS+=($!)
wait_until 10 test -S "$TMP/shut.sock" || fail "the ESHUTDOWN proxy did not listen: $(cat "$TMP/shut.err")"
add -t nbd socket="$TMP/shut.sock" reconnect=30 --no-part-scan
head -c 1M /dev/urandom >"$TMP/shut.data"
dd if="$TMP/shut.data" of="$DEV" bs=1M seek=2 oflag=direct status=none ||
	fail "ESHUTDOWN: the write failed"
touch "$TMP/shut.now"
timeout 60 dd if="$DEV" of="$TMP/shut.back" bs=1M skip=2 count=1 iflag=direct status=none ||
	fail "ESHUTDOWN: the read failed: $(dlog "$ID")"
grep -q "ESHUTDOWN sent" "$TMP/shut.log" 2>/dev/null ||
	fail "ESHUTDOWN: the proxy sent none: $(cat "$TMP/shut.err")"
cmp -s "$TMP/shut.data" "$TMP/shut.back" || fail "ESHUTDOWN: the read returned other data"
grep -q "lost: the server is shutting down" "/run/zublk/$ID.log" ||
	fail "ESHUTDOWN: no 'shutting down' line: $(dlog "$ID")"
[ "$(counter "$ID" errors)" = 0 ] || fail "ESHUTDOWN: $(counter "$ID" errors) requests failed"
note "ESHUTDOWN: $(grep -o 'back after.*' "/run/zublk/$ID.log" | tail -1)"
del "$ID"
expect_err "reconnect 'x': not a number of seconds" add -t nbd socket="$TMP/rc.sock" reconnect=x

# 12. A server named by a host name whose name server does not answer:
# add gives up after its 10 s with one line, and del does not wait for the
# resolver (its own time-outs: 30 s here) while a reconnect looks the name
# up.  The daemon runs in a mount namespace of its own whose /etc/hosts
# and /etc/resolv.conf are files here: a name server on 127.0.0.77 that
# takes every query and never answers.
if [ -f /etc/hosts ] && [ -f /etc/resolv.conf ] && command -v unshare >/dev/null; then
	printf '127.0.0.1 localhost\n127.0.0.1 zublk-nbd-name\n' >"$TMP/hosts"
	printf 'nameserver 127.0.0.77\noptions timeout:30 attempts:1\n' >"$TMP/resolv"
	cat >"$TMP/zns" <<SH
#!/bin/sh
exec unshare -m sh -c 'mount --bind "\$1" /etc/hosts && mount --bind "\$2" /etc/resolv.conf &&
	z=\$3 && shift 3 && exec "\$z" "\$@"' sh "$TMP/hosts" "$TMP/resolv" "$Z" "\$@"
SH
	chmod +x "$TMP/zns"
	python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.77", 53))
with open(sys.argv[1], "a") as log:
    print("up", file=log, flush=True)
    while True:
        s.recvfrom(512)
        print("query", file=log, flush=True)' "$TMP/dns.log" 2>"$TMP/dns.err" &
	SERVERS+=($!)
	wait_until 10 test -s "$TMP/dns.log" || fail "the silent name server: $(cat "$TMP/dns.err")"
	ZREAL=$Z
	Z=$TMP/zns
	start=$SECONDS
	expect_err "no address for 'zublk-nowhere' within 10 s" add -t nbd host=zublk-nowhere port=10903
	took=$((SECONDS - start))
	grep -q query "$TMP/dns.log" || fail "host name: the name server was not asked"
	[ $took -lt 25 ] || fail "host name: add took ${took}s to give up"
	note "add with a name server that does not answer: ${took}s"
	truncate -s 16M "$TMP/name.img"
	qnbd_up 10903 name -f raw "$TMP/name.img"
	add -t nbd host=zublk-nbd-name port=10903 export=name reconnect=120 --no-part-scan
	Z=$ZREAL
	is_nbd "$ID" zublk-nbd-name:10903 name $((16 << 20))
	: >"$TMP/dns.log"
	printf '127.0.0.1 localhost\n' >"$TMP/hosts"
	qnbd_down "$SRV"
	dd if="$DEV" of=/dev/null bs=4k count=1 iflag=direct status=none 2>/dev/null &
	dd_pid=$!
	wait_until 20 grep -q query "$TMP/dns.log" ||
		fail "host name: the reconnect did not ask the name server: $(dlog "$ID")"
	kill -0 $dd_pid 2>/dev/null || fail "host name: the read did not wait"
	start=$SECONDS
	timeout 60 "$Z" del -n "$ID" || fail "host name: del failed or took over 60s"
	took=$((SECONDS - start))
	wait_until 10 bash -c "! kill -0 $dd_pid 2>/dev/null" || fail "host name: the read hangs"
	wait $dd_pid && fail "host name: the waiting read succeeded"
	no_devices || fail "host name: a device stayed: $("$Z" list)"
	[ $took -lt 8 ] || fail "host name: del took ${took}s while a reconnect looked the name up"
	note "del while a reconnect's name lookup waited: ${took}s"
else
	skip_check "host name" "no /etc/hosts, /etc/resolv.conf or unshare"
fi
exit 0
