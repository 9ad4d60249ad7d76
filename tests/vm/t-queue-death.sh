# SPDX-License-Identifier: MIT
# A queue thread that dies (debug-exit-queue) while its target holds
# requests, on a device without recovery (the other dead-thread scenarios
# run with the default recovery, which leaves the device to a new daemon):
# the daemon brings the device down and ends in bounded time, the reads
# fail, nothing is left.  Its stop waits for the dead thread's requests,
# which only the device's release ends: it gives up after the control
# command's 30 s, and the other queue's thread must end then too.
. "$(dirname "$0")/lib.sh"
for t in python3 taskset; do
	command -v $t >/dev/null || skip "no $t"
done
fits_cpus 2 || skip "needs 2 CPUs"
# Reads wait 100 s in the server.
slow_nbd 100
add -t nbd socket="$TMP/s.sock" timeout=0 -q 2 --recovery off --no-part-scan
pid=$(dev_field "$ID" daemon_pid)
# A read waiting on each queue (one from each CPU).
readers=()
for c in 0 1; do
	taskset -c $c dd if="$DEV" of=/dev/null bs=4k count=1 skip=$c iflag=direct status=none \
		2>/dev/null &
	readers+=($!)
done
sleep 2
kill -0 "${readers[@]}" 2>/dev/null || fail "the reads did not wait"
exit_queue "$ID" 0
start=$SECONDS
wait_until 90 sh -c "! kill -0 $pid 2>/dev/null" ||
	fail "the daemon still runs 90 s after its queue 0 thread died: $(tail -3 "/run/zublk/$ID.log" 2>/dev/null)"
took=$((SECONDS - start))
gone() { for r in "${readers[@]}"; do kill -0 "$r" 2>/dev/null && return 1; done; return 0; }
wait_until 10 gone || fail "the reads still wait"
[ ! -e "$DEV" ] || fail "$DEV still there"
no_devices || fail "a device stayed: $("$Z" list)"
note "queue 0's thread died holding a request, no recovery: the daemon ended after ${took}s"
exit 0
