modprobe ublk_drv
Z=build/zublk
mkdir -p /tmp/small && mount -t tmpfs -o size=32M tmpfs /tmp/small
for mode in copy zero-copy auto-zero-copy; do
echo "== $mode: ENOSPC"
truncate -s 64M /tmp/small/img
D=$($Z add -t loop -f /tmp/small/img --mode $mode) || continue
dd if=/dev/urandom of=$D bs=1M count=64 oflag=direct 2>&1 | tail -2
$Z list --json | grep -o '"errors": [0-9]*'
dd if=$D of=/dev/null bs=1M iflag=direct 2>&1 | tail -1
echo "== $mode: truncate under it"
truncate -s 8M /tmp/small/img
dd if=$D of=/dev/null bs=1M iflag=direct 2>&1 | tail -1
dd if=/dev/zero of=$D bs=1M count=16 oflag=direct 2>&1 | tail -1
$Z list | tail -1
$Z del --all; echo del rc=$?
rm -f /tmp/small/img
done
pgrep -a zublk; tail -5 /run/zublk/*.log
