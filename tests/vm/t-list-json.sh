# SPDX-License-Identifier: MIT
# list --json carries what a script needs, and its counters move with IO.
. "$(dirname "$0")/lib.sh"
truncate -s 64M "$TMP/img"
queues_upto 2
add -t loop -f "$TMP/img" -q $q -d 64 --mode zero-copy
add -t null size=2G
dd if=/dev/zero of=/dev/ublkb0 bs=4k count=1000 oflag=direct status=none
"$Z" list --json >"$TMP/l.json" || fail "list --json"
python3 - "$TMP/l.json" "$TMP/img" "$q" <<'PY' || fail "list --json content"
import json, sys, os
devs = json.load(open(sys.argv[1]))
assert len(devs) == 2, devs
need = ["id", "state", "target", "mode", "queues", "depth", "size", "block_device", "daemon_pid", "counters"]
for d in devs:
    for k in need:
        assert k in d, (k, d)
    assert d["state"] == "LIVE", d
    assert os.path.exists("/proc/%d" % d["daemon_pid"]), d
l, n = devs
assert (l["target"], l["mode"], l["queues"], l["depth"], l["size"]) == ("loop", "zero-copy", int(sys.argv[3]), 64, 64 << 20), l
assert l["block_device"] == "/dev/ublkb0" and ("file=" + sys.argv[2]) in l["options"], l
assert l["counters"]["ios"] >= 1000, l["counters"]
assert l["counters"]["enters"] > 0 and l["counters"]["submits"] > 0, l["counters"]
assert (n["target"], n["mode"], n["size"]) == ("null", "zero-copy", 2 << 30), n  # null prefers zero-copy
for d in devs:  # devt read back from the driver matches the node
    rdev = os.stat(d["block_device"]).st_rdev
    assert d["devt"] == "%d:%d" % (os.major(rdev), os.minor(rdev)), d
PY
"$Z" list -n 1 --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert len(d)==1 and d[0]["id"]==1' ||
	fail "list -n 1"
"$Z" list | grep -q "^1 .*null" || fail "text list: $("$Z" list)"
exit 0
