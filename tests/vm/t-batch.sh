# SPDX-License-Identifier: MIT
# --batch (UBLK_F_BATCH_IO): loop verifies with crc32c in every data mode
# with 1 and 2 queues, and the commits really are batched (fewer SQEs than
# requests where the target adds none); kill -9 under fio verify and
# recover keeps the batch flag and the data; del under load ends in bounded
# time; on a kernel without it, --batch fails with one line and no device.
. "$(dirname "$0")/lib.sh"
"$Z" features | grep -q BATCH_IO || skip "the running kernel has no UBLK_F_BATCH_IO"
has_flag() { [ "$(dev_json "$1" "any(.flags[]; . == \"$2\")")" = True ]; }

truncate -s 128M "$TMP/img"
for mode in copy user-copy zero-copy auto-zero-copy; do
	for q in 1 2; do
		fits_cpus "$q" || continue
		add -t loop -f "$TMP/img" --mode "$mode" -q "$q" --batch
		has_flag "$ID" BATCH_IO || fail "$mode: no BATCH_IO in the device's flags"
		fio_ok v --filename="$DEV" --rw=randwrite --bsrange=512-128k --iodepth=32 \
			--size=32M --verify=crc32c --do_verify=1 --verify_fatal=1 --numjobs="$q" \
			--offset_increment=64M
		cmp <(dd if="$DEV" bs=1M iflag=direct status=none) "$TMP/img" ||
			fail "$mode q=$q: device and file differ"
		del "$ID"
		note "loop $mode q=$q --batch: verified"
	done
done

# null in user-copy mode adds no SQE of its own: without batching a request
# costs one (its commit), batched far less.  fio submits 64 at a time and
# waits for all 64 before it submits again, so that requests come in groups
# however fast the daemon is (submitted 16 at a time with no wait, a daemon
# that kept up committed nearly one at a time: 0.95 SQEs per request once).
add -t null --mode user-copy --batch size=1G
sqes_from "$ID"
fio_ok r --filename="$DEV" --rw=randread --bs=4k --iodepth=64 --iodepth_batch_submit=64 \
	--iodepth_batch_complete_min=64 --size=256M --number_ios=20000
sqes_to "$ID"
[ "$IOS" -ge 20000 ] || fail "$IOS requests counted for 20000 reads"
# Measured 0.03 SQEs per request this way (3 runs, one boot); one a request
# would be no batching at all.
[ $((SUB * 2)) -le "$IOS" ] || fail "$SUB SQEs for $IOS requests: commits not batched"
del "$ID"
note "null --batch: $SUB SQEs for $IOS requests"

# A batched queue looks for work before it sleeps, as an unbatched one does.
# Its commits take a turn of their own, and an adaptive probe once fell on
# that turn every time: it never looked again once a look missed (0 of 3.1M
# requests found by looking; QD1 at a quarter of the default's speed).
# While its looks miss, a queue still looks on every 16th sleep, so where
# an unbatched queue's looks find work (the host answers within the
# window), a batched queue's find some too.  How many is a matter of speed,
# for the bench's --batch rows: the adaptive look stays on while 3/4 of
# looks find work, and a round trip a little longer can turn it off.
# share ID: FOUND = requests found by looking over a QD1 run, SHARE = that
# per request, in percent
share() {
	local ios0 polls0
	ios0=$(counter "$1" ios) polls0=$(counter "$1" polls)
	fio_ok qd1 --filename=/dev/ublkb"$1" --rw=randread --bs=4k --iodepth=1 --time_based \
		--runtime=2
	FOUND=$(($(counter "$1" polls) - polls0))
	SHARE=$((FOUND * 100 / ($(counter "$1" ios) - ios0)))
}
add -t null size=1G
share "$ID"
plain=$SHARE
del "$ID"
add -t null size=1G --batch
share "$ID"
batched=$SHARE found=$FOUND
del "$ID"
# Where even the unbatched queue's looks mostly miss (a host too slow to
# answer within the window), the probes may miss too.
if [ "$plain" -ge 20 ]; then
	[ "$found" -ge 5 ] ||
		fail "QD1: $found of --batch's requests found by looking ($batched %), $plain % without --batch"
	note "QD1: $found of --batch's requests found by looking ($batched %), $plain % without"
else
	skip_check "QD1 looks, --batch vs unbatched" \
		"only $plain % of an unbatched queue's requests found by looking here (needs 20 %)"
fi

# kill -9 and recover under fio verify: the recovered daemon batches too.
add -t loop -f "$TMP/img" --batch -n 0
bg_verified v --bs=4k --iodepth=32 --size=64M --verify_backlog=1024
for cycle in 1 2; do
	sleep 2
	fio_running || fail "fio died: $(grep -E 'err|verify' "$TMP/v.log" | head -3)"
	kill -9 "$(dev_field 0 daemon_pid)"
	wait_until 20 state_is 0 QUIESCED || fail "cycle $cycle: not QUIESCED 20s after kill"
	timeout 30 "$Z" recover -n 0 >/dev/null || fail "cycle $cycle: recover failed"
	wait_until 20 state_is 0 LIVE || fail "cycle $cycle: not LIVE 20s after recover"
	has_flag 0 BATCH_IO || fail "cycle $cycle: recovered without BATCH_IO"
done
sleep 2
ios0=$(counter 0 ios)
sleep 1
[ "$(counter 0 ios)" -gt "$ios0" ] || fail "the recovered daemon serves no requests"
bg_fio_stop v
grep -qi "verify.*bad\|crc32c.*wanted" "$TMP/v.log" && fail "verify mismatch"
note "kill -9 and recover twice under fio verify: no error"

del_under_load "--batch"

# A kernel without it (masked): one line, no device.
ZUBLK_FEATURE_MASK=0x$(printf "%x" $((0xfffff & ~0x8000))) "$Z" add -t null --batch >/dev/null 2>"$TMP/err" &&
	fail "--batch accepted without BATCH_IO"
[ "$(wc -l <"$TMP/err")" = 1 ] || fail "--batch without BATCH_IO: $(cat "$TMP/err")"
grep -q BATCH_IO "$TMP/err" || fail "the error does not name BATCH_IO: $(cat "$TMP/err")"
note "$(cat "$TMP/err")"
no_devices || fail "a device was left"
exit 0
