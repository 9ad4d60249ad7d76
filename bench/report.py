#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""report.py DIR: DIR/raw.csv (+ info.txt) -> DIR/results.md, DIR/results.csv,
DIR/ratios.png (gnuplot, when installed).

Every figure is the median over the rounds of one boot; ratios are ratios of
medians.  bench/notes.md (hand-written: what limits the targets not met) is
appended to results.md.
"""
import csv
import re
import os
import shutil
import statistics
import subprocess
import sys

METRICS = ["iops", "mibs", "lat_mean_us", "lat_p99_us", "cpu_us_per_io", "enters_per_io",
           "sleeps_per_io", "busy_cpu_us_per_io"]
JOB_TITLES = {
    "rr4k-qd1": "4k randread QD1",
    "rr4k-qd32": "4k randread QD32",
    "rw4k-qd32": "4k randwrite QD32",
    "sr128k-qd16": "128k seq read QD16",
    "sw128k-qd16": "128k seq write QD16",
    "sw512k-qd8": "512k seq write QD8",
    "aw4k-qd1": "4k randwrite QD1, new clusters",
    "aw4k-qd32": "4k randwrite QD32, new clusters",
    "aw64k-qd8": "64k seq write QD8, new clusters",
}
ALLOC_JOBS = ["aw4k-qd1", "aw4k-qd32", "aw64k-qd8"]
CONFIG_TITLES = {
    "1q1j": "1 queue, 1 fio job",
    "2q2j": "2 queues, 2 fio jobs (cpus_allowed_policy=split)",
    "1q2j": "1 queue, 2 fio jobs",
    "raid": "stripe / mirror vs md (1 queue, 1 job, zero copy, 2 tmpfs files)",
    "nbd": "nbd vs the kernel's nbd client (1 queue, 1 connection, 1 job; nbdkit memory, TCP)",
    "zoned": "zoned vs null_blk's zoned mode (1 queue, 1 job; 64M zones, fio --zonemode=zbd)",
    "integrity": "loop with integrity metadata (T10 PI, crc16) vs without and the kernel loop "
                 "driver (1 queue, 1 job; tmpfs files)",
    "qcow2": "qcow2 vs qemu-nbd through the kernel's nbd client (1 queue, 1 job; images on tmpfs, "
             "every cluster allocated)",
    "disk": "files on ext4 on an emulated virtio disk (1 queue, 1 job): loop and qcow2, direct IO "
            "and buffered, vs the kernel loop driver and qemu-nbd",
    "alloc": "writes into fresh qcow2 images on ext4 on an emulated virtio disk (1 queue, 1 job; "
             "each run its own image, each block written once at most): zublk qcow2 vs qemu-nbd",
}
MODES = ["copy", "user-copy", "zero-copy", "auto-zero-copy"]


def load(d):
    """The rows of raw.csv; per (config, job, device) the medians of every
    metric, with "n" the rounds; the devices of each (config, job) in run
    order; per (config, job, device) every metric's value by round."""
    rows = list(csv.DictReader(open(os.path.join(d, "raw.csv"))))
    if not rows:
        sys.exit("report.py: %s/raw.csv has no rows" % d)
    by_round = {}
    order = {}
    for r in rows:
        key = (r["config"], r["job"], r["device"])
        order.setdefault((r["config"], r["job"]), [])
        if r["device"] not in order[(r["config"], r["job"])]:
            order[(r["config"], r["job"])].append(r["device"])
        for m in METRICS:
            if r.get(m) not in (None, ""):
                by_round.setdefault(key, {}).setdefault(m, {})[r["round"]] = float(r[m])
    out = {}
    for key, ms in by_round.items():
        out[key] = {m: statistics.median(v.values()) for m, v in ms.items()}
        out[key]["n"] = max(len(v) for v in ms.values())
    return rows, out, order, by_round


def ratio(a, b):
    return a / b if a is not None and b else None


def fmt(v, digits=0):
    if v is None:
        return "-"
    return ("%." + str(digits) + "f") % v


def main():
    d = sys.argv[1]
    rows, med, order, by_round = load(d)
    def get(cfg, job, dev, m="iops"):
        return med.get((cfg, job, dev), {}).get(m)

    def paired(a, b, m="iops"):
        """Per-round ratios a/b: each round's two runs were minutes apart at
        most, so the host's slow swings cancel out of them."""
        ra, rb = by_round.get(a, {}).get(m, {}), by_round.get(b, {}).get(m, {})
        return [ra[k] / rb[k] for k in sorted(ra) if k in rb and rb[k]]

    def modes_of(prefix, cfg="1q1j"):
        return [m for m in MODES if any((cfg, j, prefix + m) in med for j in JOB_TITLES)]

    info = ""
    if os.path.exists(os.path.join(d, "info.txt")):
        info = open(os.path.join(d, "info.txt")).read().strip()

    modes = modes_of("znull-") or modes_of("zloop-")
    default = "auto-zero-copy" if "auto-zero-copy" in modes else (modes[-1] if modes else "")
    defaults = dict(re.findall(r"\b(null|loop)=([a-z-]+)", info))
    dnull, dloop = defaults.get("null", default), defaults.get("loop", default)

    # results.csv: the medians
    with open(os.path.join(d, "results.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["config", "job", "device", "rounds"] + METRICS +
                   ["x_null_blk", "x_kloop", "x_kloop_dio", "x_md", "x_nbd"])
        for (cfg, job), devs in sorted(order.items()):
            for dev in devs:
                v = med[(cfg, job, dev)]
                xs = ref_ratios(get, cfg, job, dev)
                w.writerow([cfg, job, dev, v["n"]] + [fmt(v.get(m), 3) for m in METRICS] +
                           [fmt(x, 3) for x in xs])

    L = []
    L.append("# zublk benchmark results\n")
    L.append("%s.\n" % info if info else "")
    L.append("Medians of %d rounds per row (devices alternate within each round); "
             "ratios are ratios of medians.  CPU/IO is the daemon's CPU time "
             "(user+system, all threads, /proc/PID/stat) per IO; enters/IO its "
             "io_uring_enter calls per IO (`zublk list --json` counters); sleeps/IO its "
             "voluntary context switches per IO (/proc/PID/task/*/status): each a sleep "
             "that a wakeup ended, mostly the submitter's; busy CPU/IO the CPU/IO less the "
             "time its queue threads spent looking for work that had not come yet "
             "(`zublk list --json` counter idle_ns): what the requests cost without what "
             "polling spends waiting for them.  Kernel "
             "devices have no daemon.  Raw rounds: raw.csv; medians: results.csv; "
             "chart: ratios.png.\n" % max(int(r["round"]) for r in rows))

    L.append("## Targets\n")
    L.append("The measured ratio is the ratio of the two rows' medians; \"per round\" is the "
             "median and the range of the ratios taken within each round (the two runs of a "
             "round are close in time, so a host that speeds up or slows down between rounds "
             "moves both), and how many rounds reached the goal.\n")
    L.append("| target | measured | per round: median [min-max], rounds met | goal | met |")
    L.append("|---|---|---|---|---|")

    tally = {"yes": 0, "no": 0, "not run": 0}

    def target(name, val, goal, detail="", pairs=None):
        met = "not run" if val is None else ("yes" if val >= goal else "**no**")
        tally[met.strip("*")] += 1
        pr = "-"
        if pairs:
            pr = "%.2f [%.2f-%.2f], %d of %d" % (statistics.median(pairs), min(pairs), max(pairs),
                                                 sum(x >= goal for x in pairs), len(pairs))
        L.append("| %s | %s%s | %s | >= %.2f | %s |" % (name, fmt(val, 2),
                                                       (" (%s)" % detail) if detail else "", pr,
                                                       goal, met))

    def versus(name, a, b, goal, detail="", m="iops", inverse=False):
        """Target row: a/b (b/a when inverse) for keys (config, job, device)."""
        va, vb = get(*a, m=m), get(*b, m=m)
        if inverse:
            a, b, va, vb = b, a, vb, va
        target(name, ratio(va, vb), goal, detail, paired(a, b, m))

    q32 = ("1q1j", "rr4k-qd32")
    busy = get(*q32, "nullb-busy")
    versus("null %s (its default), 4k randread QD32 vs null_blk" % dnull,
           q32 + ("znull-" + dnull,), q32 + ("nullb",), 0.95,
           "" if busy is None else "null_blk with the other CPU busy: %s x null_blk; zublk %s x that"
           % (fmt(ratio(busy, get(*q32, "nullb")), 2), fmt(ratio(get(*q32, "znull-" + dnull), busy), 2)))
    versus("loop %s (its default), 4k randread QD32 vs kernel loop (dio off)" % dloop,
           q32 + ("zloop-" + dloop,), q32 + ("kloop",), 1.3)
    for m in ("zero-copy", "auto-zero-copy"):
        for job in ("sr128k-qd16", "sw512k-qd8"):
            versus("loop %s, %s vs kernel loop (dio off)" % (m, JOB_TITLES[job]),
                   ("1q1j", job, "zloop-" + m), ("1q1j", job, "kloop"), 1.0,
                   "vs dio on: %s" % fmt(ratio(get("1q1j", job, "zloop-" + m),
                                                get("1q1j", job, "kloop-dio")), 2))
        versus("null %s, 512k write vs null_blk" % m,
               ("1q1j", "sw512k-qd8", "znull-" + m), ("1q1j", "sw512k-qd8", "nullb"), 0.95)
    for t, dm in (("znull", dnull), ("zloop", dloop)):
        for job in ("rr4k-qd32", "sw512k-qd8"):
            b = get("1q2j", job, "%s-%s" % (t, dm))
            t2 = ratio(get("2q2j", job, t + "-t2"), b)
            pin = ratio(get("2q2j", job, t + "-pin"), b)
            other = ["%s: %s" % (k, fmt(v, 2)) for k, v in
                     (("a thread per queue", t2), ("pinned", pin)) if v is not None]
            versus("%s %s, %s: 2 queues/2 jobs vs 1 queue/2 jobs" % (t[1:], dm, JOB_TITLES[job]),
                   ("2q2j", job, "%s-%s" % (t, dm)), ("1q2j", job, "%s-%s" % (t, dm)), 1.0,
                   ", ".join(other))
    for job in ("rr4k-qd32", "rw4k-qd32"):
        a, b = get("1q1j", job, "zloop-" + dloop, "cpu_us_per_io"), get("1q1j", job, "zloop-copy", "cpu_us_per_io")
        detail = "%s vs %s us" % (fmt(b, 1), fmt(a, 1))
        ba = get("1q1j", job, "zloop-" + dloop, "busy_cpu_us_per_io")
        bb = get("1q1j", job, "zloop-copy", "busy_cpu_us_per_io")
        if ba is not None and bb is not None:
            detail += "; busy CPU/IO, without polling's waits: %s (%s vs %s us)" % (
                fmt(ratio(bb, ba), 2), fmt(bb, 1), fmt(ba, 1))
        versus("loop, %s: daemon CPU/IO of copy mode / of %s" % (JOB_TITLES[job], dloop),
               ("1q1j", job, "zloop-" + dloop), ("1q1j", job, "zloop-copy"), 1.5,
               detail, m="cpu_us_per_io", inverse=True)
    for z, md in (("zstripe", "md0"), ("zmirror", "md1")):
        for job in ("rr4k-qd32", "sr128k-qd16"):
            versus("%s vs md %s, %s" % (z[1:], "raid0" if md == "md0" else "raid1", JOB_TITLES[job]),
                   ("raid", job, z), ("raid", job, md), 1.0)
    L.append("")
    L.append("Met %d of the %d targets; %d missed; %s.\n" % (
        tally["yes"], sum(tally.values()), tally["no"],
        "%d not run in this boot (their configurations were left out of it)" % tally["not run"]
        if tally["not run"] else "every one run in this boot"))

    L.append("## Zero copy vs copy (1 queue, 1 job; IOPS ratio)\n")
    L.append("| device | job | " + " | ".join("%s / copy" % m for m in modes if m != "copy") + " |")
    L.append("|---|---|" + "---|" * (len(modes) - 1))
    for t in ("znull", "zloop"):
        for job in ("sr128k-qd16", "sw512k-qd8", "rr4k-qd32"):
            c = get("1q1j", job, t + "-copy")
            if c is None:
                continue
            L.append("| %s | %s | %s |" % (t[1:], JOB_TITLES[job], " | ".join(
                fmt(ratio(get("1q1j", job, "%s-%s" % (t, m)), c), 2) for m in modes if m != "copy")))
    L.append("")

    # One row per device: variant / baseline, every job but the raid one;
    # no table when the run had none of the variants.
    def variant_table(title, rows, cfg="1q1j", jobs=None):
        jobs = jobs or [j for j in JOB_TITLES if j != "sw128k-qd16" and j not in ALLOC_JOBS]
        cells = [[ratio(get(cfg, j, variant), get(cfg, j, base)) for j in jobs]
                 for _, variant, base in rows]
        if all(c is None for row in cells for c in row):
            return
        L.append("## %s\n" % title)
        L.append("| device | " + " | ".join(JOB_TITLES[j] for j in jobs) + " |")
        L.append("|---|" + "---|" * len(jobs))
        for (label, _, _), row in zip(rows, cells):
            L.append("| %s | %s |" % (label, " | ".join(fmt(c, 2) for c in row)))
        L.append("")

    nbd_rows = [("nbd %s" % m, "znbd-" + m, "knbd") for m in modes_of("znbd-", "nbd")]
    variant_table("nbd vs the kernel's nbd client (nbd-client), one nbdkit memory export over TCP, "
                  "1 queue, 1 job (IOPS ratio; reported, no target)", nbd_rows, cfg="nbd")
    zoned_rows = [("zoned %s" % m, "zzoned-" + m, "nullbz") for m in modes_of("zzoned-", "zoned")]
    variant_table("zoned vs null_blk's zoned mode (memory backed), zone files on tmpfs, 64M zones, "
                  "fio --zonemode=zbd, 1 queue, 1 job (IOPS ratio; reported, no target)",
                  zoned_rows, cfg="zoned")
    variant_table("Copying in the queue thread vs io_uring, zone files on tmpfs (zoned, zero-copy, "
                  "1 queue, 1 job; IOPS ratio, copy_max default vs copy_max=0)",
                  [("zoned", "zzoned-zero-copy", "zzoned-nocopy")], cfg="zoned")
    pi_rows = [("loop pi=crc16 %s" % m, "zloop-pi-" + m, "zloop-nopi")
               for m in modes_of("zloop-pi-", "integrity")]
    pi_rows.append(("loop pi=none (metadata only), default mode", "zloop-meta", "zloop-nopi"))
    pi_rows.append(("the kernel's: scsi_debug dif=1 dix=1, the block layer's PI on vs off",
                    "ksd-pi", "ksd"))
    variant_table("Integrity metadata vs none: loop with meta= pi=crc16 (the block layer makes "
                  "and checks the PI) vs loop without, tmpfs files, 1 queue, 1 job (IOPS ratio; "
                  "reported, no target)", pi_rows, cfg="integrity")
    q_rows = [("qcow2 %s" % m, "zqcow2-" + m, "kqnbd") for m in modes_of("zqcow2-", "qcow2")]
    q_rows.append(("loop over a raw file (default mode)", "zqraw", "kqnbd"))
    variant_table("qcow2 vs qemu-nbd serving the same kind of image through the kernel's nbd "
                  "client, 1 queue, 1 job (IOPS ratio; reported, no target)", q_rows, cfg="qcow2")
    variant_table("What the format costs: zublk qcow2 vs zublk loop over a raw file (1 queue, "
                  "1 job; IOPS ratio)",
                  [("qcow2 %s" % m, "zqcow2-" + m, "zqraw") for m in modes_of("zqcow2-", "qcow2")],
                  cfg="qcow2")
    d_rows = [("loop buffered=0 (default) %s vs loop direct-io on" % m, "zdloop-" + m, "kdloop-dio")
              for m in modes_of("zdloop-", "disk")]
    d_rows.append(("loop buffered=1 vs loop direct-io off", "zdloop-buf", "kdloop"))
    d_rows += [("qcow2 buffered=0 %s vs qemu-nbd --cache=none" % m, "zdqcow2-" + m, "kdqnbd")
               for m in modes_of("zdqcow2-", "disk")]
    d_rows.append(("qcow2 buffered=1 (default) vs qemu-nbd writeback (default)", "zdqcow2-buf",
                   "kdqnbd-wb"))
    variant_table("Files on ext4 on an emulated virtio disk: zublk loop and qcow2 vs the kernel "
                  "loop driver and qemu-nbd through the kernel's nbd client, direct IO and "
                  "buffered, 1 queue, 1 job (IOPS ratio; reported, no target)", d_rows, cfg="disk")
    a_rows = [("qcow2 buffered=0 %s vs qemu-nbd --cache=none" % m, "zaqcow2-" + m, "kaqnbd")
              for m in modes_of("zaqcow2-", "alloc")]
    a_rows.append(("qcow2 buffered=1 (default) vs qemu-nbd writeback (default)", "zaqcow2-buf",
                   "kaqnbd-wb"))
    variant_table("Writes into fresh qcow2 images (every cluster new at first) on ext4 on an "
                  "emulated virtio disk: zublk qcow2 vs qemu-nbd through the kernel's nbd client, "
                  "1 queue, 1 job (IOPS ratio; reported, no target)", a_rows, cfg="alloc",
                  jobs=ALLOC_JOBS)
    variant_table("Polling vs sleeping at once (--poll-us off): the default (adaptive) and "
                  "--poll-us 100 (1 queue, 1 job, default modes; IOPS ratio)",
                  [("null, adaptive (default)", "znull-" + dnull, "znull-nopoll"),
                   ("null, --poll-us 100", "znull-poll", "znull-nopoll"),
                   ("loop, adaptive (default)", "zloop-" + dloop, "zloop-nopoll"),
                   ("loop, --poll-us 100", "zloop-poll", "zloop-nopoll")])
    variant_table("Polling vs sleeping at once, 2 queues and 2 jobs: the default (adaptive) / "
                  "--poll-us off (IOPS ratio)",
                  [("null", "znull-" + dnull, "znull-nopoll"),
                   ("loop", "zloop-" + dloop, "zloop-nopoll")], cfg="2q2j")
    variant_table("One thread for both queues (the default) vs a thread per queue "
                  "(--threads 2), 2 queues and 2 jobs",
                  [("null", "znull-" + dnull, "znull-t2"), ("loop", "zloop-" + dloop, "zloop-t2")],
                  cfg="2q2j")
    variant_table("Batched commands: --batch (UBLK_F_BATCH_IO) vs one command per request "
                  "(1 queue, 1 job, default modes; IOPS ratio)",
                  [("null", "znull-batch", "znull-" + dnull), ("loop", "zloop-batch", "zloop-" + dloop)])
    variant_table("Reads that touch no data, as null_blk's: fill=none vs zeros (null, 1 queue, 1 job, "
                  "default mode; IOPS ratio)",
                  [("null", "znull-nofill", "znull-" + dnull)])
    variant_table("Shared memory: --shmem, fio's buffers in a tmpfs file the device registered "
                  "(UBLK_F_SHMEM_ZC) vs the default mode (1 queue, 1 job; IOPS ratio)",
                  [("null", "znull-shm", "znull-" + dnull), ("loop", "zloop-shm", "zloop-" + dloop),
                   ("null, both with fio's buffers in the file", "znull-shm", "znull-shmbuf"),
                   ("loop, both with fio's buffers in the file", "zloop-shm", "zloop-shmbuf")])
    variant_table("Copying requests straight into the mapped tmpfs file vs io_uring (loop, 1 queue, "
                  "1 job, default mode; IOPS ratio, map vs map=0)",
                  [("loop", "zloop-" + dloop, "zloop-nomap")])

    for cfg in ("1q1j", "2q2j", "1q2j", "raid", "nbd", "zoned", "integrity", "qcow2", "disk",
                "alloc"):
        jobs = [j for j in JOB_TITLES if (cfg, j) in order]
        if not jobs:
            continue
        L.append("## %s\n" % CONFIG_TITLES[cfg])
        for job in jobs:
            L.append("### %s\n" % JOB_TITLES[job])
            L.append("| device | IOPS | MiB/s | lat mean us | lat p99 us | CPU us/IO | busy CPU us/IO | "
                     "enters/IO | sleeps/IO | x null_blk | x loop | x loop-dio | x md | x nbd |")
            L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
            for dev in order[(cfg, job)]:
                v = med[(cfg, job, dev)]
                xs = ref_ratios(get, cfg, job, dev)
                L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                    dev, fmt(v.get("iops")), fmt(v.get("mibs"), 1), fmt(v.get("lat_mean_us"), 1),
                    fmt(v.get("lat_p99_us"), 1), fmt(v.get("cpu_us_per_io"), 1),
                    fmt(v.get("busy_cpu_us_per_io"), 1),
                    fmt(v.get("enters_per_io"), 3), fmt(v.get("sleeps_per_io"), 3),
                    " | ".join(fmt(x, 2) for x in xs)))
            L.append("")

    notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "notes.md")
    if os.path.exists(notes):
        L.append(open(notes).read())
    open(os.path.join(d, "results.md"), "w").write("\n".join(L) + "\n")
    chart(d, get, modes)


def ref_ratios(get, cfg, job, dev):
    """x null_blk (null devices), x kernel loop dio off / on (loop devices), x md,
    x the kernel's nbd client."""
    v = get(cfg, job, dev)
    nb = kl = kd = md = kn = None
    nullb = "nullb"
    if dev.startswith("znull") or dev == "nullb-busy":
        nb = ratio(v, get(cfg, job, nullb))
    if dev.startswith("zzoned"):
        nb = ratio(v, get(cfg, job, "nullbz"))
    if dev.startswith("zloop"):
        kl = ratio(v, get(cfg, job, "kloop"))
        kd = ratio(v, get(cfg, job, "kloop-dio"))
    if dev == "zstripe":
        md = ratio(v, get(cfg, job, "md0"))
    if dev == "zmirror":
        md = ratio(v, get(cfg, job, "md1"))
    if dev.startswith("znbd"):
        kn = ratio(v, get(cfg, job, "knbd"))
    if dev.startswith("zqcow2") or dev == "zqraw":
        kn = ratio(v, get(cfg, job, "kqnbd"))
    if dev.startswith("zdloop"):
        kl = ratio(v, get(cfg, job, "kdloop"))
        kd = ratio(v, get(cfg, job, "kdloop-dio"))
    if dev.startswith("zdqcow2"):
        kn = ratio(v, get(cfg, job, "kdqnbd-wb" if dev == "zdqcow2-buf" else "kdqnbd"))
    if dev.startswith("zaqcow2"):
        kn = ratio(v, get(cfg, job, "kaqnbd-wb" if dev == "zaqcow2-buf" else "kaqnbd"))
    return nb, kl, kd, md, kn


def chart(d, get, modes):
    """ratios.png: zublk null vs null_blk and zublk loop vs kernel loop (1q1j), zublk
    nbd vs the kernel's nbd client (nbd)."""
    # Not an older boot's chart beside this boot's numbers.
    png = os.path.join(d, "ratios.png")
    if os.path.exists(png):
        os.remove(png)
    if not shutil.which("gnuplot"):
        print("report.py: no gnuplot; ratios.png not drawn", file=sys.stderr)
        return
    cols = [("1q1j", "znull-" + m, "nullb", "null %s / null_blk" % m) for m in modes] + \
           [("1q1j", "zloop-" + m, "kloop", "loop %s / loop" % m) for m in modes] + \
           [("nbd", "znbd-" + m, "knbd", "nbd %s / kernel nbd" % m) for m in MODES] + \
           [("zoned", "zzoned-" + m, "nullbz", "zoned %s / null_blk zoned" % m) for m in MODES]
    cols = [c for c in cols if any(get(c[0], j, c[1]) and get(c[0], j, c[2]) for j in JOB_TITLES)]
    jobs = [j for j in JOB_TITLES if any(get(c[0], j, c[2]) for c in cols)]
    if not cols:
        print("report.py: no rows to chart; ratios.png not drawn", file=sys.stderr)
        return
    dat = os.path.join(d, "ratios.dat")
    with open(dat, "w") as f:
        f.write("job " + " ".join('"%s"' % c[3] for c in cols) + "\n")
        for j in jobs:
            f.write('"%s" ' % JOB_TITLES[j] + " ".join(
                fmt(ratio(get(cfg, j, a), get(cfg, j, b)), 3).replace("-", "NaN")
                for cfg, a, b, _ in cols) + "\n")
    script = """
set terminal pngcairo size 1400,700 noenhanced
set output '%s'
set title 'zublk / kernel driver, IOPS ratio of medians (1 queue, 1 job; 1.0 = as fast)'
set style data histogram
set style histogram cluster gap 1
set style fill solid 0.8 border -1
set key outside right top
set yrange [0:*]
set grid ytics
set xtics rotate by -20
set arrow from graph 0, first 1 to graph 1, first 1 nohead lw 2 lc rgb 'black'
plot for [i=2:%d] '%s' using i:xtic(1) title columnheader(i)
""" % (os.path.join(d, "ratios.png"), len(cols) + 1, dat)
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    if r.returncode:
        print("report.py: gnuplot failed: %s" % r.stderr.strip(), file=sys.stderr)
        try:
            os.unlink(os.path.join(d, "ratios.png"))
        except FileNotFoundError:
            pass
    os.unlink(dat)


main()
