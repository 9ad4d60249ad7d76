# SPDX-License-Identifier: MIT
# Threads serving queues: with a queue per CPU, one thread serves two
# queues by default (one ring, both queues' tags); --threads sets the count.
# Data stays right on every queue of a shared thread in every data mode,
# each queue gets its own requests, a recovery keeps the count, a thread
# told to quit takes its queues with it in bounded time.
. "$(dirname "$0")/lib.sh"
ncpu=$(nproc)
[ "$ncpu" -ge 2 ] || skip "needs 2 CPUs for 2 queues, this machine has $ncpu"
truncate -s 64M "$TMP/img"

# threads_of PID: the queue threads' names, sorted
threads_of() { cat /proc/"$1"/task/*/comm | grep '^zublk-q' | sort | tr '\n' ' '; }
# queue_ios ID: each queue's committed requests, from the daemon's stats file
# (a 16-byte header, then one record per queue, its ios first)
queue_ios() {
	python3 - "/run/zublk/$1.stats" <<'EOF'
import struct, sys
d = open(sys.argv[1], 'rb').read()
magic, n = struct.unpack_from('<QI', d, 0)
rec = (len(d) - 16) // n
print(' '.join(str(struct.unpack_from('<Q', d, 16 + q * rec)[0]) for q in range(n)))
EOF
}

# The default with a queue per CPU: half as many threads as queues.
add -t null size=1G -q "$ncpu"
want=$(((ncpu + 1) / 2))
[ "$(dev_field "$ID" threads)" = "$want" ] || fail "-q $ncpu: threads $(dev_field "$ID" threads), want $want"
pid=$(dev_field "$ID" daemon_pid)
n=$(threads_of "$pid" | wc -w)
[ "$n" = "$want" ] || fail "-q $ncpu: $n queue threads ($(threads_of "$pid")), want $want"
[ "$ncpu" -gt 2 ] || [ "$(threads_of "$pid")" = "zublk-q0-1 " ] || fail "thread names: $(threads_of "$pid")"
note "-q $ncpu: $(threads_of "$pid")"
del "$ID"

# Asked for: one per queue, and one for all.
add -t null size=1G -q 2 --threads 2
[ "$(dev_field "$ID" threads)" = 2 ] || fail "--threads 2: threads $(dev_field "$ID" threads)"
pid=$(dev_field "$ID" daemon_pid)
[ "$(threads_of "$pid")" = "zublk-q0 zublk-q1 " ] || fail "--threads 2: $(threads_of "$pid")"
del "$ID"

# Data on both queues of one thread, each data mode: fio's own check, a job
# per CPU (the block layer maps a CPU to its queue).
for mode in copy user-copy zero-copy auto-zero-copy; do
	out=$("$Z" add -t loop -f "$TMP/img" -q 2 --threads 1 --mode $mode 2>&1) ||
		fail "add --mode $mode: $out"
	id=${out#/dev/ublkb}
	[ "$(dev_field "$id" threads)" = 1 ] || fail "$mode: threads $(dev_field "$id" threads)"
	fio_ok verify-$mode --filename="$out" --rw=randrw --bsrange=512-128k --iodepth=16 \
		--numjobs=2 --cpus_allowed=0-1 --cpus_allowed_policy=split --size=32M \
		--offset_increment=32M --verify=crc32c --verify_fatal=1 --group_reporting
	read -r q0 q1 <<<"$(queue_ios "$id")"
	[ "${q0:-0}" -gt 0 ] && [ "${q1:-0}" -gt 0 ] || fail "$mode: requests per queue $q0 / $q1"
	note "$mode: requests on queue 0 / 1: $q0 / $q1"
	del "$id"
done

# A recovery serves the queues with as many threads as before.
add -t loop -f "$TMP/img" -q 2 --threads 1
kill -9 "$(dev_field "$ID" daemon_pid)"
wait_until 20 state_is "$ID" QUIESCED || fail "not quiesced"
timeout 30 "$Z" recover -n "$ID" >/dev/null || fail "recover"
[ "$(dev_field "$ID" threads)" = 1 ] || fail "recovered with threads $(dev_field "$ID" threads)"
pid=$(dev_field "$ID" daemon_pid)
[ "$(threads_of "$pid")" = "zublk-q0-1 " ] || fail "recovered: $(threads_of "$pid")"
fio_ok after-recover --filename="$DEV" --rw=randrw --bs=4k --iodepth=16 --numjobs=2 \
	--cpus_allowed=0-1 --cpus_allowed_policy=split --size=16M --offset_increment=32M \
	--verify=crc32c --verify_fatal=1 --group_reporting

# A shared thread that quits (as if it died) under load: both of its queues
# go with it, fio ends with errors or a device held for recovery, no hang.
fio --name=load --ioengine=io_uring --direct=1 --filename="$DEV" --rw=randread --bs=4k \
	--iodepth=32 --numjobs=2 --cpus_allowed=0-1 --cpus_allowed_policy=split \
	--time_based --runtime=30 >"$TMP/load.log" 2>&1 &
fpid=$!
sleep 2
exit_queue "$ID" 1
wait_until 20 bash -c "! $Z list -n $ID --json | grep -q '\"LIVE\"'" || fail "still LIVE after the thread quit"
note "after the thread of queues 0-1 quit: $(dev_field "$ID" state)"
timeout 60 "$Z" del -n "$ID" >/dev/null || fail "del after the thread quit"
wait_until 60 sh -c "! kill -0 $fpid 2>/dev/null" || fail "fio hung after the thread quit"
wait "$fpid"
wait_until 30 sh -c "! kill -0 $pid 2>/dev/null" || fail "daemon $pid still there"
exit 0
