# SPDX-License-Identifier: MIT
# Polling before sleeping: adaptive by default, off, or a fixed window;
# list --json says which and counts the looks that found work; a recovery
# keeps it; data stays right while queues poll.
. "$(dirname "$0")/lib.sh"
truncate -s 64M "$TMP/img"
add -t null size=1G
[ "$(dev_field 0 poll)/$(dev_field 0 poll_us)" = auto/100 ] ||
	fail "default: poll $(dev_field 0 poll) $(dev_field 0 poll_us)"
add -t null size=1G --poll-us off
[ "$(dev_field 1 poll)/$(dev_field 1 poll_us)" = off/0 ] || fail "--poll-us off: $(dev_field 1 poll)"
add -t null size=1G --poll-us 0
[ "$(dev_field 2 poll)" = off ] || fail "--poll-us 0: $(dev_field 2 poll)"
add -t null size=1G --poll-us 200
[ "$(dev_field 3 poll)/$(dev_field 3 poll_us)" = fixed/200 ] || fail "--poll-us 200: $(dev_field 3 poll)"

for id in 1 3; do
	fio_ok qd32 --filename=/dev/ublkb$id --rw=randread --bs=4k --iodepth=32 --time_based --runtime=2
done
# Off: never looks, sleeps.  A fixed window at QD32: some looks find work.
[ "$(counter 1 polls)" = 0 ] || fail "--poll-us off polled $(counter 1 polls) times"
[ "$(counter 1 sleeps)" -gt 0 ] || fail "--poll-us off never slept"
[ "$(counter 3 polls)" -gt 0 ] || fail "--poll-us 200 found no work by looking (sleeps $(counter 3 sleeps))"
note "off: $(counter 1 sleeps) sleeps for $(counter 1 ios) IOs; 200 us: $(counter 3 polls) looks found work, $(counter 3 sleeps) sleeps for $(counter 3 ios) IOs"
"$Z" del --all >/dev/null || fail "del --all"

# Data while polling: loop, adaptive and always, both queues, fio's own check.
queues_upto 2
for p in auto 100; do
	add -t loop -f "$TMP/img" -q $q --poll-us $p
	fio_ok verify-$p --filename="$DEV" --rw=randrw --bsrange=512-64k --iodepth=16 --numjobs=$q \
		--size=32M --offset_increment=32M --verify=crc32c --verify_fatal=1 --group_reporting
	del "$ID"
done

# A recovery keeps polling off.
add -t loop -f "$TMP/img" --poll-us off
kill -9 "$(dev_field "$ID" daemon_pid)"
wait_until 20 state_is "$ID" QUIESCED || fail "not quiesced"
timeout 30 "$Z" recover -n "$ID" >/dev/null || fail "recover"
[ "$(dev_field "$ID" poll)" = off ] || fail "recovered with poll $(dev_field "$ID" poll)"
exit 0
