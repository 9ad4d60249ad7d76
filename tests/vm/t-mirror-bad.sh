# SPDX-License-Identifier: MIT
# mirror bad input: one line naming the thing and the cause, a non-zero
# exit, no device and no daemon left; and replace requests that cannot be.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/raid-lib.sh"

truncate -s 64M "$TMP/a" "$TMP/b" "$TMP/c"
expect_err "mirror: needs 2 or more legs .*got 1" add -t mirror file="$TMP/a"
expect_err "mirror: needs 2 or more legs .*got 0" add -t mirror
expect_err "mirror: leg '$TMP/nosuch': No such file or directory" \
	add -t mirror file="$TMP/a" file="$TMP/nosuch"
expect_err "mirror: leg '$TMP/a': the same as '$TMP/a'" \
	add -t mirror file="$TMP/a" file="$TMP/a"
expect_err "mirror: failed '2': not a list of leg numbers 0..1" \
	add -t mirror file="$TMP/a" file="$TMP/b" failed=2
expect_err "mirror: failed '0,1': no leg would be left in sync" \
	add -t mirror file="$TMP/a" file="$TMP/b" failed=0,1
expect_err "mirror: size 1073741824: the legs hold 67108864 bytes" \
	add -t mirror file="$TMP/a" file="$TMP/b" size=1G
expect_err "option 'chunk': not an option of target mirror" \
	add -t mirror file="$TMP/a" file="$TMP/b" chunk=64k

# Legs of different block sizes: kernel loop devices of 512 and 4096.
modprobe loop 2>/dev/null
l512=$(losetup -f --show -b 512 "$TMP/a" 2>/dev/null) || skip "no kernel loop devices"
LOOPS+=("$l512")
l4k=$(losetup -f --show -b 4096 "$TMP/b") || fail "losetup -b 4096"
LOOPS+=("$l4k")
expect_err "mirror: leg '$l4k' has 4096-byte blocks but '$l512' has 512-byte blocks" \
	add -t mirror file="$l512" file="$l4k"
# A loop device and its file: one leg twice.
expect_err "mirror: leg '$TMP/a': the same as '$l512'" \
	add -t mirror buffered=1 file="$l512" file="$TMP/a"

# Replace requests that cannot be: each refused with its reason, nothing changes.
add -t mirror file="$TMP/a" file="$TMP/c" -n 0
truncate -s 32M "$TMP/small"
refuse() { # refuse PATTERN ARGS...: zublk mirror ARGS fails saying PATTERN
	local pat=$1
	shift
	timeout 60 "$Z" mirror "$@" >"$TMP/out" 2>&1 && fail "mirror $* was accepted"
	grep -qE -- "$pat" "$TMP/out" || fail "mirror $*: '$(cat "$TMP/out")' does not match '$pat'"
	note "$(cat "$TMP/out")"
}
refuse "leg '7': no such leg" replace -n 0 7 "$TMP/b"
refuse "'$TMP/small' has 33554432 bytes, the mirror needs 67108864" replace -n 0 1 "$TMP/small"
refuse "'$l4k' has 4096-byte blocks but the mirror has 512-byte blocks" replace -n 0 1 "$l4k"
refuse "'$TMP/a' is leg 0 already" replace -n 0 1 "$TMP/a"
# A loop device over leg 0's file holds leg 0's data.
refuse "'$l512' is leg 0 already" replace -n 0 1 "$l512"
refuse "'$TMP/nosuch': No such file or directory" replace -n 0 1 "$TMP/nosuch"
[ "$(leg_state 0 0)" = ok ] && [ "$(leg_state 0 1)" = ok ] || fail "a refused replace changed the legs"
[ "$(dev_json 0 ".legs[1].file")" = "$TMP/c" ] || fail "leg 1 is not c any more"
# fail: by number or path; never the last leg in sync, never twice.
"$Z" mirror fail -n 0 "$TMP/c" >"$TMP/out" 2>&1 || fail "mirror fail: $(cat "$TMP/out")"
[ "$(leg_state 0 1)" = failed ] || fail "leg 1 is '$(leg_state 0 1)' after mirror fail"
refuse "leg 0: the last one in sync" fail -n 0 0
refuse "leg 1: already failed" fail -n 0 1
refuse "usage: zublk mirror replace -n ID LEG FILE" replace -n 0 1
del 0
exit 0
