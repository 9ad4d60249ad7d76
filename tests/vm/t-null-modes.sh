# SPDX-License-Identifier: MIT
# null in every data mode with 1 and 2 queues: writes of 4k..1M complete
# without error and every read returns zeros (null keeps no data, so the
# read-back check is a zero pattern, not crc32c).
. "$(dirname "$0")/lib.sh"
for mode in copy user-copy zero-copy auto-zero-copy; do
	for q in 1 2; do
		[ "$q" -le "$(nproc)" ] || continue
		add -t null size=1G --mode "$mode" -q "$q"
		"$Z" list --json | grep -q "\"mode\": \"$mode\"" || fail "$mode not in effect"
		fio_ok w --filename="$DEV" --rw=randwrite --bsrange=4k-1M --iodepth=32 \
			--numjobs="$q" --size=256M --group_reporting
		# Dirty the pages fio reads into, so stale data would show.
		fio_ok r --filename="$DEV" --rw=randread --bsrange=4k-1M --iodepth=32 \
			--size=256M --verify=pattern --verify_pattern=0 --verify_only
		note "null $mode q=$q: ok"
		del "$ID"
	done
done
exit 0
