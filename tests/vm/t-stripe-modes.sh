# SPDX-License-Identifier: MIT
# stripe in every data mode: fio random writes of 512 bytes to 1 MiB (so
# requests cross chunk edges anywhere), crc32c-verified; two members with
# 64k chunks on 1 and 2 queues, then three members with 4k chunks, where a
# 1 MiB request becomes 257 pieces on one buffer.
. "$(dirname "$0")/lib.sh"
truncate -s 64M "$TMP/a" "$TMP/b" "$TMP/c"
for mode in copy user-copy zero-copy auto-zero-copy; do
	for q in 1 2; do
		fits_cpus "$q" || continue
		add -t stripe chunk=64k file="$TMP/a" file="$TMP/b" --mode "$mode" -q "$q"
		[ "$(blockdev --getsize64 "$DEV")" = $((128 << 20)) ] ||
			fail "size $(blockdev --getsize64 "$DEV"), not 128M"
		fio_ok v --filename="$DEV" --rw=randwrite --bsrange=512-1M --iodepth=16 \
			--size=48M --verify=crc32c --do_verify=1 --verify_fatal=1
		note "stripe 2x64k $mode q=$q: verified"
		del "$ID"
	done
	add -t stripe chunk=4k file="$TMP/a" file="$TMP/b" file="$TMP/c" --mode "$mode"
	fio_ok v3 --filename="$DEV" --rw=randwrite --bsrange=512-1M --iodepth=32 \
		--size=32M --verify=crc32c --do_verify=1 --verify_fatal=1
	# Reads on their own too: a verify pass over what is there.
	fio_ok r3 --filename="$DEV" --rw=randwrite --bsrange=512-1M --iodepth=32 --size=32M \
		--verify=crc32c --verify_only=1 --verify_fatal=1
	note "stripe 3x4k $mode: verified"
	errs=$(counter "$ID" errors)
	[ "$errs" = 0 ] || fail "$errs requests ended in error"
	del "$ID"
done
exit 0
