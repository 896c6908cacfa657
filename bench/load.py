#!/usr/bin/env python3
"""Load: one `monitor poll --all` of thousands of feeds with some failing, then a second poll.

    python -m bench.load [--feeds 2000] [--failing 0.05] [--hosts 1] [--per-host 2]
                         [--timeout 20s] [--items 10] [--json]

The feeds are served by the loopback FeedFarm of tests/support/feedfarm.py from `--hosts`
servers (ports; 1 = every feed on one host, the worst case for the per-host limit), each
with about `--items` x 1.1 entries of generated news. `--failing` of them are broken in
six ways, in equal parts: HTTP 500, 404, garbage bytes, a server that never answers
(costs the full `--timeout`), a slow one (the document over 1.5 s: not a failure) and a
connection reset. The farm counts requests in flight per host and reports any moment
above `--per-host`.

Figures: wall time of each poll (process start to exit), the cycle's own time, feeds/s,
and peak memory: the largest sum of resident memory over the poll's process tree (the
CLI process, its fork server and parse workers), sampled every 100 ms.
Each poll is stopped after 900 s (the default interval) and counted as a failure.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from tests.support.scenarios import load_run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--feeds", type=int, default=2000)
    ap.add_argument("--failing", type=float, default=0.05)
    ap.add_argument("--hosts", type=int, default=1)
    ap.add_argument("--per-host", type=int, default=2)
    ap.add_argument("--timeout", default="20s")
    ap.add_argument("--items", type=int, default=10)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="monitor-load-") as tmp:
        figures = load_run(Path(tmp), feeds=args.feeds, failing=args.failing, timeout=args.timeout,
                           per_host=args.per_host, hosts=args.hosts, items=args.items,
                           log=(lambda line: None) if args.json else print)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(f"\n{figures['feeds']} feeds on {figures['hosts']} host(s), per_host {figures['per_host']}, "
              f"timeout {figures['timeout']}; failing: {figures['failing']}")
        for run in ("first", "second"):
            r = figures.get(run)
            if r:
                print(f"{run:6s} poll: {r['seconds']:7.1f} s wall ({r['cycle_seconds']} s cycle), "
                      f"{r['feeds_per_second']:6.1f} feeds/s, peak tree RSS {r['peak_tree_rss_mb']} MB; "
                      f"fetched {r['fetched']}, not modified {r['not_modified']}, failed {r['failed']}, "
                      f"new {r['new']}")
        print(f"requests in flight at most: {figures['max_in_flight']} (limit {figures['per_host']} per host)")
        print(f"entries published by the working feeds {figures['entries_published_by_working_feeds']}, "
              f"stored {figures.get('entries_stored')}")
        for problem in figures["problems"][:30]:
            print("PROBLEM", problem)
    return 1 if figures["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
