#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""fio_row.py FIO_JSON BEFORE AFTER PREFIX [FIO_JSON BEFORE AFTER PREFIX ...]:
one RAW line of the bench CSV per fio run, in the order given (the suite
hands over a job's runs at once: a Python start costs more than a second
in the VM).
fio_row.py --header: the CSV's header line (raw.csv: the RAW lines without
"RAW,", under it).

BEFORE/AFTER are snapshots taken around the fio run: `zublk list -n ID
--json`, the daemon's /proc/PID/stat and "csw N" (empty for kernel devices).
Daemon CPU per IO = (utime+stime delta) / (ios delta); enters per IO =
(io_uring_enter delta) / (ios delta), sleeps per IO = the daemon's voluntary
context switches (all its threads, /proc/PID/task/*/status) / ios: each one
a sleep that someone's wakeup ended, mostly the submitter's.  Busy CPU per
IO = the daemon CPU less the time its queue threads spent looking for work
that was not there yet (the idle_ns counter), per IO: what the requests
cost, without what polling spends waiting for them.  All over the whole
run, ramp included, so that they count the same IOs.
"""
import json
import os
import sys


def snapshot(path):
    text = open(path).read().strip()
    if not text:
        return None
    rest, _, csw = text.rpartition("\n")
    js, _, stat = rest.rpartition("\n")
    dev = json.loads(js)[0]
    fields = stat[stat.rindex(")") + 2:].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return dev["counters"], ticks, int(csw.split()[1])


HEADER = ("round,config,job,device,iops,mibs,lat_mean_us,lat_p99_us,cpu_us_per_io,"
          "enters_per_io,sleeps_per_io,busy_cpu_us_per_io")


def row(fio_json, before, after, prefix):
    jobs = json.load(open(fio_json))["jobs"]
    io = {"iops": 0.0, "bw": 0.0, "lat": 0.0, "p99": 0.0, "n": 0}
    for j in jobs:
        for side in ("read", "write"):
            s = j[side]
            if s["total_ios"] == 0:
                continue
            io["iops"] += s["iops"]
            io["bw"] += s["bw_bytes"]
            io["lat"] += s["lat_ns"]["mean"] * s["total_ios"]
            io["n"] += s["total_ios"]
            # No percentiles (fio run without them): no p99, not a p99 of 0.
            p = s["lat_ns"].get("percentile", {}).get("99.000000")
            io["p99"] = None if p is None or io["p99"] is None else max(io["p99"], p)
    if io["n"] == 0:
        sys.exit("fio_row.py: fio did no IO (%s)" % prefix)
    lat_us = io["lat"] / io["n"] / 1000
    cpu = enters = sleeps = busy = ""
    b, a = snapshot(before), snapshot(after)
    if b and a:
        ios = a[0]["ios"] - b[0]["ios"]
        if ios > 0:
            hz = os.sysconf("SC_CLK_TCK")
            cpu_us = (a[1] - b[1]) * 1e6 / hz
            cpu = "%.2f" % (cpu_us / ios)
            if "idle_ns" in a[0]:
                busy = "%.2f" % (max(cpu_us - (a[0]["idle_ns"] - b[0]["idle_ns"]) / 1000, 0) / ios)
            enters = "%.3f" % ((a[0]["enters"] - b[0]["enters"]) / ios)
            sleeps = "%.3f" % ((a[2] - b[2]) / ios)
    p99 = "" if io["p99"] is None else "%.1f" % (io["p99"] / 1000)
    print("RAW,%s,%.0f,%.1f,%.1f,%s,%s,%s,%s,%s" % (prefix, io["iops"], io["bw"] / 1048576,
                                                   lat_us, p99, cpu, enters, sleeps, busy))


def main():
    args = sys.argv[1:]
    if args == ["--header"]:
        print(HEADER)
        return
    if not args or len(args) % 4:
        sys.exit("usage: fio_row.py FIO_JSON BEFORE AFTER PREFIX [...] | --header")
    for i in range(0, len(args), 4):
        row(*args[i:i + 4])


main()
