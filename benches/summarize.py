#!/usr/bin/env python3
"""Prints a Markdown table of criterion's results under target/criterion:
benchmark id, median time per iteration, and the derived rate per second
(elements per iteration / median). Used to write benches/BASELINE.md.

    python3 benches/summarize.py [prefix ...]   # e.g. smpp/ ingest/
"""

import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent / "target" / "criterion"


def human_time(ns: float) -> str:
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def human_rate(per_s: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if per_s >= scale:
            return f"{per_s / scale:.3g} {unit}/s"
    return f"{per_s:.3g} /s"


def main() -> None:
    prefixes = sys.argv[1:]
    rows = []
    for bench in sorted(ROOT.glob("**/new/benchmark.json")):
        meta = json.loads(bench.read_text())
        full_id = meta["full_id"]
        if prefixes and not any(full_id.startswith(p) for p in prefixes):
            continue
        est = json.loads((bench.parent / "estimates.json").read_text())
        median = est["median"]["point_estimate"]
        lo = est["median"]["confidence_interval"]["lower_bound"]
        hi = est["median"]["confidence_interval"]["upper_bound"]
        elements = (meta.get("throughput") or {}).get("Elements") or 1
        rows.append(
            (
                full_id,
                human_time(median),
                f"{human_time(lo)} – {human_time(hi)}",
                elements,
                human_rate(elements / median * 1e9),
                human_time(median / elements),
            )
        )
    print("| benchmark | median | 95% CI of median | elements | rate | per element |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print("| `{}` | {} | {} | {} | {} | {} |".format(*r))


if __name__ == "__main__":
    main()
