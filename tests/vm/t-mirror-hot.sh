# SPDX-License-Identifier: MIT
# A rebuild under writes that never leave its window: fio keeps 16 writes
# in flight on the first MiB, the window the rebuild copies first, and each
# takes 50 ms (dm-delay on the leg copied from), so some write into the
# window is always in flight.  After 100 ms the window is held (new writes
# into it wait) until its copy stands, so the rebuild ends while fio
# writes on.  A second job writes and verifies in the same window (its
# verify reads leave the first job's writes in flight), and after del the
# legs are identical.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/raid-lib.sh"
modprobe dm-delay 2>/dev/null || skip "no dm-delay module"
truncate -s 8M "$TMP/a" "$TMP/b" "$TMP/c"
dm_leg a "$TMP/a"
A=$DM_DEV
dm_table a "delay ${DM_LOOP[a]} 0 0 ${DM_LOOP[a]} 0 50"
add -t mirror file="$A" file="$TMP/b" -n 0
bg_fio w --filename="$DEV" --rw=randwrite --bs=4k --iodepth=16 --size=512k --time_based \
	--runtime=300 \
	--name=v --ioengine=io_uring --direct=1 --filename="$DEV" --rw=randwrite --bs=4k \
	--iodepth=4 --offset=512k --size=512k --time_based --runtime=300 \
	--verify=crc32c --verify_backlog=64 --verify_fatal=1
sleep 2
fio_running || fail "fio ended early: $(tail -3 "$TMP/w.log")"
"$Z" mirror replace -n 0 1 "$TMP/c" >"$TMP/out" 2>&1 || fail "replace: $(cat "$TMP/out")"
t0=$(date +%s)
wait_until 20 rebuild_done 0 1 ||
	fail "a window written without pause kept the rebuild from ending: $(dev_json 0 .rebuild)"
note "rebuilt in $(($(date +%s) - t0)) s while fio wrote into its first window"
bg_fio_stop w
[ "$(grep -c "err= 0" "$TMP/w.log")" = 2 ] || fail "fio: $(grep err= "$TMP/w.log")"
note "$(grep -E "write:" "$TMP/w.log" | head -3 | tr -s " ")"
[ "$(dev_errors 0)" = 0 ] || fail "$(dev_errors 0) requests ended in error"
del 0
cmp "$A" "$TMP/c" || fail "legs differ after the rebuild"
note "legs identical"
