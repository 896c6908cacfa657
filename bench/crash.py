#!/usr/bin/env python3
"""Crash runs, longer than the test suite's: SIGKILL and SIGTERM `monitor` at many moments.

    python -m bench.crash [--feeds 200] [--kills 100] [--stops 25] [--seed 1] [--json]

`--kills` times: `monitor poll --all`, `monitor digest send` or `monitor run` is started
against a loopback feed farm (new entries published before each start), an aiosmtpd
server and a json:// webhook (the topic's chat destination), and killed with SIGKILL at a
chosen stage (fetching, storing, clustering, right after clustering, at the SMTP server's
"250", at the webhook's receipt, with a request in flight that the webhook drops, right
after its "200", after queueing, at random moments, the daemon at a random moment). After
every kill the invariants of tests/support/reliability.py are checked, for mail and chat
alike; at the end a clean poll and send must leave every published entry stored once,
every entry clustered, every topic match carried by a mail and a chat digest, every digest
received, and each message received at most once more per kill that fell in its window.
Then `--stops` SIGTERMs of `monitor run` at random moments: each must exit 0.

Loopback only; each process is bounded by timeouts; the temporary directory is removed.
Prints the figures (and exits 1 if an invariant broke).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from tests.support.scenarios import crash_run, sigterm_run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--feeds", type=int, default=200)
    ap.add_argument("--kills", type=int, default=100)
    ap.add_argument("--stops", type=int, default=25)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    log = (lambda line: None) if args.json else (lambda line: print(line, flush=True))
    with tempfile.TemporaryDirectory(prefix="monitor-crash-") as tmp:
        (Path(tmp) / "kill").mkdir()
        (Path(tmp) / "term").mkdir()
        crash = crash_run(Path(tmp) / "kill", feeds=args.feeds, kills=args.kills, seed=args.seed, log=log)
        term = sigterm_run(Path(tmp) / "term", stops=args.stops, seed=args.seed, log=log) if args.stops else None
    if args.json:
        print(json.dumps({"kill9": crash, "sigterm": term}, indent=2, default=str))
    else:
        print(f"\nkill -9: {crash['kills']} kills in {crash['seconds']} s on {crash['feeds']} feeds")
        for where, n in sorted(crash["landed"].items()):
            print(f"  {n:4d}  {where}")
        print(f"  published {crash['published']} entries, stored {crash['entries']} (once each), "
              f"{crash['clusters']} clusters; {crash['digests']} digests, {crash['received']} messages received, "
              f"{crash['duplicates']} duplicates (same Message-ID, kills after the server's 250)")
        print(f"  chat: {crash['chat_digests']} digests, {crash['chat_received']} messages received, "
              f"{crash['chat_duplicates']} duplicates (same text)")
        for where, n in sorted(crash["in_window"].items()):
            print(f"  {n:4d}  kills found a message taken but not recorded sent ({where})")
        print(f"  orphaned processes: {crash['orphans']}; problems: {len(crash['problems'])}")
        if term:
            print(f"SIGTERM: {term['stops']} stops in {term['seconds']} s, exit codes {term['exit_codes']}, "
                  f"problems: {len(term['problems'])}")
        for problem in crash["problems"][:30] + (term["problems"][:30] if term else []):
            print("PROBLEM", problem)
    return 1 if crash["problems"] or (term and term["problems"]) else 0


if __name__ == "__main__":
    sys.exit(main())
