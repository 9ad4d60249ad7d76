# SPDX-License-Identifier: MIT
# A user other than root adds, uses and deletes a device
# (UBLK_F_UNPRIVILEGED_DEV),
# with zublk's own udev rule (udev/90-zublk.rules) run by a real udevd:
# /dev/ublk-control opens for all, the new device's nodes are the user's,
# the device is in copy mode and the user's state directory; fio verifies
# as the user, over loop and over nbd; what the driver keeps from users (zero copy, recovery,
# zoned, integrity, upgrade) is refused in one line each; root sees and
# deletes a user's device (--async: waits, and says so); the user cannot
# touch root's; a user's daemon killed leaves a device that the user
# deletes; a state directory another user made first is not believed;
# without the rule a user gets one line and nothing is left.
. "$(dirname "$0")/lib.sh"
UDEVD=/lib/systemd/systemd-udevd
[ -x $UDEVD ] && command -v udevadm >/dev/null || skip "no systemd-udevd / udevadm"
command -v setpriv >/dev/null || skip "no setpriv"
"$Z" features | grep -q UNPRIVILEGED_DEV || skip "the driver has no UBLK_F_UNPRIVILEGED_DEV"
[ ! -e /run/udev ] || skip "a udev is there already (this scenario runs its own)"
U=4321
RULES=/run/udev/rules.d/90-zublk.rules
# The VM's root is an overlay that systemd's tools take for a chroot.
export SYSTEMD_IGNORE_CHROOT=1
unpriv_cleanup() {
	pkill -9 -u $U 2>/dev/null
	cleanup
	pkill -x systemd-udevd 2>/dev/null
	wait_until 10 bash -c '! pgrep -x systemd-udevd' >/dev/null
	pkill -9 -x systemd-udevd 2>/dev/null
	# Its socket would tell later scenarios (libdevmapper) that udev runs.
	rm -rf /run/udev
	chmod 0600 /dev/ublk-control
	rm -rf /tmp/zublk-$U
}
trap unpriv_cleanup EXIT

# as_user CMD...: CMD as uid/gid $U, no other group, no XDG_RUNTIME_DIR
as_user() { setpriv --reuid=$U --regid=$U --clear-groups env -u XDG_RUNTIME_DIR "$@"; }
# uadd ARGS...: `zublk add ARGS` as the user -> DEV, ID
uadd() {
	DEV=$(as_user "$Z" add "$@" 2>"$TMP/add.err") || fail "add $* as uid $U: $(cat "$TMP/add.err")"
	ID=${DEV#/dev/ublkb}
	[ -b "$DEV" ] || fail "add $* as uid $U: $DEV is not a block device"
}
owner_is() { [ "$(stat -c %u:%g "$1")" = "$U:$U" ]; }
# uerr PATTERN ARGS...: `zublk ARGS` as the user fails in one line matching
# PATTERN, and leaves no device
uerr() {
	local pat=$1 rc
	shift
	as_user timeout 60 "$Z" "$@" >"$TMP/out" 2>"$TMP/err"
	rc=$?
	[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "zublk $* as uid $U: exit $rc"
	[ "$(wc -l <"$TMP/err")" -eq 1 ] || fail "zublk $* as uid $U: $(cat "$TMP/err")"
	grep -qE -- "$pat" "$TMP/err" || fail "zublk $* as uid $U: '$(cat "$TMP/err")' !~ '$pat'"
	no_devices || fail "zublk $* as uid $U: left a device: $("$Z" list)"
	note "$(cat "$TMP/err")"
}

# udevd with zublk's rule (its program: this build's zublk).
mkdir -p /run/udev/rules.d
sed "s|@SBINDIR@|$(dirname "$Z")|" "$ROOT/udev/90-zublk.rules" >$RULES
$UDEVD --daemon 2>"$TMP/udevd.err" || skip "udevd: $(cat "$TMP/udevd.err")"
wait_until 10 pgrep -x systemd-udevd >/dev/null || skip "udevd did not start"
udevadm trigger --action=add --subsystem-match=misc --sysname-match=ublk-control
udevadm settle -t 20
[ "$(stat -c %a /dev/ublk-control)" = 666 ] ||
	fail "the rule left /dev/ublk-control $(stat -c %a /dev/ublk-control)"

# 1. A loop device of the user's, verified by fio run as the user.
UT=$TMP/u
chmod 711 "$TMP" && mkdir "$UT" && truncate -s 256M "$UT/disk.img" &&
	chown -R $U:$U "$UT" || fail "user dir"
uadd -t loop -f "$UT/disk.img"
pid=$(as_user "$Z" list -n "$ID" --json | jq -r '.[0].daemon_pid')
udevadm settle -t 20
wait_until 10 owner_is "$DEV" || fail "$DEV is $(stat -c %u:%g "$DEV")"
owner_is "/dev/ublkc$ID" || fail "/dev/ublkc$ID is $(stat -c %u:%g "/dev/ublkc$ID")"
owner_is "$DEV" || fail "$DEV is $(stat -c %u:%g "$DEV")"
[ "$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")" = $U ] || fail "daemon $pid is not uid $U"
# A partition's node (one the user makes with partx) is the device's.
"$Z" udev-owner "ublkb${ID}p1" | grep -qx "ZUBLK_OWNER=$U" ||
	fail "udev-owner ublkb${ID}p1: $("$Z" udev-owner "ublkb${ID}p1" 2>&1)"
js=$(as_user "$Z" list -n "$ID" --json)
[ "$(jq -r '.[0].mode' <<<"$js")" = copy ] || fail "mode: $(jq -r '.[0].mode' <<<"$js")"
[ "$(jq -r '.[0].owner_uid' <<<"$js")" = $U ] || fail "owner_uid: $(jq '.[0].owner_uid' <<<"$js")"
jq -e '.[0].flags | index("UNPRIVILEGED_DEV")' <<<"$js" >/dev/null ||
	fail "flags: $(jq -c '.[0].flags' <<<"$js")"
[ "$(jq -r '.[0].target' <<<"$js")" = loop ] || fail "no state for the user: $js"
[ "$(dev_field "$ID" target)" = loop ] ||
	fail "root's list has no state for it: $(dev_json "$ID" .)"
[ -S /tmp/zublk-$U/$ID.sock ] && [ "$(stat -c %u:%a /tmp/zublk-$U)" = $U:700 ] ||
	fail "the user's state directory: $(ls -la /tmp/zublk-$U 2>&1)"
as_user fio --name=v --filename="$DEV" --ioengine=io_uring --direct=1 --rw=randwrite \
	--bsrange=4k-128k --iodepth=16 --size=64M --verify=crc32c --do_verify=1 \
	--verify_fatal=1 >"$FIO_LOG" 2>&1 || fail "fio as uid $U: $(grep -E 'err=|verify' "$FIO_LOG")"
grep -q "err= 0" "$FIO_LOG" || fail "fio as uid $U: $(grep err= "$FIO_LOG")"
as_user mkfs.ext4 -q -F "$DEV" || fail "mkfs.ext4 as uid $U"
as_user fsck.ext4 -fn "$DEV" >/dev/null 2>&1 || fail "fsck.ext4 as uid $U"
note "uid $U: loop device $DEV in copy mode, nodes its own, fio verified, ext4 made"
as_user timeout 60 "$Z" del -n "$ID" || fail "del as uid $U"
[ ! -e "$DEV" ] && [ ! -e "/dev/ublkc$ID" ] || fail "the nodes stayed after del"
wait_until 10 bash -c "! kill -0 $pid 2>/dev/null" || fail "daemon $pid stayed"
no_devices || fail "a device stayed: $("$Z" list)"

# ... and an NBD export the user serves itself (nbdkit run as the user),
# in the copy mode the nbd target falls back to for a user.
if command -v nbdkit >/dev/null && nbdkit memory --help >/dev/null 2>&1; then
	as_user nbdkit -f -U "$UT/nbd.sock" -P "$UT/nbd.pid" memory 64M 2>"$TMP/nbdkit.log" &
	wait_until 20 test -s "$UT/nbd.pid" || fail "nbdkit as uid $U: $(cat "$TMP/nbdkit.log")"
	uadd -t nbd socket="$UT/nbd.sock"
	[ "$(dev_field "$ID" mode)" = copy ] || fail "nbd as uid $U: mode $(dev_field "$ID" mode)"
	as_user fio --name=n --filename="$DEV" --ioengine=io_uring --direct=1 --rw=randwrite \
		--bsrange=4k-256k --iodepth=8 --size=16M --verify=crc32c --do_verify=1 \
		--verify_fatal=1 >"$FIO_LOG" 2>&1 ||
		fail "fio over nbd as uid $U: $(grep -E 'err=|verify' "$FIO_LOG")"
	as_user timeout 60 "$Z" del -n "$ID" || fail "del of the nbd device as uid $U"
	kill "$(cat "$UT/nbd.pid")"
	note "uid $U: nbd device over its own nbdkit, fio verified"
else
	skip_check "nbd as a user" "no nbdkit memory plugin"
fi

# 2. What the driver keeps from users: one line each, no device left.
mkdir "$UT/z" && chown $U:$U "$UT/z"
uerr "mode zero-copy: a device added by a user other than root can only copy" \
	add -t loop -f "$UT/disk.img" --mode zero-copy
uerr "recovery reissue: a device added by a user other than root cannot have it" \
	add -t null --recovery reissue
uerr "target zoned: cannot serve a device added by a user other than root" \
	add -t zoned dir="$UT/z" size=64M zone_size=8M
uerr "integrity metadata: not for a device added by a user other than root" \
	add -t loop -f "$UT/disk.img" meta="$UT/disk.meta"
[ ! -e "$UT/disk.meta" ] || fail "a refused add left $UT/disk.meta"

# 3. Root sees and deletes a user's device (its commands carry the node's
# path too); the user cannot touch root's device, nor upgrade its own.
uadd -t null
pid=$(as_user "$Z" list -n "$ID" --json | jq -r '.[0].daemon_pid')
[ "$(dev_field "$ID" owner_uid)" = $U ] ||
	fail "root's list: owner_uid $(dev_field "$ID" owner_uid)"
uid=$ID
add -t null
as_user timeout 60 "$Z" del -n "$ID" >/dev/null 2>"$TMP/err" && fail "uid $U deleted root's device"
[ "$(wc -l <"$TMP/err")" -eq 1 ] || fail "del of root's device as uid $U: $(cat "$TMP/err")"
state_is "$ID" LIVE || fail "root's device after uid $U's del: $(dev_field "$ID" state)"
note "$(cat "$TMP/err")"
del "$ID"
as_user timeout 60 "$Z" upgrade -n "$uid" >/dev/null 2>"$TMP/err" && fail "upgrade as uid $U"
[ "$(wc -l <"$TMP/err")" -eq 1 ] || fail "upgrade as uid $U: $(cat "$TMP/err")"
state_is "$uid" LIVE || fail "after a refused upgrade: $(dev_field "$uid" state)"
note "$(cat "$TMP/err")"
ID=$uid
timeout 60 "$Z" del --async -n "$ID" 2>"$TMP/err" || fail "root's del of uid $U's device"
grep -q "no --async" "$TMP/err" && [ "$(wc -l <"$TMP/err")" -eq 1 ] ||
	fail "del --async of a user's device said: $(cat "$TMP/err")"
wait_until 10 bash -c "! kill -0 $pid 2>/dev/null" || fail "daemon $pid stayed"
no_devices || fail "a device stayed: $("$Z" list)"
note "root deleted uid $U's device (--async: $(cat "$TMP/err"))"

# 4. The user's daemon killed: the driver stops the device (no recovery for
# it), IO fails, the user deletes it.
uadd -t null
pid=$(as_user "$Z" list -n "$ID" --json | jq -r '.[0].daemon_pid')
kill -9 "$pid"
wait_until 20 state_is "$ID" DEAD || fail "after kill -9: state $(dev_field "$ID" state)"
as_user timeout 60 "$Z" del -n "$ID" || fail "del as uid $U after kill -9"
no_devices || fail "a device stayed: $("$Z" list)"
note "daemon killed: the device went DEAD, the user deleted it"

# 5. Another user made the user's state directory (/tmp/zublk-UID, as no
# XDG_RUNTIME_DIR is set) first: nothing there is believed.  The daemon
# keeps no state, the user's list does not read the other's file, and a
# request names the directory.
U2=4322
rm -rf /tmp/zublk-$U
mkdir -m 755 /tmp/zublk-$U && chown $U2:$U2 /tmp/zublk-$U || fail "uid $U2's directory"
uadd -t null
printf '{"id":%s,"target":"planted"}\n' "$ID" >/tmp/zublk-$U/$ID.json
chown $U2:$U2 /tmp/zublk-$U/$ID.json
js=$(as_user "$Z" list -n "$ID" --json)
[ "$(jq -r '.[0].target' <<<"$js")" != planted ] ||
	fail "uid $U's list read uid $U2's state file: $js"
as_user timeout 60 "$Z" resize -n "$ID" 1G >/dev/null 2>"$TMP/err" &&
	fail "resize with a state directory of uid $U2's"
grep -q "state directory /tmp/zublk-$U: not a directory of yours or root's" "$TMP/err" &&
	[ "$(wc -l <"$TMP/err")" -eq 1 ] || fail "resize said: $(cat "$TMP/err")"
note "$(cat "$TMP/err")"
as_user timeout 60 "$Z" del -n "$ID" || fail "del with a state directory of uid $U2's"
no_devices || fail "a device stayed: $("$Z" list)"
rm -rf /tmp/zublk-$U

# 6. Without the rule: the control device is root's again, one line.
rm -f $RULES
udevadm control --reload
chmod 0600 /dev/ublk-control
uerr "/dev/ublk-control: Permission denied" add -t null

# 7. Still without the rule, the control device opened to users by hand:
# the device's node is never handed over, so add gives up after 10 s;
# DEL_DEV needs the node too, so the device stays, and add says so and who
# can delete it.
chmod 0666 /dev/ublk-control
as_user timeout 60 "$Z" add -t null >"$TMP/out" 2>"$TMP/err" && fail "add without the rule succeeded"
chmod 0600 /dev/ublk-control
grep -q "not handed over to uid $U" "$TMP/err" || fail "add without the rule: $(cat "$TMP/err")"
left=$(sed -n 's/.*device \([0-9]*\) left added: DEL_DEV: .*root can delete it.*/\1/p' "$TMP/err")
[ -n "$left" ] || fail "add without the rule: no 'left added' line: $(cat "$TMP/err")"
wait_until 10 no_daemons || fail "add without the rule: a daemon stayed: $(pgrep -a zublk)"
timeout 60 "$Z" del -n "$left" || fail "root's del of device $left"
no_devices || fail "a device stayed: $("$Z" list)"
note "$(grep 'left added' "$TMP/err")"
exit 0
