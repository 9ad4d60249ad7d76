# SPDX-License-Identifier: MIT
# zublk devices come up with IO scheduler none, unless --keep-scheduler.
. "$(dirname "$0")/lib.sh"
add -t null
grep -q '\[none\]' /sys/block/ublkb$ID/queue/scheduler || fail "scheduler: $(cat /sys/block/ublkb$ID/queue/scheduler)"
del "$ID"
add -t null --keep-scheduler
s=$(cat /sys/block/ublkb$ID/queue/scheduler)
note "kept: $s"
grep -q '\[none\]' <<<"$s" && ! grep -q 'mq-deadline' <<<"$s" && skip "the kernel itself picks none here"
grep -q '\[none\]' <<<"$s" && fail "--keep-scheduler still set none: $s"
exit 0
