#!/usr/bin/env python3
"""Per-kernel totals of an `ncu --csv` run (scripts/gpu/profile_step.sh): kernels grouped by
name, with launches, total microseconds, share of the summed kernel time, bytes moved (DRAM
read + write) and the bandwidth they reached. With a second argument N, also the launches
FIRST..FIRST+N-1 one by one, in order (one layer of a step shows each projection's shape apart):
    ncu_table.py ncu.csv [N [FIRST]]"""
import collections
import csv
import sys


def main(path, sequence=0, first=0):
    rows = []
    with open(path, newline="") as f:
        lines = [l for l in f if l.startswith('"')]
    for r in csv.DictReader(lines):
        rows.append(r)
    per = collections.defaultdict(lambda: {"n": 0, "ns": 0.0, "bytes": 0.0})
    seen = {}
    for r in rows:
        key = (r["ID"], r["Kernel Name"])
        seen.setdefault(key, {})[r["Metric Name"]] = (float(r["Metric Value"].replace(",", "")), r["Metric Unit"])
    scale = {"nsecond": 1.0, "usecond": 1e3, "msecond": 1e6, "second": 1e9,
             "byte": 1.0, "Kbyte": 1e3, "Mbyte": 1e6, "Gbyte": 1e9, "Kibyte": 1024.0, "Mibyte": 1048576.0}
    for (kid, name), m in seen.items():
        short = name.split("(")[0].split("<")[0][:60]
        t = m.get("gpu__time_duration.sum")
        p = per[short]
        p["n"] += 1
        if t:
            p["ns"] += t[0] * scale.get(t[1], 1.0)
        for k in ("dram__bytes_read.sum", "dram__bytes_write.sum"):
            if k in m:
                p["bytes"] += m[k][0] * scale.get(m[k][1], 1.0)
    total = sum(p["ns"] for p in per.values())
    print("%-60s %6s %10s %6s %8s %7s" % ("kernel", "count", "total us", "share", "GB", "TB/s"))
    for name, p in sorted(per.items(), key=lambda kv: -kv[1]["ns"]):
        tbs = p["bytes"] / p["ns"] / 1e3 if p["ns"] else 0
        print("%-60s %6d %10.1f %5.1f%% %8.3f %7.2f" % (name, p["n"], p["ns"] / 1e3, 100 * p["ns"] / total,
                                                       p["bytes"] / 1e9, tbs))
    print("%-60s %6d %10.1f" % ("sum of kernel times", sum(p["n"] for p in per.values()), total / 1e3))
    if sequence:
        print("\nlaunches %d..%d in order:" % (first, first + sequence - 1))
        print("%4s %-70s %9s %8s %7s" % ("#", "kernel", "us", "MB", "TB/s"))
        ordered = sorted(seen.items(), key=lambda kv: int(kv[0][0]))
        for i, ((kid, name), m) in enumerate(ordered[first:first + sequence]):
            t = m.get("gpu__time_duration.sum")
            ns = t[0] * scale.get(t[1], 1.0) if t else 0.0
            b = sum(m[k][0] * scale.get(m[k][1], 1.0) for k in ("dram__bytes_read.sum", "dram__bytes_write.sum") if k in m)
            print("%4d %-70s %9.1f %8.2f %7.2f" % (first + i, name[:70], ns / 1e3, b / 1e6, b / ns / 1e3 if ns else 0))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0, int(sys.argv[3]) if len(sys.argv) > 3 else 0)
