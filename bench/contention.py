#!/usr/bin/env python3
"""Contention: the daemon writes while readers, second writers and a long read transaction run.

    python -m bench.contention [--feeds 300] [--seconds 300] [--long-read 240] [--readers 3] [--json]

The scenario of tests/reliability/test_contention.py, for longer: `monitor run` polls
every feed every 2 s (news published every second) while `--readers` processes loop over
`clusters list`, `search` and `status`, a thread checks in single read transactions that
no feed update is ever half visible, `feeds add`, `recluster`, `poll --all` and
`feeds remove` come in as second writers, and one read transaction stays open for
`--long-read` seconds. Figures: command runs and failures, consistency checks, how long
each second writer took (waiting included), daemon cycles, the WAL's peak size behind the
long reader and its size once the reader has gone.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from tests.support.scenarios import contention_run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--feeds", type=int, default=300)
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--long-read", type=float, default=240)
    ap.add_argument("--readers", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="monitor-contention-") as tmp:
        figures = contention_run(Path(tmp), feeds=args.feeds, seconds=max(args.seconds, args.long_read + 6),
                                 long_read=args.long_read, readers=args.readers)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(f"{figures['feeds']} feeds, {figures['seconds']} s: reader commands {figures['reader_runs']}, "
              f"{figures['consistency_checks']} consistency checks")
        print(f"second writers (seconds, waiting included): {figures['writers']}")
        print(f"daemon: {figures['daemon_cycles']} cycles, exit {figures['daemon_exit']}")
        print(f"long read: {figures.get('entries_written_during_long_read')} entries written under it; WAL peak "
              f"{figures['wal_peak_bytes'] / 1e6:.1f} MB, after {figures.get('wal_after_bytes', 0) / 1e6:.1f} MB")
        for problem in figures["problems"][:30]:
            print("PROBLEM", problem)
    return 1 if figures["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
