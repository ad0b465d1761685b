#!/usr/bin/env python3
"""Prints the median of every criterion benchmark of the last run, and the
ratio of each benchmark to the first one of its group (its baseline).

usage: scripts/bench-medians.py [GROUP ...]   (default: every group)
"""
import json, pathlib, sys

root = pathlib.Path(__file__).resolve().parent.parent / "target" / "criterion"
groups = sys.argv[1:] or sorted(p.name for p in root.iterdir() if p.is_dir() and p.name != "report")
for group in groups:
    rows = []
    for est in sorted((root / group).glob("**/new/estimates.json")):
        name = str(est.parent.parent.relative_to(root / group))
        median = json.loads(est.read_text())["median"]["point_estimate"]
        rows.append((name, median, est.stat().st_mtime))
    if not rows:
        continue
    rows.sort(key=lambda r: r[2])  # run order: the first measured is the baseline
    base = rows[0][1]
    print(f"{group}")
    for name, median, _ in rows:
        unit, div = ("ms", 1e6) if median >= 1e6 else ("µs", 1e3) if median >= 1e3 else ("ns", 1)
        print(f"  {name:<40} median {median / div:10.3f} {unit}   ratio {median / base:6.3f}")
