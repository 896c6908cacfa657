"""Every bench/ script runs, on the smallest sizes its options allow, so that none can rot.

Each runs as `python -m bench.NAME` from the project root in its own process, as it is
meant to be run; the test checks the exit status and the labels of the figures it prints,
not the figures. `reader` (lemon24's, which bench.poll compares monitor with) is no
dependency of monitor: bench.poll runs here with `--no-reader`, and a second test checks
that without `--no-reader` it either runs bench.poll_reader (when `reader` is installed)
or says how to install it or leave it out.
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


def bench(name: str, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", f"bench.{name}", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, f"bench.{name} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def assert_labels(text: str, *labels: str) -> None:
    missing = [label for label in labels if label not in text]
    assert not missing, f"missing {missing} in:\n{text}"


def test_cluster() -> None:
    out = bench("cluster", "--sizes", "200", "--per-day", "100", "--baseline", "50", "--chunk", "100").stdout
    assert_labels(out, "stream: 100 entries/day", "200 entries:", "entries/s", "weighing worker",
                  "per entry p50", "peak RSS", "window", "synthetic pair P/R/F1",
                  "naive baseline (every window entry)")


def test_cluster_dev() -> None:
    out = bench("cluster_dev", str(DATA / "cluster_cases.jsonl"), "--errors", "2", "--robustness").stdout
    assert_labels(out, "summary", "padded", "pair P/R/F1", "BCubed", "multi", "clusters",
                  "-- confusions (summary)", "false-merge pairs:", "missed-link pairs:")


def test_poll_monitor_only() -> None:
    out = bench("poll", "--feeds", "2", "--items", "1", "--repeat", "1", "--no-reader", "--no-floor").stdout
    assert_labels(out, "Command: `python -m bench.poll --feeds 2 --items 1 --repeat 1", "--no-reader`",
                  "| run | wall s | CPU s | feeds/s | new entries/s | peak RSS MiB | peak tree PSS MiB |",
                  "first poll (200s)", "second poll (304s)", "| ratio (of medians) | wall | target |",
                  "monitor_first / monitor_second")


def test_poll_with_reader_or_advice() -> None:
    if importlib.util.find_spec("reader") is None:
        proc = bench("poll", "--feeds", "2", "--items", "1", "--repeat", "1", "--no-floor", check=False)
        assert proc.returncode != 0
        assert_labels(proc.stdout + proc.stderr, "reader is not installed here", "--no-reader")
    else:
        out = bench("poll", "--feeds", "2", "--items", "1", "--repeat", "1", "--workers", "1",
                    "--no-floor").stdout
        assert_labels(out, "first update (200s)", "second update (304s)", "reader_first / monitor_first")


def test_poll_server() -> None:
    out = bench("poll_server", "--feeds", "2", "--items", "1", "--max-seconds", "1").stdout
    assert_labels(out, "READY ", '"ports"', '"feeds": 2')


def test_crash() -> None:
    out = bench("crash", "--feeds", "3", "--kills", "1", "--stops", "1").stdout
    assert_labels(out, "kill -9: 1 kills", "published", "stored", "orphaned processes:", "problems: 0",
                  "SIGTERM: 1 stops")


def test_load() -> None:
    out = bench("load", "--feeds", "3", "--items", "1").stdout
    assert_labels(out, "first  poll:", "second poll:", "feeds/s", "peak tree RSS",
                  "requests in flight at most:", "entries published by the working feeds")


def test_contention() -> None:
    out = bench("contention", "--feeds", "300", "--seconds", "1", "--long-read", "1", "--readers", "1",
                timeout=300).stdout
    assert_labels(out, "feeds,", "reader commands", "second writers", "daemon:", "long read:", "WAL peak")
