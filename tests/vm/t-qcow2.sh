# SPDX-License-Identifier: MIT
# qcow2: images qemu-img makes, served and checked by qemu-img after.  Every
# data mode, buffered=0 (O_DIRECT) and 2 queues (verified fio writes; list
# says qcow2; the image clean and holding what the device had); 4k writes
# racing on new clusters, also from 2 queues into the same clusters; cluster
# sizes 512, 4k and 2M (the 512 one outgrowing its refcount table),
# compat=0.10, refcount_bits 1 and 64, lazy refcounts; compressed clusters
# (zlib, zstd) read and written over; raw and compressed qcow2 backings, a 3-level chain
# of relative paths and a backing shorter than its overlay, the backings
# never written, also with buffered=0 (a backing's last bytes off a sector
# read buffered); discard (zeros over a backing, partial clusters kept,
# space given back; a no-op over a backing in a v2 image); write zeroes
# (partial clusters zeroed in place or new, whole ones zero clusters, or
# kept and zeroed with NOUNMAP; space given back only without it; not
# offered in a v2 image over a backing); freed clusters handed out again,
# also beside verified writes on 2 queues, and those free at open; ext4 kept
# across del and add; kill -9 and recover under verified writes, the image
# consistent at the kill; images on tmpfs, mapped and copied in the queue
# thread; resize, grown and shrunk; an image on a block device (new clusters written whole,
# appended after the last one in use when opened again, ENOSPC at the
# device's end); new clusters over zeros from a synced reserve (the next run synced ahead, given back
# at del, leaked at a kill); internal snapshots (the active layer written,
# also from 2 queues, the snapshots unchanged, refcounts right once they
# are deleted, leaks at worst at a kill -9; resize refused; each one served
# read-only with snapshot=); what is refused, one line each, and qemu's
# image locks, both ways.
. "$(dirname "$0")/lib.sh"
for t in qemu-img qemu-io mkfs.ext4 e2fsck blkdiscard fallocate jq base64 od; do
	command -v $t >/dev/null || skip "no $t"
done
K=1024 M=$((1 << 20))
mkdir "$TMP/mnt"
qcow2_cleanup() {
	cd /
	mountpoint -q "$TMP/mnt" 2>/dev/null && umount "$TMP/mnt"
	timeout 60 "$Z" del --all >/dev/null 2>&1
	mountpoint -q "$TMP/shm" 2>/dev/null && umount "$TMP/shm"
	[ -z "${LD:-}" ] || losetup -d "$LD" 2>/dev/null
	cleanup
}
trap qcow2_cleanup EXIT
# Everything below runs in /, so that only the image's own directory can
# make its relative backing paths work.
cd / || fail "cd /"

# img_check IMG WHAT [leaks]: qemu-img check IMG finds nothing wrong (with
# leaks, leaked clusters are let through: exit 3); no ERROR line either way.
img_check() {
	local rc
	qemu-img check "$1" >"$TMP/check" 2>&1
	rc=$?
	[ $rc -eq 0 ] || { [ $rc -eq 3 ] && [ -n "${3:-}" ]; } ||
		fail "$2: qemu-img check exit $rc: $(grep -v '^$' "$TMP/check" | head -5)"
	! grep -q ERROR "$TMP/check" ||
		fail "$2: qemu-img check: $(grep ERROR "$TMP/check" | head -3)"
}
# same IMG RAW WHAT: qemu reads IMG (and its backings) as the bytes of RAW
same() {
	qemu-img compare -f qcow2 -F raw "$1" "$2" >"$TMP/cmp" 2>&1 ||
		fail "$3: qemu-img compare $(basename "$1") $(basename "$2"): $(head -3 "$TMP/cmp")"
}
# dev_is FILE WHAT: $DEV is as long as FILE and reads as its bytes
dev_is() {
	local size
	size=$(blockdev --getsize64 "$DEV")
	[ "$size" = "$(stat -c %s "$1")" ] ||
		fail "$2: $DEV has $size bytes, $(basename "$1") $(stat -c %s "$1")"
	cmp <(dd if="$DEV" bs=1M iflag=direct status=none) "$1" >"$TMP/cmp" 2>&1 ||
		fail "$2: $DEV is not $(basename "$1"): $(head -1 "$TMP/cmp")"
}
# direct_fd PID FILE: process PID has FILE open with O_DIRECT
direct_fd() {
	local fd
	for fd in /proc/"$1"/fd/*; do
		[ "$(stat -L -c %d:%i "$fd")" = "$(stat -c %d:%i "$2")" ] || continue
		(($(awk '/^flags:/ { print "0" $2 }' "/proc/$1/fdinfo/${fd##*/}") & 040000)) &&
			return 0
	done
	return 1
}
# dump FILE: what $DEV reads, into FILE (sparse)
dump() {
	dd if="$DEV" of="$1" bs=1M iflag=direct conv=sparse status=none || fail "reading $DEV"
}
# no_errors WHAT: device $ID failed no request
no_errors() { [ "$(counter "$ID" errors)" = 0 ] || fail "$1: $(counter "$ID" errors) errors"; }
# header IMG OFFSET BYTES: a big-endian field of IMG's header, in decimal
header() { echo $((0x$(od -An -tx1 -j"$2" -N"$3" "$1" | tr -d ' \n'))); }
# poke FILE OFFSET HH...: the bytes HH (two hex digits each) at OFFSET of FILE
poke() {
	local f=$1 at=$2 s=
	shift 2
	s=$(printf '\\x%s' "$@")
	printf '%b' "$s" | dd of="$f" bs=1 seek="$at" conv=notrunc status=none ||
		fail "patching $(basename "$f") at $at"
}
# set_incompat IMG BIT: set bit BIT of the v3 header's incompatible_features
set_incompat() {
	local v i b=()
	v=$(($(header "$1" 72 8) | (1 << $2)))
	for i in 56 48 40 32 24 16 8 0; do b+=("$(printf '%02x' $(((v >> i) & 255)))"); done
	poke "$1" 72 "${b[@]}"
}
# check_said: what qemu-img check last said, in one line
check_said() { grep -E 'No errors|leaked clusters were found' "$TMP/check" | head -1; }
# qinfo IMG FILTER: jq's FILTER on qemu-img info --output=json IMG
qinfo() { qemu-img info --output=json "$1" 2>/dev/null | jq -r "$2"; }

# The writes scribble makes, OFFSET:LENGTH: 512-aligned, mostly not on
# clusters: inside one, across two, one whole, over several, and over 16M+5k
# (the end of the short backing of e).
WRITES="$((12 * K)):$((4 * K)) $((M + 512)):$((100 * K)) $((5 * M + 1536)):512
	$((8 * M - 3 * K)):$((70 * K)) $((12 * M)):$((64 * K)) $((14 * M + 60 * K)):$((200 * K))
	$((16 * M - 2 * K)):$((8 * K))"
dd if=/dev/urandom of="$TMP/patch" bs=1M count=1 status=none || fail "making the patch"
# scribble COPY: WRITES, bytes of $TMP/patch, at $DEV (direct) and into COPY
scribble() {
	local w off len src=0
	for w in $WRITES; do
		off=${w%:*} len=${w#*:}
		dd if="$TMP/patch" of="$DEV" bs="$len" count=1 iflag=skip_bytes skip=$src \
			oflag=seek_bytes,direct seek="$off" conv=notrunc status=none ||
			fail "writing $len bytes at $off of $DEV"
		dd if="$TMP/patch" of="$1" bs="$len" count=1 iflag=skip_bytes skip=$src \
			oflag=seek_bytes seek="$off" conv=notrunc status=none || fail "writing $1"
		src=$((src + 4 * K))
	done
}
# odd_reads FILE WHAT: reads of $DEV at odd places (across clusters, and
# over 16M+5k) give FILE's bytes there.
odd_reads() {
	local r off len
	for r in 512:$K $((64 * K - 512)):$K $((3 * M + 1536)):$((70 * K)) \
		$((16 * M - K)):$((8 * K)); do
		off=${r%:*} len=${r#*:}
		cmp <(dd if="$DEV" bs="$len" count=1 iflag=skip_bytes,direct skip="$off" \
			status=none) <(dd if="$1" bs="$len" count=1 iflag=skip_bytes skip="$off" \
			status=none) >/dev/null || fail "$2: a read of $len bytes at $off"
	done
}
# Data that zlib compresses (to about 3/4) and never repeats: 32M.
head -c 24M /dev/urandom | base64 -w0 >"$TMP/src.raw" || fail "making the data"
[ "$(stat -c %s "$TMP/src.raw")" = $((32 * M)) ] || fail "src.raw: $(stat -c %s "$TMP/src.raw")"

note "a) every data mode, and 2 queues: verified fio, the image clean and the same"
queues_upto 2
# MODE:QUEUES[:OPTION]
runs="copy:1 user-copy:1 zero-copy:1 auto-zero-copy:1 zero-copy:1:buffered=0 copy:1:buffered=0"
[ "$q" = 2 ] && runs+=" :2"
img=$TMP/a.qcow2
for run in $runs; do
	opt=
	case $run in *:*:*) opt=${run##*:} run=${run%:*} ;; esac
	mode=${run%:*} nq=${run#*:}
	what="${mode:-default mode}, $nq queue(s)${opt:+, $opt}"
	rm -f "$img"
	qemu-img create -q -f qcow2 -o cluster_size=64k "$img" 128M || fail "qemu-img create"
	add -t qcow2 -f "$img" ${mode:+--mode "$mode"} -q "$nq" $opt
	[ -z "$opt" ] || direct_fd "$(dev_field "$ID" daemon_pid)" "$img" ||
		fail "$what: the image is not open with O_DIRECT"
	[ "$(dev_field "$ID" target)" = qcow2 ] || fail "$what: target $(dev_field "$ID" target)"
	[ -z "$mode" ] || [ "$(dev_field "$ID" mode)" = "$mode" ] ||
		fail "$what: mode $(dev_field "$ID" mode)"
	[ "$(dev_field "$ID" queues)" = "$nq" ] || fail "$what: queues $(dev_field "$ID" queues)"
	[ "$(blockdev --getsize64 "$DEV")" = $((128 * M)) ] ||
		fail "$what: $(blockdev --getsize64 "$DEV") bytes, not the virtual size"
	[ "$(cat "/sys/block/ublkb$ID/queue/write_zeroes_max_bytes")" -gt 0 ] ||
		fail "$what: no write zeroes advertised"
	if [ "$nq" = 1 ]; then
		fio_ok v --filename="$DEV" --rw=randwrite --bsrange=4k-1M --iodepth=16 \
			--size=48M --verify=crc32c --do_verify=1 --verify_fatal=1
	else
		# Two jobs on two CPUs (queues), each verifying its own 24M.
		fio_ok v2 --filename="$DEV" --rw=randwrite --bsrange=4k-1M --iodepth=16 \
			--numjobs=2 --size=24M --offset_increment=64M --cpus_allowed=0-1 \
			--cpus_allowed_policy=split --verify=crc32c --do_verify=1 --verify_fatal=1
	fi
	no_errors "$what"
	dump "$TMP/dev.raw"
	del "$ID"
	img_check "$img" "$what"
	same "$img" "$TMP/dev.raw" "$what"
	rm -f "$TMP/dev.raw"
	note "$what: verified, check clean, qemu reads what the device read"
done

note "b) 4k writes racing on new clusters"
rm -f "$img"
qemu-img create -q -f qcow2 "$img" 64M || fail "qemu-img create"
add -t qcow2 -f "$img" -q "$q"
fio_ok race --filename="$DEV" --rw=randwrite --bs=4k --iodepth=32 --size=16M \
	--verify=crc32c --do_verify=1 --verify_fatal=1
if [ "$q" = 2 ]; then
	# Two jobs on two CPUs (queues) into the same new clusters at 32M..48M:
	# one writes every even 4k block, the other every odd one.
	race=(--ioengine=io_uring --direct=1 --filename="$DEV" --rw=write:4k --bs=4k
		--iodepth=16 --size=16M --io_size=8M --verify=crc32c --do_verify=1 --verify_fatal=1)
	fio_ok even "${race[@]}" --offset=$((32 * M)) --cpus_allowed=0 \
		--name=odd "${race[@]}" --offset=$((32 * M + 4 * K)) --cpus_allowed=1
	[ "$(grep -c 'err= 0' "$FIO_LOG")" = 2 ] || fail "race: $(grep 'err=' "$FIO_LOG")"
fi
no_errors "race"
dump "$TMP/dev.raw"
del "$ID"
img_check "$img" "race"
same "$img" "$TMP/dev.raw" "race"
rm -f "$img" "$TMP/dev.raw"
note "racing writes: verified, check clean"

note "c) cluster sizes, compat=0.10, refcount widths, lazy refcounts"
for o in cluster_size=512 cluster_size=4k cluster_size=2M compat=0.10 refcount_bits=1 \
	refcount_bits=64 lazy_refcounts=on; do
	img=$TMP/c.qcow2
	rm -f "$img"
	qemu-img create -q -f qcow2 -o "$o" "$img" 64M || fail "qemu-img create -o $o"
	rt=$(header "$img" 56 4)
	add -t qcow2 -f "$img"
	if [ $o = cluster_size=512 ]; then
		# 32M in 4k writes, each on 8 new clusters: the 1-cluster refcount
		# table qemu-img made covers 8M of file.
		[ "$rt" = 1 ] || skip_check "outgrowing the refcount table" "$rt clusters at start"
		fio_ok c --filename="$DEV" --rw=randwrite --bs=4k --iodepth=16 --size=32M \
			--verify=crc32c --do_verify=1 --verify_fatal=1
	else
		fio_ok c --filename="$DEV" --rw=randwrite --bsrange=4k-256k --iodepth=16 \
			--size=24M --verify=crc32c --do_verify=1 --verify_fatal=1
	fi
	no_errors "$o"
	dump "$TMP/dev.raw"
	del "$ID"
	img_check "$img" "$o"
	same "$img" "$TMP/dev.raw" "$o"
	case $o in
	cluster_size=512)
		[ "$rt" != 1 ] || [ "$(header "$img" 56 4)" -gt 1 ] ||
			fail "$o: the refcount table still has $(header "$img" 56 4) cluster(s)"
		;;
	compat=0.10)
		[ "$(header "$img" 4 4)" = 2 ] || fail "$o: now version $(header "$img" 4 4)"
		;;
	lazy_refcounts=on)
		[ "$(qinfo "$img" '."dirty-flag"')" = false ] || fail "$o: dirty after del"
		;;
	esac
	rm -f "$img" "$TMP/dev.raw"
	note "$o: verified, check clean, qemu reads what the device read"
done

# A refused image is not changed: its autoclear bits (a qemu bitmap) stay;
# served, they are cleared (a writer that knows nothing of bitmaps).
img=$TMP/bm.qcow2
qemu-img create -q -f qcow2 -o cluster_size=512 "$img" 64M || fail "qemu-img create (bitmap)"
if qemu-img bitmap --add "$img" b0 2>/dev/null && [ "$(header "$img" 88 8)" != 0 ]; then
	ac=$(header "$img" 88 8)
	expect_err "qcow2: .*(below a page|O_DIRECT)" add -t qcow2 -f "$img" buffered=0
	[ "$(header "$img" 88 8)" = "$ac" ] ||
		fail "a refused add changed the autoclear bits: $ac -> $(header "$img" 88 8)"
	add -t qcow2 -f "$img"
	del "$ID"
	[ "$(header "$img" 88 8)" = 0 ] || fail "served, the autoclear bits are $(header "$img" 88 8)"
	note "autoclear $ac: kept by a refused add, cleared by a served one"
else
	skip_check "autoclear" "qemu-img bitmap --add did not set an autoclear bit"
fi
rm -f "$img"

note "d) compressed clusters, zlib and zstd: read, then written over"
head -c 24M "$TMP/src.raw" >"$TMP/d0.raw" || fail "head"
mkdir "$TMP/e" "$TMP/e/m" || fail "mkdir"
for ct in zlib zstd; do
	cp "$TMP/d0.raw" "$TMP/d.raw" || fail "cp"
	rm -f "$TMP/d.qcow2"
	qemu-img convert -c -f raw -O qcow2 -o compression_type=$ct "$TMP/d.raw" "$TMP/d.qcow2" ||
		fail "qemu-img convert -c ($ct)"
	[ "$(qinfo "$TMP/d.qcow2" '."format-specific".data."compression-type"')" = $ct ] ||
		fail "$ct: qemu-img info says $(qinfo "$TMP/d.qcow2" '."format-specific".data."compression-type"')"
	qemu-img check "$TMP/d.qcow2" >"$TMP/check" 2>&1 || fail "qemu-img check: $(cat "$TMP/check")"
	pct=$(grep -o '[0-9.]*% compressed' "$TMP/check")
	[ -n "$pct" ] && [ "${pct%%.*}" -gt 50 ] || fail "convert -c ($ct) compressed too little: '$pct'"
	[ $ct = zlib ] && { cp "$TMP/d.qcow2" "$TMP/e/cbase.qcow2" || fail "cp"; }
	add -t qcow2 -f "$TMP/d.qcow2"
	dev_is "$TMP/d.raw" "compressed ($ct)"
	odd_reads "$TMP/d.raw" "compressed ($ct)"
	scribble "$TMP/d.raw"
	dev_is "$TMP/d.raw" "compressed ($ct), written over"
	no_errors "compressed ($ct)"
	del "$ID"
	img_check "$TMP/d.qcow2" "compressed ($ct), written over"
	same "$TMP/d.qcow2" "$TMP/d.raw" "compressed ($ct), written over"
	note "$ct: ${pct%% *} of the clusters compressed: read, written over, check clean"
done
rm -f "$TMP/d0.raw"

note "e) backing files: raw, compressed qcow2, a chain, a short one"
# overlay_case WHAT IMG EXPECT BACKINGS...: the device of IMG reads as
# EXPECT; scribble's writes land in it and in a copy of EXPECT; after del
# IMG is clean and qemu reads it as the copy; the BACKINGS did not change.
# With QOPTS=buffered=0, the daemon holds IMG and the BACKINGS with O_DIRECT.
overlay_case() {
	local what=$1 img=$2 exp=$3 sums f
	shift 3
	sums=$(sha256sum "$@")
	add -t qcow2 -f "$img" ${QOPTS:-}
	if [ "${QOPTS:-}" = buffered=0 ]; then
		[ "$(dev_field "$ID" buffered)" = False ] ||
			fail "$what: buffered $(dev_field "$ID" buffered)"
		for f in "$img" "$@"; do
			direct_fd "$(dev_field "$ID" daemon_pid)" "$f" ||
				fail "$what: the daemon has no O_DIRECT descriptor of $f"
		done
	fi
	dev_is "$exp" "$what"
	odd_reads "$exp" "$what"
	cp "$exp" "$TMP/copy.raw" || fail "cp"
	scribble "$TMP/copy.raw"
	dev_is "$TMP/copy.raw" "$what, written"
	no_errors "$what"
	del "$ID"
	img_check "$img" "$what"
	same "$img" "$TMP/copy.raw" "$what"
	[ "$(sha256sum "$@")" = "$sums" ] || fail "$what: a backing file changed"
	rm -f "$TMP/copy.raw"
	note "$what: read, written, check clean, backing unchanged"
}
E=$TMP/e
cp "$TMP/src.raw" "$E/base.raw" || fail "cp"
head -c $((16 * M + 5 * K)) "$TMP/src.raw" >"$E/short.raw" || fail "head"
cd "$E" || fail "cd $E"
qemu-img create -q -f qcow2 -b base.raw -F raw ov.qcow2 || fail "qemu-img create ov"
qemu-img create -q -f qcow2 -b cbase.qcow2 -F qcow2 ov2.qcow2 || fail "qemu-img create ov2"
qemu-img create -q -f qcow2 -b short.raw -F raw long.qcow2 64M || fail "qemu-img create long"
# The chain: top.qcow2 -> m/mid.qcow2 -> ../base.raw (relative to m/).
(cd m && qemu-img create -q -f qcow2 -b ../base.raw -F raw mid.qcow2) ||
	fail "qemu-img create mid"
qemu-img create -q -f qcow2 -b m/mid.qcow2 -F qcow2 top.qcow2 || fail "qemu-img create top"
cd / || fail "cd /"
[ "$(qinfo "$E/ov.qcow2" '."backing-filename"')" = base.raw ] ||
	fail "ov.qcow2's backing: $(qinfo "$E/ov.qcow2" '."backing-filename"')"
[ ! -e "$TMP/base.raw" ] || fail "$TMP/base.raw would make ../base.raw work from $E"
# mid: data, a compressed cluster, and zeros over the base; top: data.
qemu-io -f qcow2 -c "write -P 0x5a 4M 1M" -c "write -c -P 0x33 8M 64k" \
	-c "write -z 2M 128k" "$E/m/mid.qcow2" >"$TMP/qio" || fail "qemu-io mid: $(cat "$TMP/qio")"
qemu-io -f qcow2 -c "write -P 0x77 6M 64k" "$E/top.qcow2" >"$TMP/qio" ||
	fail "qemu-io top: $(cat "$TMP/qio")"
qemu-img convert -O raw "$E/top.qcow2" "$TMP/top.raw" || fail "qemu-img convert top"
cmp -s -n $((128 * K)) -i $((2 * M)) "$TMP/top.raw" /dev/zero ||
	fail "qemu reads no zeros at 2M of top.qcow2"
head -c 24M "$TMP/src.raw" >"$TMP/c.raw" || fail "head"
cp "$E/short.raw" "$TMP/long.raw" && truncate -s 64M "$TMP/long.raw" || fail "long.raw"
overlay_case "raw backing" "$E/ov.qcow2" "$E/base.raw" "$E/base.raw"
overlay_case "compressed qcow2 backing" "$E/ov2.qcow2" "$TMP/c.raw" "$E/cbase.qcow2"
overlay_case "3-level chain" "$E/top.qcow2" "$TMP/top.raw" "$E/base.raw" "$E/m/mid.qcow2"
overlay_case "backing of 16M+5k under 64M" "$E/long.qcow2" "$TMP/long.raw" "$E/short.raw"
# A backing of 4k clusters (compressed ones, zeros, data) under 64k ones:
# a new 64k cluster is filled from 16 of the backing's.  8M of backing
# under a 24M overlay (what scribble writes reaches past 16M).
head -c 8M "$TMP/src.raw" >"$TMP/b4k.src" || fail "head"
qemu-img convert -c -f raw -O qcow2 -o cluster_size=4k "$TMP/b4k.src" "$E/b4k.qcow2" ||
	fail "qemu-img convert b4k"
qemu-io -f qcow2 -c "write -z 4100k 8k" -c "write -P 0x44 4128k 4k" "$E/b4k.qcow2" \
	>"$TMP/qio" || fail "qemu-io b4k: $(cat "$TMP/qio")"
qemu-img convert -O raw "$E/b4k.qcow2" "$TMP/b4k.raw" && truncate -s 24M "$TMP/b4k.raw" ||
	fail "qemu-img convert b4k.raw"
(cd "$E" && qemu-img create -q -f qcow2 -b b4k.qcow2 -F qcow2 ov4k.qcow2 24M) ||
	fail "qemu-img create ov4k"
WRITES="$WRITES $((4 * M + 512)):512 $((4 * M + 34 * K)):$((3 * K))" \
	overlay_case "4k-cluster backing under 64k clusters" "$E/ov4k.qcow2" "$TMP/b4k.raw" \
	"$E/b4k.qcow2"
# buffered=0: the data by O_DIRECT, the rest buffered; a backing whose end
# is not on a sector (its last 100 bytes read buffered).
head -c $((16 * M + 5 * K + 100)) "$TMP/src.raw" >"$E/odd.raw" || fail "head"
(cd "$E" && qemu-img create -q -f qcow2 -b odd.raw -F raw odd.qcow2 64M) ||
	fail "qemu-img create odd"
cp "$E/odd.raw" "$TMP/odd.raw" && truncate -s 64M "$TMP/odd.raw" || fail "odd.raw"
(cd "$E" && qemu-img create -q -f qcow2 -b m/mid.qcow2 -F qcow2 top2.qcow2) ||
	fail "qemu-img create top2"
qemu-img convert -O raw "$E/m/mid.qcow2" "$TMP/mid.raw" || fail "qemu-img convert mid"
QOPTS=buffered=0 overlay_case "buffered=0, 3-level chain" "$E/top2.qcow2" "$TMP/mid.raw" \
	"$E/base.raw" "$E/m/mid.qcow2"
QOPTS=buffered=0 overlay_case "buffered=0, backing of 16M+5k+100 under 64M" "$E/odd.qcow2" \
	"$TMP/odd.raw" "$E/odd.raw"
rm -f "$E/odd.raw" "$TMP/odd.raw" "$TMP/mid.raw"
rm -f "$TMP/b4k.src" "$TMP/b4k.raw"
rm -f "$TMP"/[dc].raw "$TMP/d.qcow2" "$TMP/top.raw" "$TMP/long.raw" "$E"/*.qcow2 "$E/short.raw"

note "f) discard: zeros over a backing, space given back, v2 a no-op"
cd "$E" || fail "cd $E"
qemu-img create -q -f qcow2 -b base.raw -F raw ov.qcow2 || fail "qemu-img create ov"
qemu-img create -q -f qcow2 -o compat=0.10 -b base.raw -F raw v2.qcow2 ||
	fail "qemu-img create v2"
cd / || fail "cd /"
sum=$(sha256sum "$E/base.raw")
add -t qcow2 -f "$E/ov.qcow2"
[ "$(cat "/sys/block/ublkb$ID/queue/discard_max_bytes")" -gt 0 ] || fail "no discard advertised"
cp "$E/base.raw" "$TMP/copy.raw" || fail "cp"
scribble "$TMP/copy.raw"
# 1M..3M: whole clusters, some written, the rest the backing's; 4M+4k..4M+128k:
# the cluster at 4M only in part (kept), the one at 4M+64k whole.
blkdiscard -o $M -l $((2 * M)) "$DEV" || fail "blkdiscard 1M..3M"
blkdiscard -o $((4 * M + 4 * K)) -l $((124 * K)) "$DEV" || fail "blkdiscard 4M+4k..4M+128k"
dd if=/dev/zero of="$TMP/copy.raw" bs=64k seek=16 count=32 conv=notrunc status=none &&
	dd if=/dev/zero of="$TMP/copy.raw" bs=64k seek=65 count=1 conv=notrunc status=none ||
	fail "zeroing copy.raw"
dev_is "$TMP/copy.raw" "discard over a backing"
no_errors "discard over a backing"
del "$ID"
img_check "$E/ov.qcow2" "discard over a backing"
same "$E/ov.qcow2" "$TMP/copy.raw" "discard over a backing"
note "discard over a backing: zeros in whole clusters, the partial one kept"
# Write zeroes over the same overlay: OFFSET:LENGTH:HOW, HOW p (fallocate
# --punch-hole: unmapping allowed) or z (--zero-range: NOUNMAP).  Cluster
# 125 (the backing's) in part, 126 (the backing's) whole, 127-128 (written)
# kept, 129 in part; 224 and 228 (written) in part, 225-227 whole; 192
# (written) inside; 320 (the backing's) inside.
add -t qcow2 -f "$E/ov.qcow2"
[ "$(cat "/sys/block/ublkb$ID/queue/write_zeroes_max_bytes")" -gt 0 ] ||
	fail "no write zeroes advertised over a backing (v3)"
for z in $((8 * M - 132 * K)):$((200 * K)):z $((14 * M + 32 * K)):$((256 * K)):p \
	$((12 * M + 4 * K)):$((8 * K)):z $((20 * M + 512)):$K:p; do
	off=${z%%:*} len=${z#*:} how=${z##*:}
	len=${len%:*}
	fallocate -"$how" -o "$off" -l "$len" "$DEV" ||
		fail "fallocate -$how -o $off -l $len $DEV"
	dd if=/dev/zero of="$TMP/copy.raw" bs="$len" count=1 oflag=seek_bytes seek="$off" \
		conv=notrunc status=none || fail "zeroing copy.raw"
done
dev_is "$TMP/copy.raw" "write zeroes over a backing"
no_errors "write zeroes over a backing"
del "$ID"
img_check "$E/ov.qcow2" "write zeroes over a backing"
same "$E/ov.qcow2" "$TMP/copy.raw" "write zeroes over a backing"
# at OFFSET: "depth zero data" of qemu-img map there.  A kept cluster may
# read as zero from the file (a zeroed range), so its zero is not checked.
at() {
	qemu-img map --output=json "$E/ov.qcow2" 2>/dev/null |
		jq -r ".[] | select(.start <= $1 and $1 < .start + .length) |
			\"\(.depth) \(.zero) \(.data)\""
}
for c in 125:"0 false true" 126:"0 true false" 127:"0 * true" 128:"0 * true" \
	129:"0 false true" 225:"0 true false" 227:"0 true false" 320:"0 false true"; do
	# shellcheck disable=SC2053
	[[ "$(at $((${c%%:*} * 64 * K)))" == ${c#*:} ]] ||
		fail "write zeroes: cluster ${c%%:*} is \"$(at $((${c%%:*} * 64 * K)))\", not \"${c#*:}\""
done
[ "$(sha256sum "$E/base.raw")" = "$sum" ] || fail "write zeroes: base.raw changed"
note "write zeroes over a backing: partial clusters zeroed, whole ones zero, NOUNMAP kept"
# v2: no zero clusters; discard does nothing where a backing shows through.
add -t qcow2 -f "$E/v2.qcow2"
[ "$(cat "/sys/block/ublkb$ID/queue/write_zeroes_max_bytes")" = 0 ] ||
	fail "v2 over a backing: write zeroes advertised"
cp "$E/base.raw" "$TMP/copy.raw" || fail "cp"
scribble "$TMP/copy.raw"
blkdiscard -o $M -l $((2 * M)) "$DEV" || fail "v2: blkdiscard 1M..3M"
dev_is "$TMP/copy.raw" "v2 discard over a backing"
del "$ID"
img_check "$E/v2.qcow2" "v2 discard"
same "$E/v2.qcow2" "$TMP/copy.raw" "v2 discard"
[ "$(sha256sum "$E/base.raw")" = "$sum" ] || fail "discard: base.raw changed"
rm -f "$TMP/copy.raw" "$E"/*.qcow2
note "v2 over a backing: discard accepted, nothing changed"
# A full image: 88 of its 96M discarded, the file's space goes.
img=$TMP/f.qcow2
qemu-img create -q -f qcow2 "$img" 128M || fail "qemu-img create"
add -t qcow2 -f "$img"
fio_ok fill --filename="$DEV" --rw=write --bs=1M --iodepth=8 --size=96M
dd if="$DEV" of="$TMP/tail" bs=1M skip=88 count=8 iflag=direct status=none || fail "dd tail"
del "$ID"
du1=$(du -k "$img" | cut -f1)
img_check "$img" "filled"
# zeroed_upto MB WHAT: $DEV reads zeros up to MB and 88M..96M as before; del
zeroed_upto() {
	cmp -n $(($1 * M)) <(dd if="$DEV" bs=1M count="$1" iflag=direct status=none) /dev/zero \
		>/dev/null || fail "0..$1M not zeros after $2"
	cmp <(dd if="$DEV" bs=1M skip=88 count=8 iflag=direct status=none) "$TMP/tail" \
		>/dev/null || fail "88M..96M changed by $2"
	no_errors "$2"
	del "$ID"
}
add -t qcow2 -f "$img"
blkdiscard -o 0 -l $((88 * M)) "$DEV" || fail "blkdiscard 0..88M"
zeroed_upto 88 "discard"
du2=$(du -k "$img" | cut -f1)
[ $((du2 * 2)) -lt "$du1" ] || fail "discard of 88M of 96M: ${du1}k, then ${du2}k"
img_check "$img" "discarded"
note "88M of 96M discarded: ${du1}k -> ${du2}k, check clean"
# Filled again; write zeroes over 0..40M may unmap, over 40M..80M may not.
add -t qcow2 -f "$img"
fio_ok fill --filename="$DEV" --rw=write --bs=1M --iodepth=8 --size=88M
del "$ID"
du1=$(du -k "$img" | cut -f1)
add -t qcow2 -f "$img"
fallocate -p -o 0 -l $((40 * M)) "$DEV" || fail "fallocate -p 0..40M"
blkdiscard -z -o $((40 * M)) -l $((40 * M)) "$DEV" || fail "blkdiscard -z 40M..80M"
zeroed_upto 80 "write zeroes"
du2=$(du -k "$img" | cut -f1)
[ "$du2" -lt $((du1 - 30 * 1024)) ] && [ "$du2" -gt $((du1 - 60 * 1024)) ] ||
	fail "write zeroes of 40M unmapped and 40M kept: ${du1}k, then ${du2}k"
img_check "$img" "write zeroes"
[ "$(qemu-img map --output=json "$img" | jq '[.[] | select(.data) | .length] | add')" \
	-ge $((48 * M)) ] || fail "write zeroes: 40M..80M not kept allocated"
rm -f "$img" "$TMP/tail"
note "write zeroes 40M unmapped, 40M kept: ${du1}k -> ${du2}k, check clean"

# Freed clusters handed out again: 32M written, discarded and flushed four
# times, the file no longer than after the first; then a new daemon on 2
# queues (which finds those 32M free) runs fio's verified random writes
# over 0..32M while 32M..64M is written, discarded and flushed again and
# again beside them: the file grows by 0..32M alone.
img=$TMP/r.qcow2
qemu-img create -q -f qcow2 "$img" 128M || fail "qemu-img create"
add -t qcow2 -f "$img"
for i in 1 2 3 4; do
	fio_ok w --filename="$DEV" --rw=write --bs=64k --iodepth=16 --offset=$((32 * M)) \
		--size=$((32 * M))
	size=$(stat -c %s "$img")
	[ "$i" = 1 ] && size1=$size
	[ "$size" -le $((size1 + M)) ] ||
		fail "reuse: the file grew from $size1 to $size bytes in $i rounds of 32M"
	blkdiscard -o $((32 * M)) -l $((32 * M)) "$DEV" || fail "blkdiscard 32M..64M"
	sync "$DEV" || fail "sync $DEV"
done
no_errors "reuse"
del "$ID"
add -t qcow2 -f "$img" -q 2
fio --name=v --filename="$DEV" --ioengine=io_uring --direct=1 --rw=randwrite \
	--bsrange=4k-128k --iodepth=16 --size=$((32 * M)) --loops=4 --verify=crc32c \
	--do_verify=1 --verify_fatal=1 >"$TMP/fio-v" 2>&1 &
fp=$!
n=0
while kill -0 $fp 2>/dev/null; do
	fio_ok b --filename="$DEV" --rw=randwrite --bs=64k --iodepth=8 --offset=$((32 * M)) \
		--size=$((32 * M))
	blkdiscard -o $((32 * M)) -l $((32 * M)) "$DEV" || fail "blkdiscard 32M..64M"
	sync "$DEV" || fail "sync $DEV"
	n=$((n + 1))
done
wait $fp || fail "reuse: fio's verified writes: $(grep -E 'err=|verify' "$TMP/fio-v" | head -3)"
grep -q "err= 0" "$TMP/fio-v" || fail "reuse: fio: $(grep err= "$TMP/fio-v")"
size=$(stat -c %s "$img")
[ "$n" -ge 2 ] || fail "reuse: 32M..64M written and discarded only $n times beside fio"
[ "$size" -le $((size1 + 36 * M)) ] ||
	fail "reuse: the file grew from $size1 to $size bytes in $n rounds beside fio"
no_errors "reuse, 2 queues"
dump "$TMP/r.raw"
del "$ID"
img_check "$img" "reuse"
same "$img" "$TMP/r.raw" "reuse"
rm -f "$img" "$TMP/r.raw" "$TMP/fio-v"
note "freed clusters reused: ${size1} bytes after 4 rounds; $n rounds beside verified fio: $size"

note "g) ext4: files kept across del and add, fsck and check clean"
img=$TMP/g.qcow2
qemu-img create -q -f qcow2 "$img" 256M || fail "qemu-img create"
add -t qcow2 -f "$img"
mkfs.ext4 -q -F "$DEV" || fail "mkfs.ext4"
mount "$DEV" "$TMP/mnt" || fail "mount"
head -c 8M "$TMP/src.raw" >"$TMP/mnt/a" && head -c 100000 /dev/urandom >"$TMP/mnt/b" &&
	mkdir "$TMP/mnt/d" && cp "$TMP/mnt/a" "$TMP/mnt/d/c" && cp -r "$ROOT/docs" "$TMP/mnt/" ||
	fail "writing files"
(cd "$TMP/mnt" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$TMP/sums" ||
	fail "sha256sum"
sync -f "$TMP/mnt/a" || fail "sync"
umount "$TMP/mnt" || fail "umount"
e2fsck -fn "$DEV" >"$TMP/fsck" 2>&1 || fail "e2fsck: $(tail -3 "$TMP/fsck")"
del "$ID"
img_check "$img" "ext4"
add -t qcow2 -f "$img" --mode copy
mount "$DEV" "$TMP/mnt" || fail "mount again"
(cd "$TMP/mnt" && sha256sum -c --quiet "$TMP/sums") || fail "the files changed"
rm "$TMP/mnt/a" || fail "rm"
if command -v fstrim >/dev/null; then
	fstrim "$TMP/mnt" || fail "fstrim"
else
	skip_check "fstrim on ext4" "no fstrim"
fi
umount "$TMP/mnt" || fail "umount"
e2fsck -fn "$DEV" >"$TMP/fsck" 2>&1 || fail "e2fsck after rm: $(tail -3 "$TMP/fsck")"
no_errors "ext4"
del "$ID"
img_check "$img" "ext4 after fstrim"
rm -f "$img"
note "ext4: files kept, fsck and check clean"

note "h) kill -9: the image consistent at the kill; recover under verified writes"
H=$TMP/h
mkdir "$H" && mv "$E/base.raw" "$H/" || fail "mkdir $H"
(cd "$H" && qemu-img create -q -f qcow2 -b base.raw -F raw ov.qcow2 128M) ||
	fail "qemu-img create"
sum=$(sha256sum "$H/base.raw")
cp "$H/base.raw" "$TMP/exp.raw" && truncate -s 128M "$TMP/exp.raw" || fail "exp.raw"
add -t qcow2 -f "$H/ov.qcow2"
scribble "$TMP/exp.raw"
dd if="$TMP/patch" of="$DEV" bs=64k seek=$((100 * 16)) count=4 oflag=direct status=none &&
	dd if="$TMP/patch" of="$TMP/exp.raw" bs=64k seek=$((100 * 16)) count=4 conv=notrunc \
		status=none || fail "writing at 100M"
# Nothing in flight: every completed write is in the image as qemu reads it.
kill -9 "$(dev_field "$ID" daemon_pid)"
wait_until 20 state_is "$ID" QUIESCED || fail "not QUIESCED ($(dev_field "$ID" state))"
img_check "$H/ov.qcow2" "killed with nothing in flight" leaks
same "$H/ov.qcow2" "$TMP/exp.raw" "killed with nothing in flight"
timeout 30 "$Z" recover -n "$ID" >/dev/null || fail "recover failed"
wait_until 20 state_is "$ID" LIVE || fail "not LIVE ($(dev_field "$ID" state))"
dev_is "$TMP/exp.raw" "recovered"
note "killed idle: check: $(check_said); recovered, reads the same"
# Two kills under verified 4k random writes over 64M (past the backing's
# end at 32M), paced (11 s at least) so that both come before fio is done.
kv=(--filename="$DEV" --rw=randwrite --bs=4k --iodepth=32 --size=64M --verify=crc32c
	--verify_fatal=1)
bg_fio kv "${kv[@]}" --do_verify=1 --rate_iops=,1500
for cycle in 1 2; do
	sleep 2
	fio_running || fail "kill $cycle: fio ended: $(tail -3 "$TMP/kv.log")"
	kill -9 "$(dev_field "$ID" daemon_pid)"
	wait_until 20 state_is "$ID" QUIESCED || fail "kill $cycle: not QUIESCED"
	img_check "$H/ov.qcow2" "killed under writes ($cycle)" leaks
	note "kill $cycle under writes: check: $(check_said)"
	timeout 30 "$Z" recover -n "$ID" >/dev/null || fail "kill $cycle: recover failed"
	wait_until 20 state_is "$ID" LIVE || fail "kill $cycle: not LIVE"
done
bg_fio_ok kv
no_errors "after the kills"
del "$ID"
img_check "$H/ov.qcow2" "after the kills" leaks
# What fio wrote is in the image: a new daemon reads it back.
add -t qcow2 -f "$H/ov.qcow2"
fio_ok kv "${kv[@]}" --verify_only
cmp <(dd if="$DEV" bs=1M skip=64 iflag=direct status=none) \
	<(dd if="$TMP/exp.raw" bs=1M skip=64 status=none) >/dev/null || fail "64M..128M changed"
del "$ID"
img_check "$H/ov.qcow2" "read back" leaks
[ "$(sha256sum "$H/base.raw")" = "$sum" ] || fail "kill -9: base.raw changed"
rm -rf "$H" "$TMP/exp.raw"
note "two kills under verified writes: fio verified, data read back, check: $(check_said)"

note "j) images in memory (tmpfs): mapped, and copied in the queue thread"
S=$TMP/shm
mkdir "$S" && mount -t tmpfs -o size=400m zublk-qcow2 "$S" || fail "mounting a tmpfs"
head -c 24M "$TMP/src.raw" >"$S/base.raw" || fail "head"
for mode in copy user-copy zero-copy auto-zero-copy; do
	(cd "$S" && qemu-img create -q -f qcow2 -b base.raw -F raw ov.qcow2 64M) ||
		fail "qemu-img create"
	cp "$S/base.raw" "$TMP/exp.raw" && truncate -s 64M "$TMP/exp.raw" || fail "exp.raw"
	add -t qcow2 -f "$S/ov.qcow2" --mode "$mode" -q "$q"
	dev_is "$TMP/exp.raw" "tmpfs $mode"
	scribble "$TMP/exp.raw"
	# Verified writes over the backing and past its end, the file growing under the mapping.
	fio_ok m --filename="$DEV" --rw=randwrite --bsrange=4k-256k --iodepth=16 --size=16M \
		--offset=16M --verify=crc32c --do_verify=1 --verify_fatal=1
	blkdiscard -o $((40 * M)) -l $((4 * M)) "$DEV" || fail "tmpfs $mode: blkdiscard"
	cmp -n $((4 * M)) <(dd if="$DEV" bs=1M skip=40 count=4 iflag=direct status=none) \
		/dev/zero >/dev/null || fail "tmpfs $mode: not zeros after discard"
	[ "$(counter "$ID" copies)" -gt 0 ] || fail "tmpfs $mode: nothing copied in the queue thread"
	no_errors "tmpfs $mode"
	dump "$TMP/dev.raw"
	note "tmpfs $mode: $(counter "$ID" copies) copies"
	del "$ID"
	img_check "$S/ov.qcow2" "tmpfs $mode"
	same "$S/ov.qcow2" "$TMP/dev.raw" "tmpfs $mode"
	rm -f "$S/ov.qcow2" "$TMP/dev.raw" "$TMP/exp.raw"
done
umount "$S" || fail "umount $S"

note "k) resize: grown live, its L1 table too; shrunk live beside verified writes; ro=1 refused"
# 4k clusters: an L1 cluster covers 1G, so 3G needs a new, larger L1 table.
img=$TMP/k.qcow2
qemu-img create -q -f qcow2 -o cluster_size=4k "$img" 64M || fail "qemu-img create"
add -t qcow2 -f "$img"
fio_ok k1 --filename="$DEV" --rw=randwrite --bsrange=4k-128k --iodepth=16 --size=32M \
	--verify=crc32c --do_verify=1 --verify_fatal=1
"$Z" resize -n "$ID" 3G >/dev/null 2>"$TMP/err" || fail "resize to 3G: $(cat "$TMP/err")"
[ "$(blockdev --getsize64 "$DEV")" = $((3 << 30)) ] || fail "resize: $(blockdev --getsize64 "$DEV")"
cmp -n $((4 * M)) <(dd if="$DEV" bs=1M skip=2048 count=4 iflag=direct status=none) /dev/zero \
	>/dev/null || fail "resize: the new part does not read zeros"
fio_ok k2 --filename="$DEV" --rw=randwrite --bsrange=4k-128k --iodepth=16 --offset=2900M \
	--size=32M --verify=crc32c --do_verify=1 --verify_fatal=1
no_errors "resize"
del "$ID"
img_check "$img" "resize"
[ "$(qinfo "$img" '."virtual-size"')" = $((3 << 30)) ] ||
	fail "resize: qemu sees $(qinfo "$img" '."virtual-size"') bytes"
l1n=$(header "$img" 36 4)
[ "$l1n" -gt 512 ] || fail "resize: the L1 table has $l1n entries"
# A new daemon reads both parts back.
add -t qcow2 -f "$img"
fio_ok k1 --filename="$DEV" --rw=randwrite --bsrange=4k-128k --iodepth=16 --size=32M \
	--verify=crc32c --verify_only
fio_ok k2 --filename="$DEV" --rw=randwrite --bsrange=4k-128k --iodepth=16 --offset=2900M \
	--size=32M --verify=crc32c --verify_only
# Shrunk to 1G+2k (not on a cluster) while verified writes run below it,
# over k1's 32M and 16M new: k2's 32M of clusters and its L2 tables go.
# 8k at 1G, across the new end: its first 2k stay, the rest reads zeros
# once grown again.
dd if="$TMP/patch" of="$DEV" bs=8k count=1 seek=$((128 * K)) oflag=direct conv=notrunc \
	status=none || fail "writing at 1G"
du1=$(du -k "$img" | cut -f1)
small=$((1024 * M + 2 * K))
(fio_ok k3 --filename="$DEV" --rw=randwrite --bsrange=4k-128k --iodepth=16 --size=48M \
	--verify=crc32c --do_verify=1 --verify_fatal=1) &
bg=$!
sleep 1
"$Z" resize -n "$ID" $small >/dev/null 2>"$TMP/err" || fail "shrink: $(cat "$TMP/err")"
wait $bg || fail "shrink: the writes beside it failed"
[ "$(blockdev --getsize64 "$DEV")" = $small ] || fail "shrink: $(blockdev --getsize64 "$DEV")"
fio_ok k3 --filename="$DEV" --rw=randwrite --bsrange=4k-128k --iodepth=16 --size=48M \
	--verify=crc32c --verify_only
no_errors "shrink"
dump "$TMP/dev.raw"
del "$ID"
img_check "$img" "shrink"
same "$img" "$TMP/dev.raw" "shrink"
[ "$(qinfo "$img" '."virtual-size"')" = $small ] ||
	fail "shrink: qemu sees $(qinfo "$img" '."virtual-size"') bytes"
du2=$(du -k "$img" | cut -f1)
[ $((du1 - du2)) -gt $((8 * K)) ] || fail "shrink: ${du1}k on disk before, ${du2}k after"
# Grown again: what was cut reads as zeros.
add -t qcow2 -f "$img"
"$Z" resize -n "$ID" 3G >/dev/null 2>"$TMP/err" || fail "regrow: $(cat "$TMP/err")"
cmp -n $((32 * M)) <(dd if="$DEV" bs=1M skip=2900 count=32 iflag=direct status=none) /dev/zero \
	>/dev/null || fail "regrow: the part cut off does not read zeros"
cmp <(dd if="$DEV" bs=8k count=1 skip=$((128 * K)) iflag=direct status=none) \
	<(head -c 2k "$TMP/patch"; head -c 6k /dev/zero) >/dev/null ||
	fail "regrow: the 8k at 1G do not read as its first 2k and zeros"
fio_ok k3 --filename="$DEV" --rw=randwrite --bsrange=4k-128k --iodepth=16 --size=48M \
	--verify=crc32c --verify_only
# Shrunk again with nothing in flight: nothing to wait for.
"$Z" resize -n "$ID" 2G >/dev/null 2>"$TMP/err" || fail "idle shrink: $(cat "$TMP/err")"
del "$ID"
img_check "$img" "regrow"
[ "$(qinfo "$img" '."virtual-size"')" = $((2 << 30)) ] ||
	fail "idle shrink: qemu sees $(qinfo "$img" '."virtual-size"') bytes"
add -t qcow2 -f "$img" ro=1
"$Z" resize -n "$ID" 4G >/dev/null 2>"$TMP/err" && fail "resize of ro=1 accepted"
del "$ID"
rm -f "$img"
# An overlay shorter than its backing, grown past it: the grown part reads
# zeros, not the backing's data (zero clusters, as qemu-img resize makes),
# live and as qemu reads the image after; a v2 image (no zero clusters)
# and an old end inside a cluster are refused, the device as it was.
head -c 32M /dev/urandom >"$TMP/kb.raw" || fail "making kb.raw"
kb_sum=$(md5sum <"$TMP/kb.raw")
qemu-img create -q -f qcow2 -b "$TMP/kb.raw" -F raw "$TMP/ks.qcow2" 16M ||
	fail "qemu-img create ks.qcow2"
add -t qcow2 -f "$TMP/ks.qcow2"
"$Z" resize -n "$ID" 40M >/dev/null 2>"$TMP/err" || fail "a grow over a longer backing: $(cat "$TMP/err")"
# Expected: the backing's first 16M, then zeros up to 40M.
head -c 16M "$TMP/kb.raw" >"$TMP/kx.raw" && truncate -s 40M "$TMP/kx.raw" || fail "kx.raw"
dev_is "$TMP/kx.raw" "grown over a longer backing"
no_errors "grown over a longer backing"
del "$ID"
img_check "$TMP/ks.qcow2" "grown over a longer backing"
same "$TMP/ks.qcow2" "$TMP/kx.raw" "grown over a longer backing"
[ "$(md5sum <"$TMP/kb.raw")" = "$kb_sum" ] || fail "grown over a longer backing: the backing changed"
for v in "compat=0.10:a version 2 image has no zero clusters" "16M+64k-512:the old end is not on a cluster"; do
	o=${v%%:*} why=${v#*:}
	if [ "$o" = compat=0.10 ]; then
		qemu-img create -q -f qcow2 -o compat=0.10 -b "$TMP/kb.raw" -F raw "$TMP/ks.qcow2" 16M
	else
		qemu-img create -q -f qcow2 -b "$TMP/kb.raw" -F raw "$TMP/ks.qcow2" $((16 * M + 64 * K - 512))
	fi || fail "qemu-img create ks.qcow2 ($o)"
	add -t qcow2 -f "$TMP/ks.qcow2"
	old=$(blockdev --getsize64 "$DEV")
	"$Z" resize -n "$ID" 32M >/dev/null 2>"$TMP/err" && fail "$o: a grow over a longer backing accepted"
	grep -q "backing file holds data up to 33554432, which would show through ($why)" "$TMP/err" ||
		fail "$o: a grow over a longer backing: '$(cat "$TMP/err")'"
	[ "$(blockdev --getsize64 "$DEV")" = "$old" ] ||
		fail "$o: a refused grow: $(blockdev --getsize64 "$DEV") bytes, not $old"
	del "$ID"
	[ "$(qinfo "$TMP/ks.qcow2" '."virtual-size"')" = "$old" ] || fail "$o: the image's size changed"
	rm -f "$TMP/ks.qcow2"
done
rm -f "$TMP/ks.qcow2" "$TMP/kb.raw" "$TMP/kx.raw"
note "resize 64M -> 3G: $l1n L1 entries; -> 1G+2k beside writes (${du1}k -> ${du2}k); -> 3G: zeros; grown over a longer backing: zeros, v2 and an unaligned end refused"

note "l) an image on a block device: written, opened again, filled to its end"
# The device held other data before: a new cluster there does not read
# zeros, so the part of it a write does not cover must be written.
LD=
command -v losetup >/dev/null || fail "no losetup"
modprobe loop 2>/dev/null
head -c 40M /dev/urandom >"$TMP/l.dev" || fail "making l.dev"
LD=$(losetup -f --show "$TMP/l.dev") || fail "losetup"
qemu-img create -q -f qcow2 "$LD" 64M || fail "qemu-img create on $LD"
truncate -s 64M "$TMP/exp.raw" || fail "truncate"
add -t qcow2 -f "$LD"
scribble "$TMP/exp.raw"
dev_is "$TMP/exp.raw" "block device"
fio_ok l1 --filename="$DEV" --rw=randwrite --bsrange=4k-256k --iodepth=16 --offset=20M \
	--size=8M --verify=crc32c --do_verify=1 --verify_fatal=1
no_errors "block device"
del "$ID"
img_check "$LD" "block device"
# Opened again (buffered=0 this time): new clusters go after the ones in
# use, and the old data stays.
add -t qcow2 -f "$LD" buffered=0
direct_fd "$(dev_field "$ID" daemon_pid)" "$LD" || fail "block device: not open with O_DIRECT"
fio_ok l2 --filename="$DEV" --rw=randwrite --bsrange=4k-256k --iodepth=16 --offset=32M \
	--size=8M --verify=crc32c --do_verify=1 --verify_fatal=1
fio_ok l1 --filename="$DEV" --rw=randwrite --bsrange=4k-256k --iodepth=16 --offset=20M \
	--size=8M --verify=crc32c --verify_only
cmp -n $((17 * M)) <(dd if="$DEV" bs=1M count=17 iflag=direct status=none) "$TMP/exp.raw" \
	>/dev/null || fail "block device: scribble's writes changed after a new add"
no_errors "block device, opened again"
# 64M of data cannot fit in 40M: the writes past the device's end fail with
# ENOSPC, the device goes on serving what fits, and no failed write shows.
dd if=/dev/urandom of="$DEV" bs=1M count=64 oflag=direct status=none 2>"$TMP/err" &&
	fail "block device: 64M written into 40M"
grep -q "No space" "$TMP/err" || fail "block device full: $(cat "$TMP/err")"
[ "$(counter "$ID" errors)" -gt 0 ] || fail "block device full: no error counted"
dump "$TMP/dev.raw"
del "$ID"
img_check "$LD" "block device full" leaks
same "$LD" "$TMP/dev.raw" "block device full"
# An overlay there: write zeroes over part of a backing's cluster makes a
# new cluster (over the old image's data) whose zeroed part is written too.
head -c 4M /dev/urandom >"$TMP/lbase.raw" || fail "making lbase.raw"
qemu-img create -q -f qcow2 -b "$TMP/lbase.raw" -F raw "$LD" 4M || fail "qemu-img create -b"
cp "$TMP/lbase.raw" "$TMP/exp.raw" || fail "cp"
add -t qcow2 -f "$LD"
blkdiscard -z -o $((8 * K)) -l $((4 * K)) "$DEV" || fail "block device: blkdiscard -z"
dd if=/dev/zero of="$TMP/exp.raw" bs=4k seek=2 count=1 conv=notrunc status=none || fail "dd"
dev_is "$TMP/exp.raw" "overlay on a block device, zeroed in part"
no_errors "overlay on a block device"
del "$ID"
img_check "$LD" "overlay on a block device"
same "$LD" "$TMP/exp.raw" "overlay on a block device"
losetup -d "$LD" && LD=
rm -f "$TMP/l.dev" "$TMP/exp.raw" "$TMP/dev.raw" "$TMP/lbase.raw"
note "block device: verified, opened again and verified, ENOSPC at its end, an overlay zeroed in part"

note "m) new clusters over zeros: from a synced reserve, the next run ahead, given back at del, leaked at a kill"
# A write into a cluster that reads zeros takes a cluster from a reserve of
# 2M (32 of 64k) appended and synced at once; its L2 entry needs no sync.
# As it is first used, the next run is appended and synced meanwhile.
R=$TMP/m.qcow2
qemu-img create -q -f qcow2 "$R" 64M || fail "qemu-img create"
# Clusters are appended from the end of the file's last cluster.
size0=$((($(stat -c %s "$R") + 64 * K - 1) / (64 * K) * 64 * K))
head -c $((45 * 64 * K)) /dev/urandom >"$TMP/m.data" || fail "making m.data"
add -t qcow2 -f "$R"
dd if="$TMP/m.data" of="$DEV" bs=64k count=5 oflag=direct status=none || fail "m: dd 5 clusters"
# An L2 table, then the reserve of 32 clusters, 5 of them used, and the next 32.
[ "$(stat -c %s "$R")" = $((size0 + 65 * 64 * K)) ] ||
	fail "m: the file has $(stat -c %s "$R") bytes, not $size0 + an L2 table + 2 runs of 32 clusters"
kill -9 "$(dev_field "$ID" daemon_pid)"
wait_until 20 state_is "$ID" QUIESCED || fail "m: not QUIESCED ($(dev_field "$ID" state))"
qemu-img check --output=json "$R" >"$TMP/check" 2>/dev/null
[ "$(jq '.corruptions // 0' "$TMP/check")" = 0 ] && [ "$(jq '.leaks // 0' "$TMP/check")" = 59 ] ||
	fail "m: killed: not 59 leaked clusters and no corruption: $(tr -d '\n' <"$TMP/check")"
timeout 30 "$Z" recover -n "$ID" >/dev/null || fail "m: recover failed"
wait_until 20 state_is "$ID" LIVE || fail "m: not LIVE ($(dev_field "$ID" state))"
# 40 more: the new daemon's first run, then 8 of the run it made ahead
# (whose sync has a second to come back).
dd if="$TMP/m.data" of="$DEV" bs=64k skip=5 seek=5 count=16 oflag=direct status=none ||
	fail "m: dd 16 more clusters"
sleep 1
dd if="$TMP/m.data" of="$DEV" bs=64k skip=21 seek=21 count=24 oflag=direct status=none ||
	fail "m: dd 24 more clusters"
cmp -n $((45 * 64 * K)) <(dd if="$DEV" bs=64k count=45 iflag=direct status=none) "$TMP/m.data" ||
	fail "m: the 45 clusters do not read back"
no_errors "m"
del "$ID"
# The new daemon's runs went back: the file ends at the image's end.
img_check "$R" "m: after del" leaks
[ "$(qemu-img check --output=json "$R" 2>/dev/null | jq '.leaks // 0')" = 59 ] ||
	fail "m: after del: $(check_said)"
end=$(qemu-img check --output=json "$R" 2>/dev/null | jq '.["image-end-offset"]')
[ "$(stat -c %s "$R")" = "$end" ] ||
	fail "m: after del the file has $(stat -c %s "$R") bytes, the image ends at $end"
# The old daemon's 64, then 40 of the new daemon's: its first run, and the next cut after 8.
[ "$end" = $((size0 + 105 * 64 * K)) ] ||
	fail "m: the image ends at $end, not $size0 + an L2 table + 104 clusters"
qemu-img check -q -r leaks "$R" >/dev/null 2>&1
img_check "$R" "m: leaks repaired"
add -t qcow2 -f "$R"
cmp -n $((45 * 64 * K)) <(dd if="$DEV" bs=64k count=45 iflag=direct status=none) "$TMP/m.data" ||
	fail "m: the 45 clusters do not read back after the repair"
del "$ID"
img_check "$R" "m: read back"
rm -f "$R" "$TMP/m.data"
note "reserve: 32 clusters appended at once and the next 32 ahead, 59 leaked at a kill, given back at del"

note "n) internal snapshots: the active layer written, every snapshot as it was"
# 4k clusters: an L2 table maps 2M, so the writes below unshare some tables
# and leave others shared.  s1 is src.raw; s2 (and the active layer) has
# 1M of 0x5a at 4M, so its clusters there are shared by s2 alone.
S=$TMP/n
mkdir "$S" || fail "mkdir $S"
snap_img() {
	qemu-img convert -f raw -O qcow2 -o cluster_size=4k "$TMP/src.raw" "$1" ||
		fail "qemu-img convert $1"
	qemu-img snapshot -c s1 "$1" || fail "qemu-img snapshot -c s1"
	qemu-io -f qcow2 -c "write -q -P 0x5a 4M 1M" "$1" >/dev/null || fail "qemu-io write"
	qemu-img snapshot -c s2 "$1" || fail "qemu-img snapshot -c s2"
}
# snaps_are IMG WHAT: IMG's s1 reads as src.raw, its s2 as $S/s2.raw
snaps_are() {
	local s
	for s in s1 s2; do
		rm -f "$S/$s.out"
		qemu-img convert -f qcow2 -l snapshot.name=$s -O raw "$1" "$S/$s.out" ||
			fail "$2: qemu-img convert -l snapshot.name=$s"
	done
	cmp "$S/s1.out" "$TMP/src.raw" >/dev/null || fail "$2: snapshot s1 changed"
	cmp "$S/s2.out" "$S/s2.raw" >/dev/null || fail "$2: snapshot s2 changed"
}
cp "$TMP/src.raw" "$S/s2.raw"
head -c $M /dev/zero | tr '\0' '\132' |
	dd of="$S/s2.raw" bs=1M seek=4 conv=notrunc status=none || fail "making s2.raw"
cp "$S/s2.raw" "$S/cur.raw"
snap_img "$S/snap.qcow2"
add -t qcow2 -f "$S/snap.qcow2"
dev_is "$S/s2.raw" "snapshots: the active layer"
[ "$(dev_field "$ID" snapshots)" = 2 ] || fail "snapshots: list says $(dev_field "$ID" snapshots)"
scribble "$S/cur.raw"
# Into the clusters s2 alone shares, and a discard over 2M of shared ones.
dd if="$TMP/patch" of="$DEV" bs=64k count=1 seek=$((4 * 16 + 3)) oflag=direct conv=notrunc \
	status=none || fail "writing at 4M+192k"
dd if="$TMP/patch" of="$S/cur.raw" bs=64k count=1 seek=$((4 * 16 + 3)) conv=notrunc \
	status=none || fail "writing cur.raw"
blkdiscard -o $((20 * M)) -l $((2 * M)) "$DEV" || fail "blkdiscard 20M+2M"
dd if=/dev/zero of="$S/cur.raw" bs=1M count=2 seek=20 conv=notrunc status=none
# Write zeroes from inside a shared cluster over 14 whole ones, ending inside one.
blkdiscard -z -o $((24 * M + 2 * K)) -l $((60 * K)) "$DEV" || fail "blkdiscard -z at 24M+2k"
dd if=/dev/zero of="$S/cur.raw" bs=1k count=60 seek=$((24 * K + 2)) conv=notrunc status=none
dev_is "$S/cur.raw" "snapshots: written"
"$Z" resize -n "$ID" 64M >/dev/null 2>"$TMP/err" && fail "snapshots: resize accepted"
[ "$(wc -l <"$TMP/err")" = 1 ] && grep -q "snapshots" "$TMP/err" ||
	fail "snapshots: resize refused with '$(cat "$TMP/err")'"
[ "$(blockdev --getsize64 "$DEV")" = $((32 * M)) ] || fail "snapshots: $DEV resized"
note "$(cat "$TMP/err")"
no_errors "snapshots"
del "$ID"
img_check "$S/snap.qcow2" "snapshots: written"
same "$S/snap.qcow2" "$S/cur.raw" "snapshots: the active layer"
snaps_are "$S/snap.qcow2" "snapshots: written"
[ "$(qinfo "$S/snap.qcow2" '."virtual-size"')" = $((32 * M)) ] || fail "snapshots: resized"
# A new daemon reads what the last one wrote.
add -t qcow2 -f "$S/snap.qcow2"
dev_is "$S/cur.raw" "snapshots: opened again"
del "$ID"
# Each snapshot served read-only, by name and by id; refused without ro=1
# or by a name it has not.
sum=$(sha256sum "$S/snap.qcow2")
add -t qcow2 -f "$S/snap.qcow2" ro=1 snapshot=s1
dev_is "$TMP/src.raw" "snapshot=s1"
del "$ID"
add -t qcow2 -f "$S/snap.qcow2" ro=1 snapshot="$(qemu-img snapshot -l "$S/snap.qcow2" |
	awk '$2 == "s2" { print $1 }')"
dev_is "$S/s2.raw" "snapshot=<s2's id>"
del "$ID"
expect_err "snapshot 's1': .*add ro=1" add -t qcow2 -f "$S/snap.qcow2" snapshot=s1
expect_err "no internal snapshot named 's3'" add -t qcow2 -f "$S/snap.qcow2" ro=1 snapshot=s3
# The first entry's extra data said to be 64k long (qemu's bound: 1k).
cp "$S/snap.qcow2" "$S/bad.qcow2"
poke "$S/bad.qcow2" $(($(header "$S/bad.qcow2" 64 8) + 36)) 00 01 00 00
expect_err "snapshot table .* is corrupt" add -t qcow2 -f "$S/bad.qcow2" ro=1 snapshot=s2
rm -f "$S/bad.qcow2"
[ "$(sha256sum "$S/snap.qcow2")" = "$sum" ] || fail "snapshot=: the image changed"
# A snapshot taken at 24M of an image grown to 40M since: served at 24M,
# with its own data.
qemu-img create -q -f qcow2 -o cluster_size=4k "$S/grow.qcow2" 24M || fail "qemu-img create"
qemu-io -f qcow2 -c "write -q -P 0x33 0 24M" "$S/grow.qcow2" >/dev/null || fail "qemu-io write"
qemu-img snapshot -c small "$S/grow.qcow2" || fail "qemu-img snapshot -c small"
if qemu-img resize -q "$S/grow.qcow2" 40M 2>"$TMP/err"; then
	qemu-io -f qcow2 -c "write -q -P 0x44 0 1M" "$S/grow.qcow2" >/dev/null ||
		fail "qemu-io write"
	head -c $((24 * M)) /dev/zero | tr '\0' '\063' >"$S/small.raw"
	add -t qcow2 -f "$S/grow.qcow2" ro=1 snapshot=small
	dev_is "$S/small.raw" "snapshot=small, 24M of a 40M image"
	del "$ID"
else
	skip_check "a snapshot smaller than its image" "qemu-img resize: $(head -1 "$TMP/err")"
fi
# Deleting the snapshots frees what only they held: every refcount right,
# or qemu-img check finds leaks or errors.
qemu-img snapshot -d s1 "$S/snap.qcow2" && qemu-img snapshot -d s2 "$S/snap.qcow2" ||
	fail "qemu-img snapshot -d"
img_check "$S/snap.qcow2" "snapshots deleted"
same "$S/snap.qcow2" "$S/cur.raw" "snapshots deleted"
note "snapshots: 8 writes, a discard and write zeroes, check clean, s1 and s2 unchanged and served with snapshot=, clean again once deleted"
# Verified writes from 2 queues racing on the shared tables: 16 jobs of 1M
# each, one CPU (so one queue) each in turn, two on every 2M table.
snap_img "$S/race.qcow2"
add -t qcow2 -f "$S/race.qcow2" -q 2
fio_ok n1 --filename="$DEV" --rw=randwrite --bsrange=4k-64k --iodepth=16 --numjobs=16 \
	--offset_increment=1M --size=1M --cpus_allowed=0-1 --cpus_allowed_policy=split \
	--verify=crc32c --do_verify=1 --verify_fatal=1
no_errors "snapshots, 2 queues"
del "$ID"
img_check "$S/race.qcow2" "snapshots, 2 queues"
snaps_are "$S/race.qcow2" "snapshots, 2 queues"
qemu-img snapshot -d s1 "$S/race.qcow2" && qemu-img snapshot -d s2 "$S/race.qcow2" ||
	fail "qemu-img snapshot -d"
img_check "$S/race.qcow2" "snapshots, 2 queues, deleted"
note "snapshots, 2 queues: verified writes, check clean, s1 and s2 unchanged, clean once deleted"
# kill -9 under verified writes: at the kill, leaks at worst and the
# snapshots as they were; recovered, fio goes on and verifies.
snap_img "$S/kill.qcow2"
add -t qcow2 -f "$S/kill.qcow2"
bg_verified kill --bs=4k --iodepth=16 --size=32M --verify_backlog=256
sleep 3
fio_running || fail "snapshots, kill -9: fio ended early: $(tail -3 "$TMP/kill.log")"
kill -9 "$(dev_field "$ID" daemon_pid)"
wait_until 20 state_is "$ID" QUIESCED || fail "snapshots: not QUIESCED after kill -9"
img_check "$S/kill.qcow2" "snapshots: killed under writes" leaks
snaps_are "$S/kill.qcow2" "snapshots: killed under writes"
note "snapshots, killed under writes: check: $(check_said); s1 and s2 unchanged"
timeout 30 "$Z" recover -n "$ID" >/dev/null || fail "snapshots: recover failed"
wait_until 20 state_is "$ID" LIVE || fail "snapshots: not LIVE after recover"
sleep 2
bg_fio_stop kill
no_errors "snapshots, recovered"
del "$ID"
img_check "$S/kill.qcow2" "snapshots: recovered" leaks
snaps_are "$S/kill.qcow2" "snapshots: recovered"
rm -rf "$S"
note "snapshots, recovered: fio verified across the kill, check: $(check_said)"

note "i) refused: one line each, nothing left, the image untouched"
I=$TMP/i
mkdir "$I" || fail "mkdir $I"
# refused PATTERN IMG: add -t qcow2 -f IMG fails with PATTERN; IMG unchanged
refused() {
	local sum
	sum=$(sha256sum "$2")
	expect_err "$1" add -t qcow2 -f "$2"
	[ "$(sha256sum "$2")" = "$sum" ] || fail "refusing $(basename "$2") changed it"
}
mk() { qemu-img create -q -f qcow2 "$@" 16M || fail "qemu-img create $*"; }
truncate -s 16M "$I/raw.img"
refused "not a qcow2" "$I/raw.img"
mk "$I/snap.qcow2"
qemu-img snapshot -c s1 "$I/snap.qcow2" || fail "qemu-img snapshot"
# ro=1 serves its active layer, read-only, and leaves it as it was.
qemu-img convert -O raw "$I/snap.qcow2" "$I/snap.raw" || fail "qemu-img convert snap"
sum=$(sha256sum "$I/snap.qcow2")
add -t qcow2 -f "$I/snap.qcow2" ro=1
[ "$(blockdev --getro "$DEV")" = 1 ] || fail "ro=1: $DEV is not read-only"
dev_is "$I/snap.raw" "ro=1 with a snapshot"
dd if=/dev/zero of="$DEV" bs=4k count=1 oflag=direct status=none 2>/dev/null &&
	fail "ro=1: a write went through"
del "$ID"
[ "$(sha256sum "$I/snap.qcow2")" = "$sum" ] || fail "ro=1: the image changed"
note "ro=1: an image with a snapshot served read-only, unchanged"
mk "$I/dirty.qcow2"
set_incompat "$I/dirty.qcow2" 0
[ "$(qinfo "$I/dirty.qcow2" '."dirty-flag"')" = true ] || fail "dirty.qcow2 is not dirty"
refused "dirty" "$I/dirty.qcow2"
mk "$I/corrupt.qcow2"
set_incompat "$I/corrupt.qcow2" 1
[ "$(qinfo "$I/corrupt.qcow2" '."format-specific".data.corrupt')" = true ] ||
	fail "corrupt.qcow2 is not marked corrupt"
refused "corrupt" "$I/corrupt.qcow2"
mk "$I/bit10.qcow2"
set_incompat "$I/bit10.qcow2" 10
qemu-img info "$I/bit10.qcow2" >/dev/null 2>&1 && fail "qemu-img opens bit10.qcow2"
refused "incompatible" "$I/bit10.qcow2"
# A compression type past zstd (1): the header's byte 104.
qemu-img create -q -f qcow2 -o compression_type=zstd "$I/ct2.qcow2" 16M || fail "qemu-img create ct2"
poke "$I/ct2.qcow2" 104 02
refused "compression type 2: not zlib \(0\) or zstd \(1\)" "$I/ct2.qcow2"
# zstd in byte 104 without its incompatible bit: a header qemu refuses too.
mk "$I/ctbit.qcow2"
poke "$I/ctbit.qcow2" 104 01
refused "compression type 1 with its incompatible bit clear: corrupt header" "$I/ctbit.qcow2"
if qemu-img create -q -f qcow2 -o data_file="$I/data.raw" "$I/ext.qcow2" 16M 2>/dev/null; then
	refused "data.file|external|incompatible" "$I/ext.qcow2"
else
	skip_check "external data file" "qemu-img here cannot make one"
fi
if qemu-img create -q -f qcow2 -o extended_l2=on "$I/el2.qcow2" 16M 2>/dev/null; then
	refused "extended|subcluster|incompatible" "$I/el2.qcow2"
else
	skip_check "extended L2" "qemu-img here cannot make one"
fi
# AES (crypt_method 1), which qemu-img no longer makes; a LUKS image it
# makes takes seconds of key stretching.  crypt_method is the header's
# 4 bytes at 32, and qemu reads the image as AES-encrypted.
mk -o compat=0.10 "$I/aes.qcow2"
poke "$I/aes.qcow2" 32 00 00 00 01
[ "$(qinfo "$I/aes.qcow2" .encrypted)" = true ] || fail "qemu does not see aes.qcow2 encrypted"
refused "encrypt" "$I/aes.qcow2"
cp "$TMP/patch" "$I/gone.raw" || fail "cp"
(cd "$I" && qemu-img create -q -f qcow2 -b gone.raw -F raw orphan.qcow2) ||
	fail "qemu-img create orphan"
rm "$I/gone.raw"
refused "backing.*gone\.raw|gone\.raw.*backing" "$I/orphan.qcow2"
expect_err "nosuch\.qcow2.*No such file" add -t qcow2 -f "$I/nosuch.qcow2"
# A chain that loops (A backed by B, B by A; rebase -u does not look).
(cd "$I" && mk loopa.qcow2 && mk -b loopa.qcow2 -F qcow2 loopb.qcow2 &&
	qemu-img rebase -q -u -b loopb.qcow2 -F qcow2 loopa.qcow2) || fail "making a looping chain"
refused "backing file '$I/loopa.qcow2': the same file as '$I/loopa.qcow2' \(a loop in the backing chain\)" \
	"$I/loopa.qcow2"
# An L2 entry that names the L1 table (COPIED: written in place), and one
# past the file's end, in another table: a corrupt image.  A write there
# went into the L1 table (or was cut off by the next cluster appended); now
# IO to each such table's guest range (2M with 4k clusters) fails, said in
# one line each, the rest is served, and the L1 table stays as it was.
qemu-img create -q -f qcow2 -o cluster_size=4096 "$I/l2bad.qcow2" 16M || fail "qemu-img create l2bad"
qemu-io -f qcow2 -c "write -P 0x33 0 8k" -c "write -P 0x44 4M 4k" -c "write -P 0x55 6M 4k" \
	"$I/l2bad.qcow2" >"$TMP/qio" || fail "qemu-io l2bad: $(cat "$TMP/qio")"
l1=$(header "$I/l2bad.qcow2" 40 8)
l2=$(($(header "$I/l2bad.qcow2" "$l1" 8) & 0x00fffffffffffe00))
l2c=$(($(header "$I/l2bad.qcow2" $((l1 + 24)) 8) & 0x00fffffffffffe00))
be64() { local i; for i in 56 48 40 32 24 16 8 0; do printf '%02x ' $((($1 >> i) & 255)); done; }
# shellcheck disable=SC2046
poke "$I/l2bad.qcow2" "$l2" $(be64 $(((1 << 63) | l1)))
# shellcheck disable=SC2046
poke "$I/l2bad.qcow2" "$l2c" $(be64 $(((1 << 63) | (1 << 40))))
l1sum=$(dd if="$I/l2bad.qcow2" bs=1 skip="$l1" count=4096 status=none | sha256sum)
add -t qcow2 -f "$I/l2bad.qcow2" --no-part-scan
dd if=/dev/zero of="$DEV" bs=4k count=1 oflag=direct status=none 2>/dev/null &&
	fail "l2bad: a write to a cluster the L1 table is went through"
dd if="$DEV" of=/dev/null bs=4k count=1 skip=1536 iflag=direct status=none 2>/dev/null &&
	fail "l2bad: a read of a cluster past the file's end went through"
cmp -s <(dd if="$DEV" bs=4k count=1 skip=1024 iflag=direct status=none) \
	<(head -c 4096 /dev/zero | tr '\0' D) || fail "l2bad: the data at 4M (0x44), in another table, did not read back"
grep -q "the L2 entry of guest offset 0 names host offset $l1, in the L1 table: a corrupt image, IO to guest offsets 0-2097151 fails" \
	"/run/zublk/$ID.log" || fail "l2bad: no line for the L1 entry: $(tail -3 "/run/zublk/$ID.log")"
grep -q "the L2 entry of guest offset 6291456 names host offset $((1 << 40)), past the file's end: a corrupt image, IO to guest offsets 6291456-8388607 fails" \
	"/run/zublk/$ID.log" || fail "l2bad: no line for the entry past the end: $(tail -3 "/run/zublk/$ID.log")"
del "$ID"
[ "$(dd if="$I/l2bad.qcow2" bs=1 skip="$l1" count=4096 status=none | sha256sum)" = "$l1sum" ] ||
	fail "l2bad: the L1 table changed"
note "L2 entries naming the L1 table and past the end: IO there fails, the table kept"
# qemu's image locks, both ways: a served image is not qemu's to open for
# writing, nor is one qemu-nbd serves zublk's; a second device is refused.
mk "$I/lock.qcow2"
add -t qcow2 -f "$I/lock.qcow2"
qemu-img check "$I/lock.qcow2" >"$TMP/check" 2>&1 && fail "qemu-img check opened a served image"
grep -q 'lock' "$TMP/check" || fail "qemu-img check: $(head -2 "$TMP/check")"
"$Z" add -t qcow2 -f "$I/lock.qcow2" >/dev/null 2>"$TMP/err" && fail "a second device on it"
[ "$(wc -l <"$TMP/err")" = 1 ] && grep -q "in use" "$TMP/err" || fail "second: $(cat "$TMP/err")"
note "$(cat "$TMP/err")"
del "$ID"
if command -v qemu-nbd >/dev/null && modprobe nbd 2>/dev/null && [ -b /dev/nbd0 ]; then
	mkdir -p "$(readlink -f /var/lock)" # qemu-nbd -c puts a socket there
	qemu-nbd -c /dev/nbd0 -f qcow2 "$I/lock.qcow2" >"$TMP/qnbd" 2>&1 ||
		fail "qemu-nbd -c: $(cat "$TMP/qnbd")"
	expect_err "in use" add -t qcow2 -f "$I/lock.qcow2"
	qemu-nbd -d /dev/nbd0 >/dev/null 2>&1
	wait_until 10 sh -c "! pgrep -x qemu-nbd >/dev/null" || fail "qemu-nbd did not end"
	add -t qcow2 -f "$I/lock.qcow2"
	del "$ID"
else
	skip_check "an image qemu-nbd serves" "no qemu-nbd or nbd module"
fi
expect_err "target qcow2: needs file=PATH" add -t qcow2
expect_err "buffered '2': not 0 or 1" add -t qcow2 -f "$I/lock.qcow2" buffered=2
# O_DIRECT data beside buffered tables in one page: refused.
qemu-img create -q -f qcow2 -o cluster_size=512 "$I/c512.qcow2" 16M || fail "qemu-img create"
expect_err "c512\.qcow2.*clusters of 512 bytes, below a page" add -t qcow2 -f "$I/c512.qcow2" \
	buffered=0
note "every refusal: one line, no device, no daemon"
exit 0
