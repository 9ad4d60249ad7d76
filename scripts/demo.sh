#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The main job, end to end: a 1 GiB image served by zublk's loop target in
# the best zero-copy mode the kernel offers, ext4 on it, files written and
# read back with checksums, throughput printed, everything torn down.
# Runs where the ublk driver is (make demo boots the VM for it).
set -euo pipefail
cd "$(dirname "$0")/.."
Z=$PWD/build/zublk
work=$(mktemp -d /tmp/zublk-demo.XXXXXX)
dev=""
cleanup() {
	mountpoint -q "$work/mnt" 2>/dev/null && umount "$work/mnt"
	[ -n "$dev" ] && "$Z" del -n "${dev#/dev/ublkb}" >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT
step() { printf '==> %s\n' "$*"; }
mb_per_s() { awk -v b="$1" -v ns="$2" 'BEGIN { printf "%.1f MiB/s", b / 1048576 / (ns / 1e9) }'; }

modprobe ublk_drv 2>/dev/null || true
modprobe ext4 2>/dev/null || true
[ -c /dev/ublk-control ] || { echo "demo: no ublk driver here (/dev/ublk-control missing)" >&2; exit 1; }

step "kernel $(uname -r); $("$Z" features | grep '^default mode')"
truncate -s 1G "$work/disk.img"
dev=$("$Z" add -t loop -f "$work/disk.img")
mode=$("$Z" list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["mode"])')
step "zublk add -t loop -f disk.img -> $dev (mode: $mode)"
case $mode in *zero-copy) ;; *) echo "demo: expected a zero-copy mode, got $mode" >&2; exit 1 ;; esac

step "mkfs.ext4 $dev"
mkfs.ext4 -q -F "$dev"
mkdir "$work/mnt"
mount "$dev" "$work/mnt"

nfiles=8 size_mb=48
step "writing $nfiles files of $size_mb MiB"
head -c $((nfiles * size_mb))M /dev/urandom >"$work/src"
t0=$(date +%s%N)
for i in $(seq 1 $nfiles); do
	dd if="$work/src" of="$work/mnt/file$i" bs=1M skip=$(((i - 1) * size_mb)) count=$size_mb \
		status=none
done
sync -f "$work/mnt"
t1=$(date +%s%N)
(cd "$work/mnt" && sha256sum file*) >"$work/sums"
step "write: $(mb_per_s $((nfiles * size_mb << 20)) $((t1 - t0)))"

step "remount, then read back and check"
umount "$work/mnt"
echo 3 >/proc/sys/vm/drop_caches
mount "$dev" "$work/mnt"
t0=$(date +%s%N)
cat "$work"/mnt/file* >/dev/null
t1=$(date +%s%N)
step "read:  $(mb_per_s $((nfiles * size_mb << 20)) $((t1 - t0)))"
(cd "$work/mnt" && sha256sum --quiet -c "$work/sums")
step "checksums: all $nfiles files match"
umount "$work/mnt"
fsck.ext4 -fn "$dev" >/dev/null 2>&1
step "fsck: clean"

"$Z" list
"$Z" del -n "${dev#/dev/ublkb}"
dev=""
[ "$("$Z" list --json | tr -d ' \n')" = "[]" ]
step "torn down: no device left"
echo "demo: OK"
