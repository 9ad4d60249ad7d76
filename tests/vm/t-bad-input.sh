# SPDX-License-Identifier: MIT
# Bad input: one clear line naming the cause, a non-zero exit, nothing left.
. "$(dirname "$0")/lib.sh"
truncate -s 64M "$TMP/img"
expect_err "backing file '$TMP/missing.img': No such file or directory" \
	add -t loop -f "$TMP/missing.img"
expect_err "target 'nosuch': unknown" add -t nosuch
expect_err "option 'colour': not an option of target null" add -t null colour=red
expect_err "option 'size2': not an option of target loop" add -t loop -f "$TMP/img" size2=1
expect_err "depth '0': must be 1..4096" add -t null -d 0
expect_err "depth '5000': must be 1..4096" add -t null -d 5000
expect_err "queues '0': must be 1" add -t null -q 0
expect_err "queues '999': must be 1" add -t null -q 999
expect_err "size 'lots': not a size" add -t null size=lots
expect_err "fill 'ones': not zero or none" add -t null fill=ones
expect_err "option 'x...': a control character \\(0x0a\\) in it" add -t null $'x\nI 0=1'
expect_err "-f '/x...': a control character \\(0x0a\\) in it" add -t loop -f $'/x\nR /dev/ublkb7'
# Options a state file could not give back to a recovery whole.
v=$(printf 'v%.0s' $(seq 1000))
expect_err "options: 5, 5020 bytes in all: more than a recovery can read back \\(256, 4096 bytes\\)" \
	add -t null a1=$v a2=$v a3=$v a4=$v a5=$v
s=/dev/shm/$(printf 's%.0s' $(seq 300))
expect_err "shmem: 7 files, their names too long for a recovery to read back \\(2233 bytes, 2048 at most\\)" \
	add -t null --shmem $s.1 --shmem $s.2 --shmem $s.3 --shmem $s.4 --shmem $s.5 --shmem $s.6 \
	--shmem $s.7
# ... also with a device there: the daemon's report of such an option once
# read as that device's id, and add's clean-up deleted it.
add -t null -n 0
timeout 60 "$Z" add -t null $'x\nI 0=1' >"$TMP/out" 2>"$TMP/err" &&
	fail "an option with a newline was taken"
grep -q "a control character (0x0a)" "$TMP/err" || fail "option with a newline: $(cat "$TMP/err")"
state_is 0 LIVE || fail "device 0 is '$(dev_field 0 state)' after a bad add next to it"
# A daemon that accepts no requests (stopped here): five requests fill its
# listen backlog and wait for an answer; the sixth cannot even connect,
# and says so in 5 s instead of waiting for ever.
pid=$(dev_field 0 daemon_pid)
kill -STOP "$pid"
for i in 1 2 3 4 5; do "$Z" mirror fail -n 0 1 >/dev/null 2>&1 & done
sleep 2
t0=$(date +%s)
timeout 30 "$Z" mirror fail -n 0 1 >"$TMP/out" 2>"$TMP/err"
rc=$?
took=$(($(date +%s) - t0))
kill -CONT "$pid"
[ $rc -ne 124 ] || fail "a request to a daemon with a full backlog hung"
grep -q "takes no requests (none accepted for 5 s)" "$TMP/err" ||
	fail "full backlog: $(cat "$TMP/err")"
note "$(cat "$TMP/err") (${took}s)"
wait
del 0
expect_err "copy_max '64M': not a size up to 32M" add -t null copy_max=64M
expect_err "argument 'oops': not an option" add -t null oops
expect_err "mode 'fast': not one of" add -t null --mode fast
expect_err "poll-us 'fast': must be auto, off or 0..1000000" add -t null --poll-us fast
expect_err "poll-us '2000000': must be auto, off or 0..1000000" add -t null --poll-us 2000000
expect_err "no target" add size=1G
expect_err "device 42: no such device" del -n 42
expect_err "device 42: no such device" list -n 42
expect_err "device 42: no such device" list -n 42 --json
expect_err "device 42: no such device" resize -n 42 1G
expect_err "device 42: no such device" mirror fail -n 42 0
expect_err "say which" del
expect_err "device id 'x': not a number from 0 to 1048575" del -n x
expect_err "device id '1048576': not a number from 0 to 1048575" add -t null -n 1048576
expect_err "unknown command 'frobnicate'" frobnicate
# Given twice: a target's key read for one value, an option; -f with file=.
expect_err "option 'size': given more than once" add -t null size=1G size=2G
expect_err "option 'file': given more than once" add -t loop file="$TMP/img" file="$TMP/img"
expect_err "option '-n': given more than once" add -t null -n 5 -n 7
expect_err "option '--mode': given more than once" add -t null --mode copy --mode=copy
expect_err "-f and file= both given" add -t loop -f "$TMP/img" file="$TMP/img"
# The option named as given, not its value or the command.
expect_err "option '--binary': not an option of stop" stop -n 1 --binary x
expect_err "option '-x': unknown or missing its value" list -xj
expect_err "option '--bogus': unknown or missing its value" add -t null --bogus=3
expect_err "argument 'extra': unexpected" help extra
expect_err "needs one node name" udev-owner ublkc0p1
expect_err "port '12abc': not a port number" add -t nbd host=127.0.0.1 port=12abc
expect_err "map_max '4k': only for a backing file mapped in memory" add -t loop -f "$TMP/img" map=0 map_max=4k
mkdir "$TMP/zz"
expect_err "conv_zones 8 \(the default\): leaves none" add -t zoned dir="$TMP/zz" size=64M zone_size=8M
[ ! -e "$TMP/zz" ] || [ -z "$(ls -A "$TMP/zz")" ] || fail "zoned: files left in $TMP/zz"
expect_err "copy_max '4k': only with buffered zone files \(buffered=0\)" \
	add -t zoned dir="$TMP/zz" size=64M zone_size=8M conv_zones=1 buffered=0 copy_max=4k
[ -z "$(ls -A "$TMP/zz")" ] || fail "zoned: files left in $TMP/zz"
expect_err "copy_max '4k': reads are not filled with fill=none" add -t null fill=none copy_max=4k
expect_err "option '-n': given more than once" mirror fail -n 0 -n 1 1
expect_err "option '--timeout': not an option of resize" resize -n 0 --timeout 5 1G
ZUBLK_FEATURE_MASK=0x$(printf '%x' $((0xfffff & ~0x1))) \
	expect_err "mode zero-copy: the running kernel lacks UBLK_F_ZERO_COPY" \
	add -t null --mode zero-copy
ZUBLK_FEATURE_MASK=0x$(printf '%x' $((0xfffff & ~0x800))) \
	expect_err "mode auto-zero-copy: the running kernel lacks UBLK_F_AUTO_BUF_REG" \
	add -t loop -f "$TMP/img" --mode auto-zero-copy
# Each option names its own missing flag, even when the kernel lacks both.
ZUBLK_FEATURE_MASK=0x$(printf '%x' $((0xfffff & ~0x40008))) \
	expect_err "--no-part-scan: the running kernel lacks UBLK_F_NO_AUTO_PART_SCAN" \
	add -t null --no-part-scan --recovery reissue
ZUBLK_FEATURE_MASK=0x$(printf '%x' $((0xfffff & ~0x8))) \
	expect_err "--recovery: the running kernel lacks UBLK_F_USER_RECOVERY" \
	add -t null --no-part-scan --recovery reissue
# An id in use: the second add fails and the first device stays.
add -t null -n 3
timeout 60 "$Z" add -t null -n 3 >/dev/null 2>"$TMP/err" && fail "second add -n 3 succeeded"
grep -q "device 3: already exists" "$TMP/err" || fail "duplicate id: $(cat "$TMP/err")"
[ -b /dev/ublkb3 ] || fail "the first device 3 went away"
del 3
# Deleting a device something holds open times out naming the holder, and
# del --all goes on to the next device; the held device, its daemon and
# its state files go when the holder lets go.
add -t null -n 5
add -t null -n 6
hold_open /dev/ublkb5
timeout 60 "$Z" del --all --timeout 3 >/dev/null 2>"$TMP/err" && fail "del of an open device succeeded"
[ -e /sys/class/ublk-char/ublkc6 ] && fail "del --all left device 6 after device 5 timed out"
kill "$HOLDER"
grep -q "device 5: deleting timed out: /dev/ublkb5 is still open by pid $HOLDER (sleep)" "$TMP/err" ||
	fail "del of an open device: $(cat "$TMP/err")"
[ "$(wc -l <"$TMP/err")" = 1 ] || fail "del of an open device: $(cat "$TMP/err")"
wait_until 20 no_devices || fail "device 5 stayed after its holder closed it: $("$Z" list)"
wait_until 5 no_daemons || fail "a daemon stayed: $(pgrep -a zublk)"
for f in /run/zublk/5.json /run/zublk/5.stats; do
	[ ! -e "$f" ] || fail "device 5's state file $f stayed"
done
note "$(cat "$TMP/err")"
# The same with a file system mounted from the device.
add -t loop -f "$TMP/img" -n 7
mkfs.ext4 -q -F "$DEV" || fail "mkfs.ext4 on device 7"
mkdir -p "$TMP/mnt" && mount "$DEV" "$TMP/mnt" || fail "mounting device 7"
del_held 7 "mounted" "is mounted at $TMP/mnt" umount "$TMP/mnt"
# The same with a device stacked on it, which the kernel holds open for
# itself (no process shows): a dm target, then an md array.
export DM_DISABLE_UDEV=1 # no udev here: libdevmapper makes /dev/mapper nodes
stacked_cleanup() {
	dmsetup remove --retry zublk-test-held >/dev/null 2>&1
	mdadm --stop /dev/md19 >/dev/null 2>&1
	cleanup
}
trap stacked_cleanup EXIT
modprobe dm-mod 2>/dev/null
modprobe raid1 2>/dev/null
add -t null size=64M -n 8
if ! command -v dmsetup >/dev/null; then
	skip_check "a dm target holds the device" "no dmsetup here"
	del 8
elif ! dmsetup create zublk-test-held --table "0 $(blockdev --getsz "$DEV") linear $DEV 0"; then
	skip_check "a dm target holds the device" "dmsetup create failed here"
	del 8
else
	dm=$(dmsetup info -c --noheadings -o blkdevname zublk-test-held)
	del_held 8 "under a dm target" "is used by $dm (zublk-test-held)" \
		dmsetup remove --retry zublk-test-held
fi
truncate -s 64M "$TMP/img9" # md reads back the superblock it writes: not null
add -t loop -f "$TMP/img9" -n 9
if ! command -v mdadm >/dev/null; then
	skip_check "an md array holds the device" "no mdadm here"
	del 9
elif ! mdadm --create /dev/md19 --run --quiet --metadata=1.2 --level=1 --raid-devices=2 \
	"$DEV" missing >"$TMP/md.err" 2>&1; then
	fail "mdadm --create over device 9: $(cat "$TMP/md.err")"
else
	del_held 9 "under an md array" "is used by md19" mdadm --stop --quiet /dev/md19
fi
exit 0
