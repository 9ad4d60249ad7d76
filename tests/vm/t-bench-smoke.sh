#!/usr/bin/env bash
# The benchmark suite cannot rot: one short round of bench/suite.sh (every
# kind of device, 1 and 2 queues, pinned, polling and never polling queues, batched
# commands, shared memory, loop with and without its tmpfs file mapped, stripe/mirror vs
# md, nbd vs the kernel's nbd client, zoned vs null_blk's zoned mode, loop with
# integrity metadata vs without, qcow2 vs qemu-nbd, loop and qcow2 on a disk,
# writes into fresh qcow2 images there, that disk's flushes slowed by dm-delay)
# and
# bench/report.py on what it printed.  Its numbers mean nothing; that
# every row is there and the report is written does.
. "$(dirname "$0")/lib.sh"
for t in mdadm nbdkit nbd-client blkzone qemu-img qemu-nbd; do
	command -v $t >/dev/null || skip "$t not installed (scripts/setup.sh)"
done
modprobe null_blk nr_devices=0 2>/dev/null || skip "no null_blk module"
# Every set the smoke runs has rows with 2 queues and 2 fio jobs.
[ "$(nproc)" -ge 2 ] || skip "the suite's 2-queue rows need 2 CPUs, this machine has $(nproc)"

# Half-second runs: fio takes about a second more to start in the VM.
export BENCH_ROUNDS=1 BENCH_RUNTIME=500ms BENCH_RAMP=0 BENCH_SIZE_MB=64
# One job: 4k random reads at QD32 (the one every report table checked
# below has a column for); with ZUBLK_BENCH_SMOKE_ALL=1 also alloc's 4k
# writes into fresh images.  The other jobs differ only in fio's
# arguments; every config's own set-up, devices, rows and report tables
# are what can rot.
features=$("$Z" features) || fail "zublk features failed"
integ=0
if grep -qw INTEGRITY <<<"$features"; then
	integ=5
else
	skip_check "integrity config" "the driver has no UBLK_F_INTEGRITY"
fi
# ZUBLK_BENCH_SMOKE_ALL=1: the disk and alloc configs and the targets set
# too, which take another 3 minutes or so in the VM: left out of make
# check, which must end within CI's 45 minutes on the slowest machines seen.
all=${ZUBLK_BENCH_SMOKE_ALL:-0}
# The disk config's disk: tests/vm/suite attaches one (vm-run --disk).
disk=0
if [ "$all" != 1 ]; then
	skip_check "disk and alloc configs" "run with ZUBLK_BENCH_SMOKE_ALL=1 (left out of make check for time)"
elif command -v mkfs.ext4 >/dev/null; then
	bash "$ROOT/tests/vm/vm-disk" >/dev/null && disk=12
	((disk)) || skip_check "disk config" "no disk with serial zublk-disk (tests/vm/suite attaches one)"
else
	skip_check "disk config" "mkfs.ext4 not installed"
fi
# Its flushes slowed (1 ms, dm-delay), as BENCH_FLUSH_MS does for a slow disk.
flush=0
if ((disk)); then
	if command -v dmsetup >/dev/null && modprobe dm-delay 2>/dev/null; then
		flush=1
		export BENCH_FLUSH_MS=1
	else
		skip_check "BENCH_FLUSH_MS" "no dmsetup or no dm-delay module"
	fi
fi
export BENCH_CONFIGS="1q1j 2q2j raid nbd zoned$( ((integ)) && echo " integrity") qcow2$( ((disk)) && echo " disk alloc")" BENCH_JOBS=rr4k-qd32 BENCH_ALLOC_JOBS=aw4k-qd1
export BENCH_RAID_JOBS=rr4k-qd32 BENCH_MODES="copy zero-copy auto-zero-copy"
bash "$ROOT/bench/suite.sh" >"$TMP/out" 2>"$TMP/err" ||
	fail "bench/suite.sh failed: $(tail -3 "$TMP/err")"
if ((flush)); then
	grep -q '^\[bench .*\] disk: ext4 on /dev/dm-' "$TMP/err" ||
		fail "BENCH_FLUSH_MS: the disk config's ext4 is not on the dm-delay device: $(grep 'disk: ext4' "$TMP/err")"
	! dmsetup info zublk-slow >/dev/null 2>&1 || fail "BENCH_FLUSH_MS: zublk-slow left behind"
fi

! pgrep -f 'while :; do :; done' >/dev/null || fail "nullb-busy's spinners outlived the suite"
rows=$(grep -c '^RAW,' "$TMP/out")
# 1 queue: null_blk, 3+3 zublk modes, 2 kernel loops, 2 polling,
# 2 never polling, null fill=none, loop map=0, 2 batched (where the kernel
# has BATCH_IO), 2 with --shmem and their 2 baselines (where it has
# SHMEM_ZC), and null_blk with the other CPU busy;
# 2 queues: null_blk, copy + each target's default, 2 kernel
# loops, 2 never polling, 2 with a thread per queue, 2 of those pinned.
# The 1-queue devices every run has, then those of the features the kernel has.
devs="nullb nullb-busy znull-copy znull-zero-copy znull-auto-zero-copy kloop kloop-dio zloop-copy
	zloop-auto-zero-copy znull-t2 zloop-t2 znull-pin zloop-pin znull-poll zloop-poll znull-nopoll
	zloop-nopoll znull-nofill zloop-nomap zstripe md0 zmirror md1 knbd znbd-copy znbd-zero-copy
	znbd-auto-zero-copy nullbz zzoned-zero-copy zzoned-nocopy kqnbd zqcow2-copy zqcow2-zero-copy
	zqcow2-auto-zero-copy zqraw"
batch=0 shm=0
if grep -qw BATCH_IO <<<"$features"; then
	batch=2 devs+=" znull-batch zloop-batch"
fi
if grep -qw SHMEM_ZC <<<"$features"; then
	shm=4 devs+=" znull-shm zloop-shm znull-shmbuf zloop-shmbuf"
fi
# nbd: the kernel's client and zublk's in 3 modes.
# zoned: null_blk's, zublk's (zero-copy: the only mode of BENCH_MODES it has) and
# zublk's with copy_max=0.
# integrity: the kernel loop, zublk loop without metadata, with it in
# zero-copy and auto-zero-copy, and with it but no PI; and
# scsi_debug with PI on and off where the kernel has it.
# qcow2: qemu-nbd through the kernel's client, zublk qcow2 in 3 modes, zublk
# loop over a raw file.
((integ)) && devs+=" zloop-nopi zloop-pi-zero-copy zloop-pi-auto-zero-copy zloop-meta"
if ((integ)); then
	if modinfo scsi_debug >/dev/null 2>&1; then
		integ=$((integ + 2)) devs+=" ksd ksd-pi"
	else
		skip_check "integrity's scsi_debug rows" "no scsi_debug module"
	fi
fi
# disk: the kernel loop (direct-io on, off), zublk loop buffered=0 in 3
# modes and buffered=1, qemu-nbd (cache=none, writeback), zublk qcow2
# buffered=0 in 3 modes and buffered=1.
# alloc: qemu-nbd both ways, zublk qcow2 buffered=0 (in loop's default
# mode, as the INFO line says) and buffered=1, each on a fresh image, 4k
# random writes at QD1 alone.
alloc=0
ldef=$(sed -n 's/^INFO,.*default modes: null=[a-z-]* loop=\([a-z-]*\).*/\1/p' "$TMP/out" | head -1)
((disk)) && alloc=4 devs+=" kdloop-dio kdloop zdloop-copy zdloop-zero-copy zdloop-auto-zero-copy
	zdloop-buf kdqnbd kdqnbd-wb zdqcow2-copy zdqcow2-zero-copy zdqcow2-auto-zero-copy zdqcow2-buf
	kaqnbd kaqnbd-wb zaqcow2-${ldef:-none} zaqcow2-buf"
want=$((15 + batch + shm + 1 + 13 + 4 + 4 + 3 + integ + 5 + disk + alloc))
[ "$rows" = "$want" ] || fail "$rows result rows, expected $want: $(cat "$TMP/out")"
for d in $devs; do
	grep -q "^RAW,1,[^,]*,[^,]*,$d," "$TMP/out" || fail "no row for $d"
done
# IOPS > 0 everywhere; a daemon's rows carry CPU, enters, sleeps and busy
# CPU per IO, and its busy CPU is no more than all of its CPU.
awk -F, '/^RAW,/ { if ($6 <= 0) { print "no IOPS: " $0; bad = 1 }
	if ($5 ~ /^z/ && ($10 == "" || $11 == "" || $12 == "" || $13 == "")) {
		print "no CPU/enters/sleeps/busy CPU: " $0; bad = 1 }
	if ($5 ~ /^z/ && $13 > $10) { print "busy CPU above CPU: " $0; bad = 1 } }
	END { exit bad }' "$TMP/out" || fail "bad rows"

# report OUT DIR: what bench/run does with the suite's output OUT, into DIR.
report() {
	mkdir "$2"
	{
		python3 "$ROOT/bench/fio_row.py" --header
		sed -n 's/^RAW,//p' "$1"
	} >"$2/raw.csv"
	# The report takes each target's default mode from the INFO line.
	sed -n 's/^INFO,//p' "$1" | head -1 >"$2/info.txt"
	python3 "$ROOT/bench/report.py" "$2" 2>"$TMP/err" || fail "report.py on $1: $(cat "$TMP/err")"
}
report "$TMP/out" "$TMP/res"
grep -q '^## Targets' "$TMP/res/results.md" || fail "results.md has no Targets table"
grep -q '^| stripe vs md raid0, 4k randread QD32 | [0-9]' "$TMP/res/results.md" ||
	fail "results.md has no stripe vs md ratio"
[ "$batch" = 0 ] || grep -A4 '^## Batched commands' "$TMP/res/results.md" | grep -q '^| null | - | [0-9]' ||
	fail "results.md has no --batch ratio"
grep -A6 '^## Polling vs sleeping at once (--poll-us off)' "$TMP/res/results.md" |
	grep -q '^| null, adaptive (default) | - | [0-9]' || fail "results.md has no polling ratio"
grep -A4 '^## One thread for both queues' "$TMP/res/results.md" | grep -q '^| null | - | [0-9]' ||
	fail "results.md has no one-thread-for-two-queues ratio"
grep -A6 '^## Polling vs sleeping at once, 2 queues' "$TMP/res/results.md" |
	grep -q '^| loop | - | [0-9]' || fail "results.md has no 2-queue polling ratio"
grep -A4 '^## Reads that touch no data' "$TMP/res/results.md" | grep -q '^| null | - | [0-9]' ||
	fail "results.md has no fill=none ratio"
grep -A6 "^## nbd vs the kernel's nbd client" "$TMP/res/results.md" |
	grep -q '^| nbd zero-copy | - | [0-9]' || fail "results.md has no nbd vs kernel nbd ratio"
grep -A5 "^## zoned vs null_blk's zoned mode" "$TMP/res/results.md" |
	grep -q '^| zoned zero-copy | - | [0-9]' || fail "results.md has no zoned vs null_blk zoned ratio"
grep -A4 '^## Copying in the queue thread vs io_uring' "$TMP/res/results.md" |
	grep -q '^| zoned | - | [0-9]' || fail "results.md has no zoned copy_max=0 ratio"
if ((integ)); then
	grep -A6 "^## Integrity metadata vs none" "$TMP/res/results.md" |
		grep -q '^| loop pi=crc16 zero-copy | - | [0-9]' ||
		fail "results.md has no integrity vs none ratio"
fi
grep -A4 '^## Copying requests straight' "$TMP/res/results.md" | grep -q '^| loop | - | [0-9]' ||
	fail "results.md has no map vs map=0 ratio"
if ((disk)); then
	grep -A14 '^## Files on ext4 on an emulated virtio disk' "$TMP/res/results.md" |
		grep -q '^| qcow2 buffered=0 zero-copy vs qemu-nbd --cache=none | - | [0-9]' ||
		fail "results.md has no disk qcow2 vs qemu-nbd ratio"
	grep -A5 '^## Writes into fresh qcow2 images' "$TMP/res/results.md" |
		grep -q '^| qcow2 buffered=1 (default) vs qemu-nbd writeback (default) | [0-9]' ||
		fail "results.md has no fresh-image qcow2 vs qemu-nbd ratio"
	! grep -qs zublk-bench /proc/mounts || fail "the disk config left its file system mounted"
fi
[ "$(wc -l <"$TMP/res/results.csv")" = $((want + 1)) ] || fail "results.csv: $(wc -l <"$TMP/res/results.csv") lines"
note "$rows rows, report written"
if [ "$all" != 1 ]; then
	skip_check "targets set" "run with ZUBLK_BENCH_SMOKE_ALL=1 (left out of make check for time)"
	exit 0
fi

# The targets set (bench/run --targets), and per-round ratios over 2
# rounds; of its devices (BENCH_ONLY) those of the two ratios checked below.
ndef=$(sed -n 's/^INFO,.*default modes: null=\([a-z-]*\) .*/\1/p' "$TMP/out" | head -1)
BENCH_SET=targets BENCH_ROUNDS=2 BENCH_CONFIGS="1q1j 2q2j 1q2j" BENCH_JOBS=rr4k-qd32 \
	BENCH_ONLY="^(nullb|nullb-busy|znull-$ndef|zloop-$ldef)-[12]q$" \
	bash "$ROOT/bench/suite.sh" >"$TMP/tout" 2>"$TMP/err" ||
	fail "bench/suite.sh (targets) failed: $(tail -3 "$TMP/err")"
# Per round: 1q1j null_blk (and with the other CPU busy) and the two
# defaults; 2q2j and 1q2j the two defaults.
trows=$(grep -c '^RAW,' "$TMP/tout")
[ "$trows" = $(((4 + 2 + 2) * 2)) ] || fail "targets set: $trows rows, expected 16: $(cat "$TMP/tout")"
! grep -E '^RAW,[^,]*,[^,]*,[^,]*,(znull|zloop)-(poll|nopoll|nofill|nomap|batch|pin|t2),' "$TMP/tout" ||
	fail "targets set ran a variant device"
report "$TMP/tout" "$TMP/tres"
grep -E '^\| null [a-z-]+ \(its default\), 4k randread QD32 vs null_blk \| [0-9.]+ \(null_blk with the other CPU busy: [0-9.]+ x null_blk; zublk [0-9.]+ x that\) \| [0-9.]+ \[[0-9.]+-[0-9.]+\], [0-2] of 2 \|' \
	"$TMP/tres/results.md" >/dev/null || fail "targets report has no per-round null ratio: $(grep -A4 '^| target' "$TMP/tres/results.md")"
grep -E '^\| loop [a-z-]+, 4k randread QD32: 2 queues/2 jobs vs 1 queue/2 jobs \| [0-9.]+ \| [0-9.]+ \[' \
	"$TMP/tres/results.md" >/dev/null || fail "targets report has no per-round 2-queue ratio"
note "targets set: $trows rows, per-round ratios reported"
