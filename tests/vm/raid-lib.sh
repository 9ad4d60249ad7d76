# SPDX-License-Identifier: MIT
# Sourced by the t-stripe* / t-mirror* scenarios after lib.sh: legs that can
# be made to fail (dm over a kernel loop device), and mirror status.
export DM_DISABLE_UDEV=1	# no udev here: libdevmapper makes /dev/mapper nodes
DMS=()
LOOPS=()
raid_cleanup() {
	pkill -9 -x fio 2>/dev/null
	timeout 60 "$Z" del --all >/dev/null 2>&1
	local d l
	for d in "${DMS[@]}"; do dmsetup remove --retry "$d" >/dev/null 2>&1; done
	for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null; done
	cleanup
}
trap raid_cleanup EXIT

declare -A DM_LOOP
# dm_leg NAME FILE: DM_DEV=/dev/mapper/zublk-test-NAME, dm-linear over a
# loop device on FILE
dm_leg() {
	local name=zublk-test-$1 file=$2 l sectors
	modprobe dm-mod 2>/dev/null
	modprobe loop 2>/dev/null
	command -v dmsetup >/dev/null || skip "no dmsetup (apt install dmsetup)"
	l=$(losetup -f --show "$file" 2>/dev/null) || skip "no kernel loop devices"
	LOOPS+=("$l")
	sectors=$(($(stat -c %s "$file") / 512))
	dmsetup create "$name" --table "0 $sectors linear $l 0" ||
		skip "device mapper does not work here"
	DMS+=("$name")
	DM_LOOP[$1]=$l
	DM_DEV=/dev/mapper/$name
}

# dm_fail NAME: from now on every IO to it fails (dm error target)
# dm_heal NAME: back to the loop device under it
dm_table() {
	local name=zublk-test-$1 sectors
	sectors=$(blockdev --getsz "/dev/mapper/$name")
	dmsetup suspend "$name" && dmsetup load "$name" --table "0 $sectors $2" &&
		dmsetup resume "$name" || fail "dm table '$2' for $1"
}
dm_fail() { dm_table "$1" error; }
dm_heal() { dm_table "$1" "linear ${DM_LOOP[$1]} 0"; }

leg_state() { dev_json "$1" ".legs[$2].state"; }
dev_errors() { counter "$1" errors; }
no_rebuild() { [ "$(dev_json "$1" .rebuild)" = None ]; }
rebuild_done() { no_rebuild "$1" && [ "$(leg_state "$1" "$2")" = ok ]; }
