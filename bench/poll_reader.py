#!/usr/bin/env python3
"""One `reader` update in its own process, for bench/poll.py (clean ru_maxrss per run).

    python -m bench.poll_reader --db PATH --urls FILE --phase first|second [--workers 8]

first: make a fresh reader database, add every URL of FILE (one a line; not timed), then
time update_feeds(). second: reopen the database and time update_feeds() again (the
server answers 304 to its conditional requests). `scheduled=False` makes reader update
every feed, as `monitor poll --all` does; reader >= 3.21 would otherwise skip feeds
updated less than an hour ago. Prints one JSON line: seconds, peak RSS, counts.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import time

import reader
from reader import make_reader


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True)
    ap.add_argument("--urls", required=True)
    ap.add_argument("--phase", choices=("first", "second"), required=True)
    ap.add_argument("--workers", type=int, default=8)
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    started = time.monotonic()
    r = make_reader(args.db)
    if args.phase == "first":
        with open(args.urls, encoding="utf-8") as fh:
            for url in fh.read().split():
                r.add_feed(url)
    ready = time.monotonic()
    before = r.get_entry_counts().total
    results = {"ok": 0, "not_modified": 0, "error": 0}
    t0 = time.perf_counter()
    for _url, value in r.update_feeds_iter(workers=args.workers, scheduled=False):
        if value is None:
            results["not_modified"] += 1
        elif isinstance(value, Exception):
            results["error"] += 1
        else:
            results["ok"] += 1
    seconds = time.perf_counter() - t0
    after = r.get_entry_counts().total
    r.close()
    print(
        json.dumps(
            {
                "seconds": seconds,
                "setup_seconds": ready - started,
                "new_entries": after - before,
                "entries": after,
                **results,
                "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "reader_version": reader.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
