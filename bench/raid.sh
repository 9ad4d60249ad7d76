#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# raid.sh - zublk stripe vs kernel md raid0, zublk mirror vs md raid1, side
# by side on tmpfs files (md gets two through kernel loop devices with
# direct IO, zublk opens two others O_DIRECT itself).  Both devices exist
# at once and take turns job by job, RAID_ROUNDS times (default 3; the
# median counts), so that a busy host hurts both alike.
#
# Usage (as root, next to a ublk driver; no driver on the host: in the VM):
#   tests/vm/vm-run -- bash bench/raid.sh
#   bash bench/raid.sh [--quick]
#
# Jobs, each for RAID_RUNTIME seconds (default 10; --quick: 3 and 1 round): 4k random
# read QD32, 128k sequential read QD8, 128k sequential write QD8, one fio
# job with io_uring and O_DIRECT.  zublk runs in RAID_MODE (default
# zero-copy) with RAID_QUEUES queues (default 1).  Prints one line per job
# and the ratio zublk/md (>= 1.00: zublk at least as fast), and writes
# RAID_OUT (default /tmp/zublk-bench-raid.txt).
#
# Needs: fio, mdadm, losetup (util-linux); raid0, raid1, loop, ublk_drv.
set -euo pipefail
cd "$(dirname "$0")/.."
Z=${ZUBLK:-$PWD/build/zublk}
runtime=${RAID_RUNTIME:-10}
mode=${RAID_MODE:-zero-copy}
queues=${RAID_QUEUES:-1}
size_mb=${RAID_SIZE_MB:-256}
rounds=${RAID_ROUNDS:-3}
out=${RAID_OUT:-/tmp/zublk-bench-raid.txt}
[ "${1:-}" = --quick ] && runtime=3 && rounds=1

die() { echo "raid.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"
for t in fio mdadm losetup; do command -v $t >/dev/null || die "$t not found (scripts/setup.sh)"; done
[ -x "$Z" ] || die "$Z not built (make)"
modprobe ublk_drv 2>/dev/null || true
modprobe loop 2>/dev/null || true
modprobe raid0 2>/dev/null || true
modprobe raid1 2>/dev/null || true
[ -c /dev/ublk-control ] || die "no /dev/ublk-control (run it in the VM: tests/vm/vm-run -- bash bench/raid.sh)"

T=$(mktemp -d /tmp/zublk-raid.XXXXXX)
LOOPS=()
MD=
finish() {
	pkill -9 -x fio 2>/dev/null || true
	"$Z" del --all >/dev/null 2>&1 || true
	[ -n "$MD" ] && mdadm --stop "$MD" >/dev/null 2>&1 || true
	for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null || true; done
	umount "$T/tmpfs" 2>/dev/null || true
	rm -rf "$T"
}
trap finish EXIT

mkdir "$T/tmpfs"
mount -t tmpfs -o size=$((size_mb * 4 + 64))m zublk-raid "$T/tmpfs"
A=$T/tmpfs/a
B=$T/tmpfs/b
C=$T/tmpfs/c
D=$T/tmpfs/d
fill() { # real data in every file: reads of holes would be free
	dd if=/dev/urandom of="$A" bs=1M count="$size_mb" status=none
	cp "$A" "$B"
	cp "$A" "$C"
	cp "$A" "$D"
}

# run_fio NAME DEV ARGS... -> prints IOPS (for 4k) or MiB/s
run_fio() {
	local name=$1 dev=$2
	shift 2
	fio --name="$name" --filename="$dev" --ioengine=io_uring --direct=1 --time_based \
		--runtime="$runtime" --ramp_time=1 --output-format=json "$@" >"$T/fio.json" ||
		die "fio $name on $dev failed"
	python3 - "$T/fio.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
r, w = j["read"], j["write"]
side = r if r["io_bytes"] >= w["io_bytes"] else w
print("%.0f %.1f" % (side["iops"], side["bw_bytes"] / 1048576))
PY
}

JOBS=(
	"randread-4k-qd32|--rw=randread --bs=4k --iodepth=32|iops"
	"seqread-128k-qd8|--rw=read --bs=128k --iodepth=8|MiB/s"
	"seqwrite-128k-qd8|--rw=write --bs=128k --iodepth=8|MiB/s"
)

# One job on one device; appends the number to R[KIND:job] (space separated).
declare -A R
one() {
	local kind=$1 dev=$2 j=$3 name args unit v
	IFS='|' read -r name args unit <<<"$j"
	# shellcheck disable=SC2086
	v=$(run_fio "$name" "$dev" $args)
	if [ "$unit" = iops ]; then v=${v% *}; else v=${v#* }; fi
	R[$kind:$name]="${R[$kind:$name]:-} $v"
}
# versus ZKIND ZDEV MKIND MDEV: every job, zublk and md taking turns, ROUNDS times
versus() {
	local r j
	for r in $(seq "$rounds"); do
		for j in "${JOBS[@]}"; do
			if [ $((r % 2)) = 1 ]; then
				one "$1" "$2" "$j"
				one "$3" "$4" "$j"
			else
				one "$3" "$4" "$j"
				one "$1" "$2" "$j"
			fi
		done
	done
}
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

zublk_add() {
	local dev
	dev=$("$Z" add --mode "$mode" -q "$queues" "$@") || die "zublk add $* failed"
	echo "$dev"
}
md_create() { # md_create LEVEL extra args
	local level=$1 l
	shift
	LOOPS=()
	for f in "$C" "$D"; do
		l=$(losetup -f --show --direct-io=on "$f") || die "losetup $f"
		LOOPS+=("$l")
	done
	MD=/dev/md/zublk-bench
	mdadm --create "$MD" --run --quiet --metadata=1.2 --level="$level" --raid-devices=2 \
		"$@" "${LOOPS[@]}" >/dev/null 2>&1 || die "mdadm --create level $level failed"
	[ -b "$MD" ] || MD=$(ls /dev/md[0-9]* | head -1)
}
md_stop() {
	mdadm --stop "$MD" >/dev/null 2>&1 || true
	MD=
	for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null || true; done
	LOOPS=()
}

echo "raid bench: kernel $(uname -r), $(nproc) CPUs, ${size_mb}M files on tmpfs," \
	"${runtime}s per job, median of $rounds, zublk $mode q=$queues" | tee "$out"

fill
dev=$(zublk_add -t stripe chunk=64k file="$A" file="$B")
md_create 0 --chunk=64
versus zstripe "$dev" md0 "$MD"
"$Z" del --all
md_stop

fill
dev=$(zublk_add -t mirror file="$A" file="$B")
md_create 1 --assume-clean --bitmap=none
versus zmirror "$dev" md1 "$MD"
"$Z" del --all
md_stop

printf '%-8s %-20s %12s %12s %7s\n' "" job zublk md ratio | tee -a "$out"
for pair in "stripe:zstripe:md0" "mirror:zmirror:md1"; do
	IFS=: read -r label z m <<<"$pair"
	for j in "${JOBS[@]}"; do
		IFS='|' read -r name _ unit <<<"$j"
		zv=$(median "${R[$z:$name]}")
		mv=$(median "${R[$m:$name]}")
		ratio=$(python3 -c "print('%.2f' % ($zv / $mv if $mv else 0))")
		printf '%-8s %-20s %12s %12s %7s  %-6s  zublk:%s  md:%s\n' "$label" "$name" "$zv" \
			"$mv" "$ratio" "$unit" "${R[$z:$name]}" "${R[$m:$name]}" | tee -a "$out"
	done
done
