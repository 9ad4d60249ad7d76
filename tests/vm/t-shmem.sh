# SPDX-License-Identifier: MIT
# Shared-memory zero copy (--shmem, UBLK_F_SHMEM_ZC).  fio does its O_DIRECT
# IO from a shared mapping of the file the daemon registered (iomem=
# mmapshared): every request reaches the target in place, in each data mode
# and with --batch (the shmem_ios counter counts them all, none failed).
# loop: fio's crc32c verification passes, and the backing file holds what
# fio wrote (checked through the kernel's loop driver); stripe and mirror
# (a request cut into sub-ranges) verify too; null's reads come back zeroed
# over a buffer filled with 0xab.  IO from ordinary memory on the same
# device takes the data mode's own path (shmem_ios does not move).  A memfd
# another process holds serves by its /proc/PID/fd/N, one sealed against
# writing is mapped read-only and serves writes.  After kill -9 and
# recover, the registration the device kept still serves.  Bad --shmem
# input fails with one line and leaves nothing behind.
. "$(dirname "$0")/lib.sh"
"$Z" features | grep -qw SHMEM_ZC || skip "the ublk driver lacks UBLK_F_SHMEM_ZC"
mkdir -p "$TMP/shm"
mount -t tmpfs -o size=64M zublk-shm "$TMP/shm" || fail "cannot mount a tmpfs for the shared memory"
trap 'cleanup_shm' EXIT
cleanup_shm() {
	pkill -9 -x fio 2>/dev/null
	timeout 60 "$Z" del --all >/dev/null 2>&1
	umount "$TMP/shm" 2>/dev/null
	cleanup
}
SHM=$TMP/shm/buf
truncate -s 16M "$SHM"
IOMEM=--iomem=mmapshared:$SHM

# shmem_delta ID CMD...: run CMD, print how many requests of device ID
# came through shared memory meanwhile.
shmem_delta() {
	local id=$1 n0
	shift
	n0=$(counter "$id" shmem_ios)
	# Not a count when CMD failed: the caller's number test fails with it.
	"$@" || { echo "FAIL: $1 failed"; return 1; }
	echo $(($(counter "$id" shmem_ios) - n0))
}

truncate -s 128M "$TMP/img"
batch=
"$Z" features | grep -qw BATCH_IO && batch="copy+batch default+batch"
[ -n "$batch" ] || skip_check "--batch with --shmem" "the ublk driver lacks UBLK_F_BATCH_IO"
for mode in copy user-copy zero-copy auto-zero-copy $batch; do
	case $mode in
	*+batch) args="--batch" m=${mode%+batch}; [ "$m" = default ] || args="$args --mode $m" ;;
	*) args="--mode $mode" ;;
	esac
	add -t loop -f "$TMP/img" $args --shmem "$SHM"
	[ "$(dev_json "$ID" '.shmem[0].file')" = "$SHM" ] || fail "$mode: list --json lacks the shmem file"
	[ "$(dev_json "$ID" '.shmem[0].read_only')" = False ] || fail "$mode: the shmem file is read-only"
	dev_json "$ID" '.flags' | grep -q SHMEM_ZC || fail "$mode: device added without SHMEM_ZC"
	sqes_from "$ID"
	n=$(shmem_delta "$ID" fio_ok w --filename="$DEV" $IOMEM --rw=randwrite \
		--bsrange=4k-256k --iodepth=16 --size=32M --verify=crc32c --verify_fatal=1 \
		--do_verify=1)
	sqes_to "$ID"
	# Every read and write; fio's flushes and nothing else come the usual way.
	[ "$n" -gt 0 ] && [ "$n" -ge $((IOS * 9 / 10)) ] ||
		fail "$mode: $n of $IOS requests through shared memory"
	[ "$(counter "$ID" errors)" = 0 ] || fail "$mode: $(counter "$ID" errors) requests failed"
	n2=$(shmem_delta "$ID" fio_ok plain --filename="$DEV" --rw=randwrite --bs=64k \
		--iodepth=8 --offset=64M --size=16M --verify=crc32c --do_verify=1)
	[ "$n2" = 0 ] || fail "$mode: $n2 requests from ordinary memory counted as shared"
	del "$ID"
	note "loop $mode: $n of $IOS requests in shared memory, verified; ordinary memory: 0"
done

# What the device wrote is in the file: read it back through the kernel's loop.
modprobe loop 2>/dev/null
kdev=$(losetup -f --show "$TMP/img") || fail "losetup failed"
fio_ok kloop --filename="$kdev" --rw=randread --bsrange=4k-256k --iodepth=16 --size=32M \
	--verify=crc32c --verify_only
losetup -d "$kdev"
note "the backing file verifies through the kernel's loop driver"

for mode in copy zero-copy auto-zero-copy; do
	add -t null size=1G --mode "$mode" --shmem "$SHM"
	# Dirty the shared buffer: a read that left it would fail the pattern.
	python3 -c "import sys; open(sys.argv[1], 'r+b').write(b'\xab' * (16 << 20))" "$SHM"
	n=$(shmem_delta "$ID" fio_ok r --filename="$DEV" $IOMEM --rw=randread \
		--bsrange=4k-1M --iodepth=8 --size=128M --verify=pattern --verify_pattern=0 \
		--verify_only)
	[ "$n" -gt 0 ] || fail "null $mode: no read through shared memory"
	del "$ID"
	note "null $mode: $n reads in shared memory zeroed"
done

# Many SQEs on sub-ranges of one request in shared memory: stripe splits it
# at 16k chunks, mirror writes both legs from it.
truncate -s 64M "$TMP/a" "$TMP/b"
for t in "stripe chunk=16k" mirror; do
	add -t $t file="$TMP/a" file="$TMP/b" --shmem "$SHM"
	n=$(shmem_delta "$ID" fio_ok s --filename="$DEV" $IOMEM --rw=randwrite --bsrange=4k-256k \
		--iodepth=16 --size=24M --verify=crc32c --verify_fatal=1 --do_verify=1)
	[ "$n" -gt 0 ] || fail "${t%% *}: no request through shared memory"
	[ "$(counter "$ID" errors)" = 0 ] || fail "${t%% *}: $(counter "$ID" errors) requests failed"
	del "$ID"
	note "${t%% *}: $n requests in shared memory, verified"
done

# A memfd another process holds, named by its /proc/PID/fd/N.
python3 -c '
import os, sys, time
fd = os.memfd_create("zublk-test")
os.ftruncate(fd, 16 << 20)
print(fd, flush=True)
time.sleep(600)' >"$TMP/memfd" &
memfd_pid=$!
wait_until 10 test -s "$TMP/memfd" || fail "no memfd"
MEMFD=/proc/$memfd_pid/fd/$(cat "$TMP/memfd")
add -t loop -f "$TMP/img" --shmem "$MEMFD"
n=$(shmem_delta "$ID" fio_ok m --filename="$DEV" --iomem=mmapshared:"$MEMFD" --rw=randwrite \
	--bsrange=4k-256k --iodepth=16 --size=32M --verify=crc32c --verify_fatal=1 --do_verify=1)
[ "$n" -gt 0 ] || fail "memfd: no request through shared memory"
del "$ID"
kill "$memfd_pid"
note "a memfd by /proc/PID/fd/N: $n requests in shared memory, verified"

# A memfd sealed against writing (F_SEAL_FUTURE_WRITE after its owner filled
# it): the daemon maps it read-only and registers it so
# (UBLK_SHMEM_BUF_READ_ONLY), and O_DIRECT writes to the device from a
# read-only mapping of it come through shared memory, the data intact.
# The owner's own mapping stays writable: its O_DIRECT read of the device
# into it takes the data mode's own path and lands right.
python3 -c '
import fcntl, mmap, os, sys, time
fd = os.memfd_create("zublk-ro", os.MFD_ALLOW_SEALING)
os.ftruncate(fd, 16 << 20)
m = mmap.mmap(fd, 16 << 20)
m.write(os.urandom(16 << 20))
fcntl.fcntl(fd, 1033, 2 | 4 | 16)  # F_ADD_SEALS: SHRINK, GROW, FUTURE_WRITE
print(fd, flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.1)
dev = os.open(open(sys.argv[1]).read().strip(), os.O_RDONLY | os.O_DIRECT)
n = os.preadv(dev, [memoryview(m)[0:1 << 20]], 1 << 20)
os.close(dev)
print("read", n, m[0:1 << 20] == m[1 << 20:2 << 20], flush=True)
time.sleep(600)' "$TMP/go" >"$TMP/romemfd" &
ro_pid=$!
wait_until 10 test -s "$TMP/romemfd" || fail "no sealed memfd"
ROFD=/proc/$ro_pid/fd/$(cat "$TMP/romemfd")
add -t loop -f "$TMP/img" --shmem "$ROFD"
perm=$(awk '/memfd:zublk-ro/ { print $2; exit }' "/proc/$(dev_field "$ID" daemon_pid)/maps")
[ "$perm" = r--s ] || fail "sealed memfd: the daemon maps it '$perm', not r--s"
[ "$(dev_json "$ID" '.shmem[0].read_only')" = True ] || fail "sealed memfd: list --json does not say read-only"
n=$(shmem_delta "$ID" python3 -c '
import mmap, os, sys
m = mmap.mmap(os.open(sys.argv[1], os.O_RDONLY), 16 << 20, prot=mmap.PROT_READ)
dev = os.open(sys.argv[2], os.O_WRONLY | os.O_DIRECT)
v = memoryview(m)
for off in range(0, 16 << 20, 64 << 10):
    assert os.pwrite(dev, v[off:off + (64 << 10)], off) == 64 << 10
os.fsync(dev)' "$ROFD" "$DEV")
[ "$n" -ge 256 ] || fail "sealed memfd: $n of 256 writes through shared memory"
[ "$(counter "$ID" errors)" = 0 ] || fail "sealed memfd: $(counter "$ID" errors) requests failed"
cmp <(dd if="$DEV" bs=1M count=16 iflag=direct status=none) "$ROFD" ||
	fail "sealed memfd: the device does not hold what was written from it"
n0=$(counter "$ID" shmem_ios)
echo "$DEV" >"$TMP/go.new" && mv "$TMP/go.new" "$TMP/go"
wait_until 20 grep -q '^read' "$TMP/romemfd" || fail "sealed memfd: its owner's read did not end"
grep -qx 'read 1048576 True' "$TMP/romemfd" ||
	fail "sealed memfd: its owner read '$(grep '^read' "$TMP/romemfd")', not 1 MiB of the device"
[ "$(counter "$ID" shmem_ios)" = "$n0" ] || fail "sealed memfd: a read into it counted as shared"
[ "$(counter "$ID" errors)" = 0 ] || fail "sealed memfd: $(counter "$ID" errors) requests failed"
kill "$ro_pid"
del "$ID"
note "a write-sealed memfd: mapped r--s, $n of 256 writes in shared memory, verified; its owner's read into it the usual way"

# kill -9 mid-IO, recover: the driver kept the registration, the new daemon
# maps the file again and serves from it.
add -t loop -f "$TMP/img" --shmem "$SHM" -n 7
bg_verified k $IOMEM --bs=4k --iodepth=16 --size=32M --verify_backlog=512 --runtime=600
sleep 2
kill -9 "$(dev_field 7 daemon_pid)"
wait_until 20 state_is 7 QUIESCED || fail "not QUIESCED 20 s after kill -9 ($(dev_field 7 state))"
timeout 30 "$Z" recover -n 7 >/dev/null || fail "recover failed"
wait_until 20 state_is 7 LIVE || fail "not LIVE 20 s after recover"
[ "$(dev_json 7 '.shmem[0].file')" = "$SHM" ] || fail "the recovered device lost its shmem file"
sleep 2
bg_fio_stop k
# The new daemon's counters start at 0.
n=$(counter 7 shmem_ios)
[ "$n" -gt 0 ] || fail "after recovery: no request through shared memory"
[ "$(counter 7 errors)" = 0 ] || fail "after recovery: $(counter 7 errors) requests failed"
del 7
note "kill -9 and recover under fio: verified, $n requests in shared memory since"

# A file removed and made again (same path, same size) is another file:
# the driver still holds the old one's pages.  recover refuses it in one
# line and leaves the device for a next try; del still works.
truncate -s 1M "$TMP/shm/again"
add -t null --shmem "$TMP/shm/again" -n 7
kill -9 "$(dev_field 7 daemon_pid)"
wait_until 20 state_is 7 QUIESCED || fail "again: not QUIESCED 20 s after kill -9 ($(dev_field 7 state))"
rm "$TMP/shm/again"
truncate -s 1M "$TMP/shm/again"
timeout 60 "$Z" recover -n 7 >"$TMP/out" 2>"$TMP/err" && fail "recover took a file made again"
[ "$(wc -l <"$TMP/err")" = 1 ] || fail "recover said: $(cat "$TMP/err")"
grep -q "shmem .*/again: not the file the device registered" "$TMP/err" ||
	fail "recover: $(cat "$TMP/err")"
state_is 7 QUIESCED || fail "after the refused recover: $(dev_field 7 state)"
wait_until 5 no_daemons || fail "a daemon is left: $(pgrep -a zublk)"
note "$(cat "$TMP/err")"
del 7

# The same file at another size: the driver serves the pages it registered.
# recover refuses it; given its size back, recover serves it.
truncate -s 1M "$TMP/shm/sized"
add -t null --shmem "$TMP/shm/sized" -n 7
kill -9 "$(dev_field 7 daemon_pid)"
wait_until 20 state_is 7 QUIESCED || fail "sized: not QUIESCED 20 s after kill -9"
truncate -s 2M "$TMP/shm/sized"
timeout 60 "$Z" recover -n 7 >"$TMP/out" 2>"$TMP/err" && fail "recover took a file of another size"
grep -q "shmem .*/sized: 2097152 bytes now, 1048576 when the device registered it" "$TMP/err" ||
	fail "recover: $(cat "$TMP/err")"
note "$(cat "$TMP/err")"
truncate -s 1M "$TMP/shm/sized"
timeout 60 "$Z" recover -n 7 >/dev/null 2>"$TMP/err" || fail "recover at the old size: $(cat "$TMP/err")"
wait_until 20 state_is 7 LIVE || fail "sized: not LIVE 20 s after recover"
del 7

ZUBLK_FEATURE_MASK=0xfffffffffff7ffff expect_err "shmem: the running kernel lacks UBLK_F_SHMEM_ZC" \
	add -t null --shmem "$SHM"
expect_err "shmem .*/nonexistent: No such file" add -t null --shmem "$TMP/nonexistent"
truncate -s 5000 "$TMP/shm/odd"
expect_err "shmem .*odd: size 5000: must be a multiple of 4096" add -t null --shmem "$TMP/shm/odd"
expect_err "shmem /dev/zero: not a regular file" add -t null --shmem /dev/zero
expect_err "--shmem .*: a control character \\(0x0a\\) in it" add -t null --shmem "$TMP/a
b"
expect_err "shmem .*: UBLK_U_CMD_REG_BUF: .*its pages are registered already" add -t null --shmem "$SHM" --shmem "$SHM"
exit 0
