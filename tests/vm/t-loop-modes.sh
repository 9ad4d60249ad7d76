# SPDX-License-Identifier: MIT
# loop in every data mode with 1 and 2 queues: fio randwrite 4k..1M with
# crc32c verification of everything written.
. "$(dirname "$0")/lib.sh"
truncate -s 256M "$TMP/img"
for mode in copy user-copy zero-copy auto-zero-copy; do
	for q in 1 2; do
		fits_cpus "$q" || continue
		add -t loop -f "$TMP/img" --mode "$mode" -q "$q"
		fio_ok v --filename="$DEV" --rw=randwrite --bsrange=4k-1M --iodepth=16 \
			--size=48M --verify=crc32c --do_verify=1 --verify_fatal=1
		if [ "$q" -gt 1 ]; then
			# Two jobs on two queues, each verifying its own half.
			fio_ok v2 --filename="$DEV" --rw=randwrite --bs=4k --iodepth=16 \
				--numjobs=2 --size=16M --offset_increment=128M \
				--verify=crc32c --do_verify=1 --verify_fatal=1
		fi
		note "loop $mode q=$q: verified"
		del "$ID"
	done
done
exit 0
