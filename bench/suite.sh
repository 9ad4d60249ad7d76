#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# suite.sh - the benchmark matrix, run as root next to the ublk driver (in
# the VM: bench/run boots one and runs this in it).  Prints one line
#   RAW,round,config,job,device,iops,mibs,lat_mean_us,lat_p99_us,cpu_us_per_io,enters_per_io,sleeps_per_io,busy_cpu_us_per_io
# per fio run (bench/report.py turns them into tables and a chart) and
# progress on stderr.
#
# Devices (all exist at once, so every round takes turns between them):
#   nullb     null_blk, queue_mode=2 (blk-mq), max_sectors 1024 (512 KiB)
#   nullb-busy   (1 queue, 4k randread QD32 only; a reference, no target)
#             null_blk again with fio on CPU 0 and every other CPU kept
#             busy by a spinning shell: what null_blk does when the other
#             vCPU works, as a ublk daemon's does (bench/notes.md)
#   znull-M   zublk null in data mode M
#   kloop-dio the kernel loop driver, direct-io on, over a tmpfs file
#   kloop     the kernel loop driver, direct-io off, over the same file
#   zloop-M   zublk loop in data mode M over the same file
#   znull-poll, zloop-poll   the default mode with --poll-us 100: always
#             look for work 100 us before sleeping (1 queue)
#   znull-nopoll, zloop-nopoll   the default mode with --poll-us off: sleep
#             at once (1 and 2 queues); the default polls adaptively
#   znull-batch, zloop-batch   the default mode with --batch
#             (UBLK_F_BATCH_IO; 1 queue)
#   znull-nofill  the default mode with fill=none: reads leave the pages
#             as they are, as null_blk does (1 queue)
#   zloop-nomap  the default mode with map=0: no straight copies into the
#             mapped tmpfs file, every request through io_uring (1 queue)
#   znull-shm, zloop-shm   the default mode with --shmem: fio's buffers
#             (iomem=mmapshared) in a tmpfs file the device registered
#             (UBLK_F_SHMEM_ZC), where the kernel has it (1 queue)
#   znull-shmbuf, zloop-shmbuf   fio's buffers in that file, on devices
#             without --shmem: what such buffers cost by themselves
#   md0/zstripe, md1/zmirror   (config "raid": kernel md over kernel loop
#             devices vs zublk stripe/mirror over tmpfs files, zero copy)
#   knbd/znbd-M   (config "nbd": the kernel's nbd client, nbd-client, vs
#             zublk nbd in data mode M, 1 queue and 1 connection each, to
#             one nbdkit memory export over TCP on 127.0.0.1)
#   nullbz/zzoned-M   (config "zoned": null_blk's zoned mode, memory
#             backed, vs zublk zoned in data mode M over a directory of zone
#             files on tmpfs; 64M zones, none conventional, 4k blocks; fio
#             --zonemode=zbd, so writes go at the write pointers;
#             zzoned-nocopy: zero-copy with copy_max=0, every request
#             through io_uring instead of copied in the queue thread)
#   kloop/zloop-nopi/zloop-pi-M/zloop-meta   (config "integrity": zublk
#             loop with integrity metadata, meta= pi=crc16, in data mode M,
#             vs the same without metadata (default mode) and the kernel loop
#             driver (direct-io off), each over a tmpfs file of its own, half
#             the size; the block layer makes and checks the PI, T10 type 1;
#             zloop-meta: metadata without PI (pi=none), nothing made or
#             checked, default mode: what moving the metadata costs)
#   kqnbd/zqcow2-M/zqraw   (config "qcow2": qemu-nbd serving a qcow2
#             image on tmpfs through the kernel's nbd client, vs zublk qcow2
#             in data mode M over one of its own, and zublk loop over a raw
#             file (default mode); half the size, every cluster allocated)
#   kdloop-dio/kdloop/zdloop-M/zdloop-buf, kdqnbd/kdqnbd-wb/zdqcow2-M/
#             zdqcow2-buf   (config "disk": files on ext4 on a disk, half
#             the size each: the kernel loop driver, direct-io on and off,
#             and zublk loop with buffered=0 (its default) in data mode M
#             and with buffered=1 over one raw file; qemu-nbd through the
#             kernel's nbd client with --cache=none --aio=native and with
#             its default (writeback), and zublk qcow2 with buffered=0 in
#             data mode M and with its default, each over a qcow2 image of
#             its own, every cluster allocated)
#   kaqnbd/kaqnbd-wb/zaqcow2-M/zaqcow2-buf   (config "alloc": writes into
#             a fresh qcow2 image on that disk's ext4, every run its own
#             image of half the size, each block written once at most:
#             qemu-nbd as in "disk", both ways, vs zublk qcow2 with
#             buffered=0 in the default mode and with its default; jobs
#             BENCH_ALLOC_JOBS, "aw4k-qd1 aw4k-qd32 aw64k-qd8": 4k random
#             writes at QD1 and QD32, 64k sequential writes at QD8)
#   ksd-pi/ksd   (config "integrity", where the kernel has scsi_debug):
#             the kernel's own device with T10 PI, scsi_debug dif=1 dix=1
#             (T10-DIF-TYPE1-CRC, in memory, no delay), with the block
#             layer's PI on, and a second one of its own store with the
#             block layer's PI off (write_generate and read_verify 0)
# Configs: 1q1j (1 queue, 1 fio job), 2q2j (2 queues, 2 jobs with
# cpus_allowed_policy=split; copy and the default mode, plus
# znull-t2/zloop-t2: the default mode with --threads 2, a thread per queue
# where the default serves both queues from one, and znull-pin/zloop-pin:
# those threads pinned with --pin-queues), 1q2j (1 queue, 2 jobs: the default modes
# only, the baseline 2q2j must beat), raid, nbd, zoned, integrity, qcow2, disk,
# alloc.
# Every device uses the "none" IO scheduler.
#
# Knobs (environment): BENCH_ROUNDS (3), BENCH_RUNTIME (3 s per run, after
# BENCH_RAMP 1 s; fio's units, as in 500ms, or seconds), BENCH_SIZE_MB
# (512), BENCH_CONFIGS ("1q1j 2q2j 1q2j raid nbd zoned integrity qcow2 disk
# alloc"),
# BENCH_JOBS (all; nbd's, zoned's, integrity's, qcow2's and disk's too),
# BENCH_JOBS_2J (the 2-job configs' jobs: BENCH_JOBS), BENCH_MODES (every
# mode the kernel has), BENCH_SET (all; or "targets": only the devices the
# targets compare, none of the variants), BENCH_ONLY (an extended regular
# expression: run only the devices whose names, as in devices_for, match;
# for focused boots), BENCH_DISK (configs disk's and alloc's disk, made ext4: all on it
# is lost; default: the VM's virtio disk with serial zublk-disk, which
# bench/run attaches), BENCH_FLUSH_MS (0; else that disk's cache flushes
# take this long: dm-delay over it), BENCH_ZUBLK (build/zublk: the binary
# to measure, a path in the tree).
set -euo pipefail
cd "$(dirname "$0")/.."
# BENCH_ZUBLK: another binary (a path in the tree, as build/zublk-old), for a before/after pair.
Z=${ZUBLK:-$PWD/${BENCH_ZUBLK:-build/zublk}}
# fio without the libraries of engines never used here (tests/vm/fio-lean,
# made by bench/run on the host): it starts in half the time in the VM.
[ -x build/fio-lean/bin/fio ] && PATH=$PWD/build/fio-lean/bin:$PATH
rounds=${BENCH_ROUNDS:-3}
runtime=${BENCH_RUNTIME:-3}
ramp=${BENCH_RAMP:-1}
size_mb=${BENCH_SIZE_MB:-512}
configs=${BENCH_CONFIGS:-1q1j 2q2j 1q2j raid nbd zoned integrity qcow2 disk alloc}
all_jobs="rr4k-qd1 rr4k-qd32 rw4k-qd32 sr128k-qd16 sw512k-qd8"
jobs=${BENCH_JOBS:-$all_jobs}
jobs_2j=${BENCH_JOBS_2J:-$jobs}
alloc_jobs=${BENCH_ALLOC_JOBS:-aw4k-qd1 aw4k-qd32 aw64k-qd8}
set_=${BENCH_SET:-all}
case $set_ in all | targets) ;; *) echo "suite.sh: BENCH_SET=$set_: not all or targets" >&2; exit 1 ;; esac
raid_jobs=${BENCH_RAID_JOBS:-rr4k-qd32 sr128k-qd16 sw128k-qd16}
only=${BENCH_ONLY:-}

die() { echo "suite.sh: $*" >&2; exit 1; }
log() { echo "[bench $(date +%T)] $*" >&2; }
[ "$(id -u)" = 0 ] || die "must run as root"
for t in fio losetup python3 jq; do command -v $t >/dev/null || die "$t not found (scripts/setup.sh)"; done
[ -x "$Z" ] || die "$Z not built (make)"
# A bare devtmpfs has no /dev/fd, which process substitution needs.
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
for m in ublk_drv loop; do modprobe $m 2>/dev/null || true; done
[ -c /dev/ublk-control ] || die "no /dev/ublk-control (run it through bench/run, which boots the VM)"
for c in 2q2j 1q2j; do
	if grep -qw "$c" <<<"$configs" && [ "$(nproc)" -lt 2 ]; then
		die "config $c: needs 2 CPUs, this machine has $(nproc) (BENCH_CONFIGS)"
	fi
done

T=$(mktemp -d /tmp/zublk-bench.XXXXXX)
LOOPS=()
MDS=()
SPIN=()
QNBDS=()
DISK_MNT=
SLOW_DM=
NBDKIT=
stop_spin() { # the spinners of nullb-busy
	((${#SPIN[@]})) || return 0
	kill "${SPIN[@]}" 2>/dev/null || true
	wait "${SPIN[@]}" 2>/dev/null || true
	SPIN=()
}
finish() {
	stop_spin
	pkill -9 -x fio 2>/dev/null || true
	timeout 60 "$Z" del --all >/dev/null 2>&1 || true
	for m in "${MDS[@]}"; do mdadm --stop "$m" >/dev/null 2>&1 || true; done
	for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null || true; done
	# (errexit holds in this trap too: nothing here may fail it)
	[ -b /dev/nbd0 ] && nbd-client -d /dev/nbd0 >/dev/null 2>&1 || true
	[ -n "$NBDKIT" ] && kill "$NBDKIT" 2>/dev/null || true
	for n in /sys/kernel/config/nullb/zb*; do
		[ -d "$n" ] && { echo 0 >"$n/power" 2>/dev/null; rmdir "$n" 2>/dev/null; } || true
	done
	[ -n "${SCSI_DEBUG:-}" ] && rmmod scsi_debug 2>/dev/null || true
	for q in "${QNBDS[@]}"; do qemu-nbd -d "$q" >/dev/null 2>&1 || true; done
	if [ -n "$DISK_MNT" ]; then
		qnbd_gone || true
		umount "$DISK_MNT" 2>/dev/null || umount -l "$DISK_MNT" 2>/dev/null || true
	fi
	[ -n "$SLOW_DM" ] && dmsetup remove "$SLOW_DM" >/dev/null 2>&1 || true
	umount "$T/tmpfs" 2>/dev/null || true
	umount "$T/shm" 2>/dev/null || true
	rm -rf "$T"
}
trap finish EXIT

# --- devices -----------------------------------------------------------------
declare -A DEV PID ZID
set_none() { # set_none /dev/X: the "none" scheduler
	local s
	s=/sys/block/$(basename "$(readlink -f "$1")")/queue/scheduler
	[ -e "$s" ] || return 0 # bio based (md): no scheduler at all
	[ -w "$s" ] && echo none >"$s" 2>/dev/null || true
	grep -q '\[none\]' "$s" 2>/dev/null || die "$1: cannot set scheduler none ($(cat "$s"))"
}
nullb() { # nullb NAME QUEUES
	local n=/sys/kernel/config/nullb/$1
	mkdir "$n" || die "null_blk configfs: mkdir $n failed"
	echo 2 >"$n/queue_mode"
	echo "$2" >"$n/submit_queues"
	echo 1024 >"$n/max_sectors"
	echo "$size_mb" >"$n/size"
	echo 512 >"$n/blocksize"
	echo 1 >"$n/power"
	# Newer kernels name the disk after the configfs item, older ones nullbN.
	DEV[$1]=/dev/$1
	[ -b "${DEV[$1]}" ] || DEV[$1]=/dev/nullb$(cat "$n/index")
	[ -b "${DEV[$1]}" ] || die "null_blk $1: no /dev/$1 nor ${DEV[$1]}"
	set_none "${DEV[$1]}"
}
# json_field KEY ID: KEY of `zublk list -n ID --json` (jq: Python starts slowly in the VM)
json_field() {
	"$Z" list -n "$2" --json | jq -r ".[0].$1 // empty"
}
zadd() { # zadd NAME ARGS...
	local name=$1 dev id
	shift
	dev=$("$Z" add "$@" 2>"$T/add.err") || die "zublk add $*: $(cat "$T/add.err")"
	id=${dev#/dev/ublkb}
	DEV[$name]=$dev
	ZID[$name]=$id
	PID[$name]=$(json_field daemon_pid "$id")
	[ -n "${PID[$name]}" ] || die "zublk list -n $id --json: no daemon_pid"
	set_none "$dev"
	# A daemon maps its tmpfs files, and its first touch of each page takes
	# a fault: read the device once now, so that no first round pays that
	# (measured: a cold 2-queue loop device's first 4k run at 2-3x the CPU
	# per IO of its later ones).
	case $name in
	zloop* | zstripe* | zmirror*)
		dd if="$dev" of=/dev/null bs=1M iflag=direct status=none || die "reading $name ($dev) once failed"
		;;
	esac
}
kloop() { # kloop NAME on|off FILE
	local l
	l=$(losetup -f --show --direct-io="$2" "$3") || die "losetup --direct-io=$2 $3 failed"
	LOOPS+=("$l")
	# losetup falls back to buffered with a warning only: a "dio on" row must be.
	[ "$2" = off ] || [ "$(cat "/sys/block/${l#/dev/}/loop/dio")" = 1 ] ||
		die "$l: direct IO did not take over $3"
	DEV[$1]=$l
	set_none "$l"
}

modes=${BENCH_MODES:-$("$Z" features | sed -n 's/^data modes://p')}
[ -n "$modes" ] || die "zublk features: no data modes"
default_mode=$("$Z" features | sed -n 's/^default mode: //p')

mkdir "$T/tmpfs" "$T/rows"
mount -t tmpfs -o size=$((size_mb * 7 + 64))m zublk-bench "$T/tmpfs"
F=$T/tmpfs/disk.img
SHM=$T/shm/buf # the -shm rows' fio buffers
log "filling ${size_mb}M files on tmpfs"
dd if=/dev/urandom of="$F" bs=1M count="$size_mb" status=none

# The mode a target takes when none is asked for (null prefers zero-copy).
target_default() {
	local dev id m
	dev=$("$Z" add -t "$@" 2>"$T/add.err") || die "zublk add -t $*: $(cat "$T/add.err")"
	id=${dev#/dev/ublkb}
	m=$(json_field mode "$id")
	"$Z" del -n "$id" >/dev/null
	echo "$m"
}
null_default=$(target_default null size=1M)
loop_default=$(target_default loop -f "$F")
has_mode() { [[ " $modes " == *" $1 "* ]]; }
for m in $null_default $loop_default; do has_mode "$m" || modes="$modes $m"; done
# 2 queues: copy and the default mode (the others are in the 1-queue rows);
# the targets compare the default mode only.
two_q_copy=copy
[ "$set_" = targets ] && two_q_copy=
two_q_modes() { for m in $two_q_copy "$@"; do if has_mode "$m"; then echo "$m"; fi; done | sort -u; }
null_modes2q=${BENCH_MODES2Q:-$(two_q_modes "$null_default")}
loop_modes2q=${BENCH_MODES2Q:-$(two_q_modes "$loop_default")}

need() { grep -qw "$1" <<<"$configs"; }
# The configs that run on null_blk, kernel loop and zublk null/loop.
need_devices() { need 1q1j || need 2q2j || need 1q2j; }
if need_devices; then
	modprobe null_blk nr_devices=0 2>/dev/null || die "modprobe null_blk failed"
	[ -d /sys/kernel/config/nullb ] || die "null_blk has no configfs (/sys/kernel/config/nullb)"
	nullb zb1 1
	nullb zb2 2
	DEV[nullb-1q]=${DEV[zb1]}
	DEV[nullb-busy-1q]=${DEV[zb1]}
	DEV[nullb-2q]=${DEV[zb2]}
	kloop kloop-dio on "$F"
	kloop kloop off "$F"
	for m in $modes; do
		zadd "znull-$m-1q" -t null --mode "$m" -q 1 size=${size_mb}M
		zadd "zloop-$m-1q" -t loop --mode "$m" -q 1 -f "$F"
	done
	for m in $null_modes2q; do zadd "znull-$m-2q" -t null --mode "$m" -q 2 size=${size_mb}M; done
	for m in $loop_modes2q; do zadd "zloop-$m-2q" -t loop --mode "$m" -q 2 -f "$F"; done
fi
if [ "$set_" = all ] && need_devices; then
	# Polling before sleeping (--poll-us), the default mode: always, never.
	zadd znull-poll-1q -t null -q 1 --poll-us 100 size=${size_mb}M
	zadd zloop-poll-1q -t loop -q 1 --poll-us 100 -f "$F"
	for q in 1 2; do
		zadd znull-nopoll-${q}q -t null -q $q --poll-us off size=${size_mb}M
		zadd zloop-nopoll-${q}q -t loop -q $q --poll-us off -f "$F"
	done
	# null as null_blk is: reads touch no data.
	zadd znull-nofill-1q -t null -q 1 size=${size_mb}M fill=none
	# loop without mapping the tmpfs file: every request the io_uring way.
	zadd zloop-nomap-1q -t loop -q 1 -f "$F" map=0
	# Batched fetch and commit commands (UBLK_F_BATCH_IO), when the kernel has them.
	if "$Z" features | grep -qw BATCH_IO; then
		zadd znull-batch-1q -t null -q 1 --batch size=${size_mb}M
		zadd zloop-batch-1q -t loop -q 1 --batch -f "$F"
	fi
	# fio's buffers in a tmpfs file the device registered (--shmem,
	# UBLK_F_SHMEM_ZC): the data stays in place, in no mode's way.
	if "$Z" features | grep -qw SHMEM_ZC; then
		# Its own tmpfs, in 2 MiB pages where the kernel can: the driver
		# matches a request piece by piece, a piece no larger than a page.
		mkdir "$T/shm"
		mount -t tmpfs -o size=32m,huge=${BENCH_SHM_HUGE:-always} zublk-shm "$T/shm" ||
			die "cannot mount a tmpfs for the -shm rows"
		truncate -s 16M "$SHM"
		zadd znull-shm-1q -t null -q 1 --shmem "$SHM" size=${size_mb}M
		zadd zloop-shm-1q -t loop -q 1 --shmem "$SHM" -f "$F"
		log "-shm rows' buffers: $(grep ShmemHugePages /proc/meminfo | tr -s ' ') in 2 MiB pages"
		# The same fio buffers on devices without it: what the buffers cost.
		zadd znull-shmbuf-1q -t null -q 1 size=${size_mb}M
		zadd zloop-shmbuf-1q -t loop -q 1 -f "$F"
	fi
	# The other placements with 2 queues: a thread per queue (the default
	# serves both from one), and those threads pinned to their queue's CPUs.
	zadd znull-t2-2q -t null -q 2 --threads 2 size=${size_mb}M
	zadd zloop-t2-2q -t loop -q 2 --threads 2 -f "$F"
	zadd znull-pin-2q -t null -q 2 --threads 2 --pin-queues size=${size_mb}M
	zadd zloop-pin-2q -t loop -q 2 --threads 2 --pin-queues -f "$F"
fi

# --- fio -----------------------------------------------------------------------
job_args() {
	case $1 in
	rr4k-qd1) echo "--rw=randread --bs=4k --iodepth=1" ;;
	rr4k-qd32) echo "--rw=randread --bs=4k --iodepth=32" ;;
	rw4k-qd32) echo "--rw=randwrite --bs=4k --iodepth=32" ;;
	sr128k-qd16) echo "--rw=read --bs=128k --iodepth=16" ;;
	sw128k-qd16) echo "--rw=write --bs=128k --iodepth=16" ;;
	sw512k-qd8) echo "--rw=write --bs=512k --iodepth=8" ;;
	aw4k-qd1) echo "--rw=randwrite --bs=4k --iodepth=1" ;;
	aw4k-qd32) echo "--rw=randwrite --bs=4k --iodepth=32" ;;
	aw64k-qd8) echo "--rw=write --bs=64k --iodepth=8" ;;
	*) die "unknown job $1" ;;
	esac
}
snap() { # snap NAME FILE: the daemon's counters, CPU ticks and voluntary context switches
	if [ -n "${ZID[$1]:-}" ]; then
		{
			"$Z" list -n "${ZID[$1]}" --json
			echo
			cat "/proc/${PID[$1]}/stat"
			cat /proc/"${PID[$1]}"/task/*/status 2>/dev/null |
				awk '$1 == "voluntary_ctxt_switches:" { n += $2 } END { print "csw", n + 0 }'
		} >"$2"
	else
		: >"$2"
	fi
}
# run ROUND CONFIG JOB NAME NJOBS
run() {
	local round=$1 cfg=$2 job=$3 name=$4 nj=$5 dev=${DEV[$4]} extra=() c
	[ "$nj" -gt 1 ] && extra=(--numjobs="$nj" --group_reporting --cpus_allowed=0-$(($(nproc) - 1)) --cpus_allowed_policy=split)
	if [ "$name" = nullb-busy-1q ]; then
		extra=(--cpus_allowed=0)
		for ((c = 1; c < $(nproc); c++)); do
			taskset -c "$c" sh -c 'while :; do :; done' &
			SPIN+=($!)
		done
	fi
	case $name in *-shm-* | *-shmbuf-*) extra+=(--iomem=mmapshared:"$SHM") ;; esac
	[ "$cfg" = zoned ] && extra+=(--zonemode=zbd --max_open_zones=4)
	# A fresh image: each block written once at most, up to the runtime.
	[ "$cfg" = alloc ] && extra+=(--time_based=0)
	local f=$T/rows/${#ROWS[@]}
	snap "$name" "$f.before"
	# shellcheck disable=SC2046
	fio --name="$job" --filename="$dev" --ioengine=io_uring --direct=1 --time_based \
		--runtime="$runtime" --ramp_time="$ramp" --lat_percentiles=1 --output-format=json \
		$(job_args "$job") "${extra[@]}" >"$f.json" 2>"$T/fio.err" ||
		die "fio $job on $name ($dev) failed: $(head -3 "$T/fio.err")"
	stop_spin
	snap "$name" "$f.after"
	ROWS+=("$f.json" "$f.before" "$f.after" "$round,$cfg,$job,${name%-[12]q}")
}
# rows: the RAW lines of the runs since the last call, from one Python
# (a Python start takes over a second in the VM: one per job, not per run).
ROWS=()
rows() {
	((${#ROWS[@]})) || return 0
	python3 bench/fio_row.py "${ROWS[@]}" || die "bench/fio_row.py failed"
	rm -f "$T"/rows/*
	ROWS=()
}

rotate() { # rotate N WORDS...: the words, starting at the Nth; backwards when N is even
	local n=$1
	shift
	local a=("$@") k i
	for ((k = 0; k < $#; k++)); do
		i=$((n % 2 ? k : $# - 1 - k))
		echo "${a[$(((i + n) % $#))]}"
	done
}

erms=without; grep -qw erms /proc/cpuinfo && erms=with
run_s=$runtime
[[ $run_s =~ ^[0-9]+$ ]] && run_s=${run_s}s
echo "INFO,kernel $(uname -r); $(nproc) CPUs ($erms ERMS); $(fio --version); $("$Z" --version); modes:$modes; default modes: null=$null_default loop=$loop_default; $run_s runs after ${ramp}s ramp, $rounds rounds, ${size_mb}M$( [ "${BENCH_FLUSH_MS:-0}" = 0 ] || echo "; the disk's flushes ${BENCH_FLUSH_MS} ms late (dm-delay)")"
log "modes:$modes; configs: $configs; jobs: $jobs"

devices_for() { # the device names of a config
	local m
	if [ "$set_" = targets ]; then
		case $1 in
		1q1j)
			echo nullb-1q
			for m in $modes; do echo "znull-$m-1q"; done
			printf '%s\n' kloop-dio kloop
			for m in $modes; do echo "zloop-$m-1q"; done
			;;
		2q2j) printf '%s\n' "znull-$null_default-2q" "zloop-$loop_default-2q" ;;
		1q2j) printf '%s\n' "znull-$null_default-1q" "zloop-$loop_default-1q" ;;
		esac
		return
	fi
	case $1 in
	1q1j | 2q2j)
		local q=${1:0:1} nms=$modes lms=$modes
		[ "$q" = 2 ] && nms=$null_modes2q && lms=$loop_modes2q
		echo "nullb-${q}q"
		for m in $nms; do echo "znull-$m-${q}q"; done
		echo kloop-dio
		echo kloop
		for m in $lms; do echo "zloop-$m-${q}q"; done
		echo "znull-nopoll-${q}q"
		echo "zloop-nopoll-${q}q"
		if [ "$q" = 2 ]; then printf '%s\n' znull-t2-2q zloop-t2-2q znull-pin-2q zloop-pin-2q; fi
		if [ "$q" = 1 ]; then printf '%s\n' znull-poll-1q zloop-poll-1q znull-nofill-1q zloop-nomap-1q; fi
		if [ "$q" = 1 ] && [ -n "${DEV[znull-batch-1q]:-}" ]; then
			printf '%s\n' znull-batch-1q zloop-batch-1q
		fi
		if [ "$q" = 1 ] && [ -n "${DEV[znull-shm-1q]:-}" ]; then
			printf '%s\n' znull-shm-1q zloop-shm-1q znull-shmbuf-1q zloop-shmbuf-1q
		fi
		;;
	1q2j) printf '%s\n' nullb-1q "znull-$null_default-1q" kloop-dio kloop "zloop-$loop_default-1q" ;;
	esac
}

for r in $(seq "$rounds"); do
	# The configs backwards every other round: 2 queues before 1 in one, after it in the next.
	cfgs=$configs
	((r % 2)) || cfgs=$(printf '%s\n' $configs | tac)
	for cfg in $cfgs; do
		case $cfg in raid | nbd | zoned | integrity | qcow2 | disk | alloc) continue ;; esac
		nj=${cfg:2:1}
		mapfile -t devs < <(devices_for "$cfg")
		cjobs=$jobs
		[ "$nj" -gt 1 ] && cjobs=$jobs_2j
		for job in $cjobs; do
			log "round $r/$rounds $cfg $job"
			jdevs=("${devs[@]}")
			if [ "$cfg" = 1q1j ] && [ "$job" = rr4k-qd32 ] && [ "$(nproc)" -gt 1 ]; then
				jdevs+=(nullb-busy-1q)
			fi
			for d in $(rotate "$r" "${jdevs[@]}"); do
				[ -z "$only" ] || [[ $d =~ $only ]] || continue
				run "$r" "$cfg" "$job" "$d" "$nj"
			done
			rows
		done
	done
done

# --- stripe and mirror vs md --------------------------------------------------
if need raid; then
	command -v mdadm >/dev/null || die "mdadm not found (scripts/setup.sh)"
	modprobe raid0 2>/dev/null || true
	modprobe raid1 2>/dev/null || true
	"$Z" del --all >/dev/null
	for l in "${LOOPS[@]}"; do losetup -d "$l"; done
	LOOPS=()
	rm -f "$F"
	half=$((size_mb / 2))
	for f in a b c d; do
		dd if=/dev/urandom of="$T/tmpfs/$f" bs=1M count="$half" status=none
	done
	md() { # md NAME LEVEL ARGS...: /dev/md1N (no udev here to make /dev/md/NAME)
		local name=$1 level=$2 l ls=() f node=/dev/md1${1#md}
		shift 2
		for f in c d; do
			l=$(losetup -f --show --direct-io=on "$T/tmpfs/$f") || die "losetup $f"
			LOOPS+=("$l")
			[ "$(cat "/sys/block/${l#/dev/}/loop/dio")" = 1 ] || die "$l: direct IO did not take"
			ls+=("$l")
		done
		mdadm --create "$node" --run --quiet --metadata=1.2 --level="$level" \
			--raid-devices=2 "$@" "${ls[@]}" >"$T/md.err" 2>&1 ||
			die "mdadm --create $node level $level: $(cat "$T/md.err")"
		MDS+=("$node")
		DEV[$name]=$node
		set_none "${DEV[$name]}"
	}
	zm=zero-copy
	has_mode zero-copy || zm=$default_mode
	for r in $(seq "$rounds"); do
		for pair in "zstripe md0" "zmirror md1"; do
			set -- $pair
			if [ "$1" = zstripe ]; then
				zadd zstripe -t stripe --mode $zm -q 1 chunk=64k file="$T/tmpfs/a" file="$T/tmpfs/b"
				md md0 0 --chunk=64
			else
				zadd zmirror -t mirror --mode $zm -q 1 file="$T/tmpfs/a" file="$T/tmpfs/b"
				md md1 1 --assume-clean --bitmap=none
			fi
			for job in $raid_jobs; do
				log "round $r/$rounds raid $job $1/$2"
				for d in $(rotate "$r" "$1" "$2"); do run "$r" raid "$job" "$d" 1; done
				rows
			done
			"$Z" del --all >/dev/null
			mdadm --stop "${MDS[@]}" >/dev/null 2>&1
			MDS=()
			for l in "${LOOPS[@]}"; do losetup -d "$l"; done
			LOOPS=()
			ZID=()
		done
	done
fi
# fill MB DEV...: the first MB MiB of each device written once, with random data
fill() {
	local mb=$1 d
	shift
	for d in "$@"; do
		dd if=/dev/urandom of="${DEV[$d]}" bs=1M count="$mb" oflag=direct status=none ||
			die "filling $d failed"
	done
}
# rounds_of CFG DEV... every job, every round, on 1 queue and 1 job, the
# devices taking turns (the order rotates round by round).
rounds_of() {
	local cfg=$1 r job d
	shift
	for r in $(seq "$rounds"); do
		for job in $jobs; do
			log "round $r/$rounds $cfg $job"
			for d in $(rotate "$r" "$@"); do run "$r" "$cfg" "$job" "$d" 1; done
			rows
		done
	done
}
# --- nbd: zublk's client vs the kernel's, to one nbdkit --------------------------
if need nbd; then
	for t in nbdkit nbd-client; do
		command -v $t >/dev/null || die "$t not found (scripts/setup.sh)"
	done
	modprobe nbd nbds_max=1 2>/dev/null || die "modprobe nbd failed"
	"$Z" del --all >/dev/null
	nbdkit -f -p 10809 -i 127.0.0.1 -P "$T/nbdkit.pid" memory "${size_mb}M" 2>"$T/nbdkit.err" &
	NBDKIT=$!
	for i in $(seq 100); do [ -s "$T/nbdkit.pid" ] && break; sleep 0.1; done
	[ -s "$T/nbdkit.pid" ] || die "nbdkit did not start: $(cat "$T/nbdkit.err")"
	nbd-client 127.0.0.1 10809 /dev/nbd0 -N "" -b 512 >"$T/nbd.err" 2>&1 ||
		die "nbd-client: $(cat "$T/nbd.err")"
	DEV[knbd]=/dev/nbd0
	set_none /dev/nbd0
	# Every block written once, so that no row reads a hole of nbdkit's.
	dd if=/dev/urandom of=/dev/nbd0 bs=1M count="$size_mb" oflag=direct status=none ||
		die "filling the nbd export failed"
	ndevs=(knbd)
	for m in $modes; do
		zadd "znbd-$m" -t nbd --mode "$m" -q 1 host=127.0.0.1
		ndevs+=("znbd-$m")
	done
	rounds_of nbd "${ndevs[@]}"
	"$Z" del --all >/dev/null
	nbd-client -d /dev/nbd0 >/dev/null 2>&1
	kill "$NBDKIT" 2>/dev/null
	NBDKIT=
fi
# --- zoned: zublk zoned vs null_blk's zoned mode ------------------------------
if need zoned; then
	modprobe null_blk nr_devices=0 2>/dev/null || die "modprobe null_blk failed"
	n=/sys/kernel/config/nullb/zbz
	mkdir "$n" || die "null_blk configfs: mkdir $n failed"
	for kv in queue_mode=2 submit_queues=1 max_sectors=1024 size=$size_mb blocksize=4096 \
		memory_backed=1 zoned=1 zone_size=64 zone_nr_conv=0 power=1; do
		echo "${kv#*=}" >"$n/${kv%%=*}" || die "null_blk zoned: ${kv%%=*} ${kv#*=} refused"
	done
	DEV[nullbz]=/dev/zbz
	[ -b "${DEV[nullbz]}" ] || DEV[nullbz]=/dev/nullb$(cat "$n/index")
	set_none "${DEV[nullbz]}"
	zdevs=(nullbz)
	for m in user-copy zero-copy; do
		has_mode "$m" || continue
		mkdir "$T/tmpfs/zones-$m"
		zadd "zzoned-$m" -t zoned --mode "$m" -q 1 dir="$T/tmpfs/zones-$m" size=${size_mb}M \
			zone_size=64M conv_zones=0
		zdevs+=("zzoned-$m")
	done
	if has_mode zero-copy; then
		mkdir "$T/tmpfs/zones-nocopy"
		zadd zzoned-nocopy -t zoned --mode zero-copy -q 1 dir="$T/tmpfs/zones-nocopy" \
			size=${size_mb}M zone_size=64M conv_zones=0 copy_max=0
		zdevs+=(zzoned-nocopy)
	fi
	# Every zone written full once, so that reads read data.
	for d in "${zdevs[@]}"; do
		blkzone reset "${DEV[$d]}" || die "blkzone reset ${DEV[$d]} failed"
		dd if=/dev/urandom of="${DEV[$d]}" bs=1M count="$size_mb" oflag=direct status=none ||
			die "filling $d failed"
	done
	rounds_of zoned "${zdevs[@]}"
	"$Z" del --all >/dev/null
fi
# --- integrity: zublk loop with T10 PI metadata vs without, and kernel loop ---
if need integrity; then
	"$Z" features | grep -qw INTEGRITY || die "integrity: the driver has no UBLK_F_INTEGRITY"
	"$Z" del --all >/dev/null
	for l in "${LOOPS[@]}"; do losetup -d "$l"; done
	LOOPS=()
	rm -rf "${T:?}"/tmpfs/*
	isize=$((size_mb / 2))
	for f in k z; do truncate -s "${isize}M" "$T/tmpfs/int-$f"; done
	l=$(losetup -f --show --direct-io=off "$T/tmpfs/int-k") || die "losetup int-k"
	LOOPS+=("$l")
	DEV[kloop]=$l
	set_none "$l"
	zadd zloop-nopi -t loop -q 1 file="$T/tmpfs/int-z"
	idevs=(kloop zloop-nopi)
	for m in $modes; do
		[ "$m" = copy ] && continue
		truncate -s "${isize}M" "$T/tmpfs/int-$m"
		zadd "zloop-pi-$m" -t loop --mode "$m" -q 1 file="$T/tmpfs/int-$m" \
			meta="$T/tmpfs/int-$m.meta"
		idevs+=("zloop-pi-$m")
	done
	truncate -s "${isize}M" "$T/tmpfs/int-meta"
	zadd zloop-meta -t loop -q 1 file="$T/tmpfs/int-meta" meta="$T/tmpfs/int-meta.meta" \
		pi=none
	idevs+=(zloop-meta)
	# The kernel's own device with PI: two scsi_debug disks, PI on and off.
	if modprobe sd_mod 2>/dev/null && modprobe scsi_debug dev_size_mb="$isize" delay=0 dif=1 \
		dix=1 guard=0 add_host=2 per_host_store=1 2>/dev/null; then
		SCSI_DEBUG=1
		sd=/sys/bus/pseudo/drivers/scsi_debug
		for i in $(seq 100); do
			[ "$(ls -d $sd/adapter*/host*/target*/*/block/* 2>/dev/null | wc -l)" = 2 ] && break
			sleep 0.1
		done
		mapfile -t sds < <(ls -d $sd/adapter*/host*/target*/*/block/* 2>/dev/null | xargs -rn1 basename)
		[ "${#sds[@]}" = 2 ] || die "scsi_debug: ${#sds[@]} disks, not 2"
		DEV[ksd-pi]=/dev/${sds[0]}
		DEV[ksd]=/dev/${sds[1]}
		echo 0 >"/sys/block/${sds[1]}/integrity/write_generate"
		echo 0 >"/sys/block/${sds[1]}/integrity/read_verify"
		set_none "${DEV[ksd-pi]}"
		set_none "${DEV[ksd]}"
		idevs+=(ksd ksd-pi)
	else
		log "integrity: no scsi_debug here, no rows of the kernel's PI"
	fi
	# Every block written once: reads read data and check its PI.
	fill "$isize" "${idevs[@]}"
	rounds_of integrity "${idevs[@]}"
	"$Z" del --all >/dev/null
	[ -n "${SCSI_DEBUG:-}" ] && rmmod scsi_debug && SCSI_DEBUG=
fi
# qnbd_gone: wait (10 s at most) for every qemu-nbd to have exited: `qemu-nbd -d`
# returns before the server has closed its image and /dev/nbdN.
qnbd_gone() {
	local i
	for i in $(seq 100); do
		pgrep -x qemu-nbd >/dev/null || return 0
		sleep 0.1
	done
	return 1
}
# qnbd_down: every qemu-nbd of ours disconnected, and gone.
qnbd_down() {
	local q
	for q in "${QNBDS[@]}"; do qemu-nbd -d "$q" >/dev/null 2>&1; done
	QNBDS=()
	qnbd_gone || die "qemu-nbd did not exit after qemu-nbd -d"
}
# qnbd NAME N FILE MB ARGS...: qemu-nbd serving the qcow2 FILE (of MB MiB) on
# /dev/nbdN, through the kernel's nbd client: the device free first (an
# earlier config's client gone), and qemu-nbd's lock's place (the VM's /run
# starts empty).
qnbd() {
	local name=$1 dev=/dev/nbd$2 file=$3 mb=$4 i
	shift 4
	for i in $(seq 100); do [ -e "/sys/block/${dev#/dev/}/pid" ] || break; sleep 0.1; done
	[ ! -e "/sys/block/${dev#/dev/}/pid" ] || die "$dev is still connected"
	mkdir -p "$(readlink -f /var/lock)"
	qemu-nbd -c "$dev" -f qcow2 "$@" "$file" >"$T/qnbd.err" 2>&1 ||
		die "qemu-nbd -c $dev $*: $(cat "$T/qnbd.err")"
	QNBDS+=("$dev")
	for i in $(seq 100); do
		[ "$(blockdev --getsize64 "$dev" 2>/dev/null)" = $((mb << 20)) ] && break
		sleep 0.1
	done
	DEV[$name]=$dev
	set_none "$dev"
}
# --- qcow2: zublk qcow2 vs qemu-nbd and the kernel's nbd client --------------
if need qcow2; then
	for t in qemu-img qemu-nbd; do
		command -v $t >/dev/null || die "$t not found (scripts/setup.sh)"
	done
	modprobe nbd nbds_max=1 2>/dev/null || die "modprobe nbd failed"
	"$Z" del --all >/dev/null
	for l in "${LOOPS[@]}"; do losetup -d "$l"; done
	LOOPS=()
	rm -rf "${T:?}"/tmpfs/*
	qsize=$((size_mb / 2))
	# The way qcow2 images are usually served as block devices: qemu-nbd,
	# connected to the kernel's nbd client (its default cache: writeback).
	qemu-img create -q -f qcow2 "$T/tmpfs/q-k.qcow2" "${qsize}M" || die "qemu-img create failed"
	qnbd kqnbd 0 "$T/tmpfs/q-k.qcow2" "$qsize"
	qdevs=(kqnbd)
	for m in $modes; do
		qemu-img create -q -f qcow2 "$T/tmpfs/q-$m.qcow2" "${qsize}M" || die "qemu-img create failed"
		zadd "zqcow2-$m" -t qcow2 --mode "$m" -q 1 -f "$T/tmpfs/q-$m.qcow2"
		qdevs+=("zqcow2-$m")
	done
	# What the format costs: zublk loop over a raw file (default mode).
	truncate -s "${qsize}M" "$T/tmpfs/q-raw"
	zadd zqraw -t loop -q 1 -f "$T/tmpfs/q-raw"
	qdevs+=(zqraw)
	# Every cluster written once: the rows read and rewrite allocated data.
	fill "$qsize" "${qdevs[@]}"
	rounds_of qcow2 "${qdevs[@]}"
	"$Z" del --all >/dev/null
	qnbd_down
fi
# --- disk: files on ext4 on a disk, direct IO vs the kernel's ---------------------
# alloc: writes into fresh qcow2 images there, every run its own image.
# alloc_run ROUND JOB NAME
alloc_run() {
	local r=$1 job=$2 name=$3 f=$D/alloc.qcow2
	rm -f "$f"
	qemu-img create -q -f qcow2 "$f" "${dsize}M" || die "qemu-img create failed"
	sync
	case $name in
	kaqnbd) qnbd kaqnbd 0 "$f" "$dsize" --cache=none --aio=native ;;
	kaqnbd-wb) qnbd kaqnbd-wb 0 "$f" "$dsize" ;;
	zaqcow2-buf) zadd zaqcow2-buf -t qcow2 -q 1 file="$f" ;;
	*) zadd "$name" -t qcow2 --mode "${name#zaqcow2-}" -q 1 file="$f" buffered=0 ;;
	esac
	run "$r" alloc "$job" "$name" 1
	case $name in
	kaqnbd*) qnbd_down ;;
	*)
		"$Z" del -n "${ZID[$name]}" >/dev/null || die "zublk del $name failed"
		unset "ZID[$name]"
		;;
	esac
}
if need disk || need alloc; then
	for t in qemu-img qemu-nbd mkfs.ext4; do
		command -v $t >/dev/null || die "$t not found (scripts/setup.sh)"
	done
	"$Z" del --all >/dev/null
	for l in "${LOOPS[@]}"; do losetup -d "$l"; done
	LOOPS=()
	rm -rf "${T:?}"/tmpfs/*
	# The disk: BENCH_DISK, or the VM's virtio disk (bench/run attaches it).
	disk=${BENCH_DISK:-$(bash tests/vm/vm-disk || true)}
	[ -b "$disk" ] || die "config disk: no disk (BENCH_DISK, or a virtio disk with serial zublk-disk: bench/run attaches one)"
	dsize=$((size_mb / 2))
	# A file per mode and 4 more (raw, zdqcow2-buf's, kdqnbd's, kdqnbd-wb's), ext4's share.
	need_mb=$((dsize * ($(wc -w <<<"$modes") + 4) + dsize / 16 + 256))
	[ $(($(blockdev --getsize64 "$disk") >> 20)) -ge $need_mb ] ||
		die "config disk: $disk is smaller than ${need_mb}M"
	# Two nbd devices: the module again, once the configs before have let go of it.
	qnbd_gone || die "a qemu-nbd of an earlier config did not exit"
	for i in $(seq 50); do
		[ -d /sys/module/nbd ] || break
		rmmod nbd 2>/dev/null || sleep 0.1
	done
	modprobe nbd nbds_max=2 2>/dev/null || die "modprobe nbd failed"
	[ -b /dev/nbd1 ] || die "config disk: no /dev/nbd1 (the nbd module stayed loaded with one device)"
	# BENCH_FLUSH_MS: the disk's cache flushes take that long (dm-delay over
	# it), as a slow disk's do; reads and writes as they were.
	if [ "${BENCH_FLUSH_MS:-0}" != 0 ]; then
		command -v dmsetup >/dev/null || die "BENCH_FLUSH_MS: dmsetup not found"
		modprobe dm-delay 2>/dev/null || true
		echo "0 $(blockdev --getsz "$disk") delay $disk 0 0 $disk 0 0 $disk 0 $BENCH_FLUSH_MS" |
			dmsetup create zublk-slow >"$T/dm.err" 2>&1 ||
			die "BENCH_FLUSH_MS: dm-delay over $disk: $(cat "$T/dm.err")"
		SLOW_DM=zublk-slow
		# Its node: devtmpfs makes /dev/dm-N; without it, dmsetup does.
		disk=/dev/dm-$(dmsetup info -c --noheadings -o minor "$SLOW_DM" | tr -d ' ')
		if [ ! -b "$disk" ]; then
			dmsetup mknodes "$SLOW_DM"
			disk=/dev/mapper/$SLOW_DM
		fi
	fi
	modprobe ext4 2>/dev/null || true
	mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$disk" >"$T/mkfs.err" 2>&1 ||
		die "mkfs.ext4 $disk: $(cat "$T/mkfs.err")"
	mkdir "$T/disk"
	mount "$disk" "$T/disk" || die "cannot mount $disk"
	DISK_MNT=$T/disk
	D=$T/disk
	# Its scheduler, by device number (a /dev/mapper node is no link to its name).
	sched=$(cat "/sys/dev/block/$((0x$(stat -Lc %t "$disk"))):$((0x$(stat -Lc %T "$disk")))/queue/scheduler" \
		2>/dev/null) || sched="no scheduler file"
	log "disk: ext4 on $disk ($sched), ${dsize}M files"
	if need disk; then
		# loop: one raw file of random data, as the 1q1j config's on tmpfs.
		dd if=/dev/urandom of="$D/raw" bs=1M count="$dsize" conv=fsync status=none ||
			die "writing $D/raw failed"
		kloop kdloop-dio on "$D/raw"
		kloop kdloop off "$D/raw"
		ddevs=(kdloop-dio kdloop)
		for m in $modes; do
			zadd "zdloop-$m" -t loop --mode "$m" -q 1 file="$D/raw" buffered=0
			ddevs+=("zdloop-$m")
		done
		zadd zdloop-buf -t loop -q 1 file="$D/raw" buffered=1
		ddevs+=(zdloop-buf)
		# qcow2: qemu-nbd with O_DIRECT (cache=none) and with its default
		# (writeback), vs zublk qcow2 with buffered=0 and with its default.
		for f in k kwb $modes buf; do
			qemu-img create -q -f qcow2 "$D/q-$f.qcow2" "${dsize}M" || die "qemu-img create failed"
		done
		qnbd kdqnbd 0 "$D/q-k.qcow2" "$dsize" --cache=none --aio=native
		qnbd kdqnbd-wb 1 "$D/q-kwb.qcow2" "$dsize"
		qdevs=(kdqnbd kdqnbd-wb)
		for m in $modes; do
			zadd "zdqcow2-$m" -t qcow2 --mode "$m" -q 1 file="$D/q-$m.qcow2" buffered=0
			qdevs+=("zdqcow2-$m")
		done
		zadd zdqcow2-buf -t qcow2 -q 1 file="$D/q-buf.qcow2"
		qdevs+=(zdqcow2-buf)
		# Every cluster written once; then the dirty pages out, so that each
		# row starts from the same disk.
		fill "$dsize" "${qdevs[@]}"
		sync
		rounds_of disk "${ddevs[@]}" "${qdevs[@]}"
		"$Z" del --all >/dev/null
		qnbd_down
		for l in "${LOOPS[@]}"; do losetup -d "$l"; done
		LOOPS=()
	fi
	if need alloc; then
		adevs=(kaqnbd kaqnbd-wb "zaqcow2-$loop_default" zaqcow2-buf)
		for r in $(seq "$rounds"); do
			for job in $alloc_jobs; do
				log "round $r/$rounds alloc $job"
				for d in $(rotate "$r" "${adevs[@]}"); do alloc_run "$r" "$job" "$d"; done
				rows
			done
		done
		rm -f "$D/alloc.qcow2"
	fi
	umount "$DISK_MNT" || die "cannot unmount $DISK_MNT"
	DISK_MNT=
	if [ -n "$SLOW_DM" ]; then
		dmsetup remove "$SLOW_DM" || die "dmsetup remove $SLOW_DM failed"
		SLOW_DM=
	fi
fi
log "done"
