#!/usr/bin/env python3
"""Poll-cycle benchmark: `monitor poll --all` against lemon24's `reader` on the same feeds.

    python -m bench.poll [--feeds 1000] [--items 20] [--repeat 3] [--workers 8] [--hosts 1] [--json]
    python -m bench.poll --corpus FILE [--summary-only] [--feedserver SCRIPT] [--repeat 3] ...

Needs `reader` (latest 3.x) and `sgmllib3k` in the same environment, for comparison only:
`pip install 'reader>=3,<4' sgmllib3k` (they are not dependencies of monitor).

What it does
  * bench/poll_server.py, in its own process (it must not share a GIL or a core's time
    slice accounting with the measured process), generates `--feeds` feeds of `--items`
    items: every third carries full text (content:encoded / Atom content of 2-6 KB of CMS
    HTML: figures, links with tracking parameters, embeds, a tracking pixel), every fifth
    is Atom, the rest RSS 2.0 with HTML summaries. It serves them on 127.0.0.1 with ETag and
    Last-Modified, answers conditional requests with 304 and gzips when asked.
  * `--corpus FILE` serves a corpus of articles in the evaluation schema (JSON lines: id,
    outlet, outlet_url, title, summary, content, link, published) instead, one feed per
    outlet: the outlets rotate through RSS 2.0, Atom 1.0 and RSS 1.0 (RDF), items carry the
    full text (content:encoded / Atom content) unless `--summary-only`. bench/poll_server.py
    renders the documents the evaluation harness's feed server renders; `--feedserver
    SCRIPT` runs that script itself instead (`SCRIPT CORPUS --dir D --ready-file F`, its
    feed URLs from D/feeds.opml, its request counts from D/requests.log). Every entry of the
    corpus must be stored by both tools.
  * monitor: a fresh database per repetition, the feeds imported from OPML (not timed),
    then `monitor --db X --config C poll --all --json` as a subprocess, twice: the first
    poll (all 200: fetch + parse + store, and whatever else the cycle does by then) and the
    second (all 304). The time is the subprocess's wall time, start-up included: it is
    what users run. The cycle's own time (`seconds` of --json) is reported beside it.
  * reader: a fresh database per repetition, every URL added (not timed), then
    update_feeds(workers=N, scheduled=False) timed inside its own process (bench/poll_reader.py),
    first and second update, each in a fresh process like monitor's polls.
  * `--repeat` repetitions, alternating which tool goes first; medians are reported.

Figures: wall seconds (median, with min-max), feeds/s, new entries/s, and memory:
"RSS" is ru_maxrss of the measured process itself (os.wait4; monitor's parse workers are
separate processes and not in it); "tree PSS" is the peak of the summed proportional set
size (/proc/PID/smaps_rollup, shared pages split between processes) of every process in
the run's session (monitor: CLI process + fork server + parse workers), sampled every
100 ms. Every run is checked against the server's own counters (200s, 304s, gzip) and the
tool's counts, and a mismatch is printed.

The script stops by itself: each run has a time limit (--timeout), the server exits when
this script ends (its stdin closes) and after --timeout x runs at most; temporary
databases and files are removed.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit
from xml.etree import ElementTree
from xml.sax.saxutils import quoteattr

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- the feed server -------------------------------------------------------------------------


class _ServerProcess:
    """A feed server in a child process (`self.proc`, its own process group): stopped on close."""

    proc: subprocess.Popen

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                if self.proc.stdin:
                    self.proc.stdin.close()  # the server's watchdog sees EOF and stops
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=10)
            except (subprocess.TimeoutExpired, OSError):
                self.proc.kill()
                self.proc.wait()
        _kill_group(self.proc.pid)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FeedServer(_ServerProcess):
    """bench/poll_server.py in a child process; stops when closed or when this process ends.

    `urls` lists every feed, `entries` how many entries they hold in all (what a first poll
    must store)."""

    def __init__(
        self,
        feeds: int,
        items: int,
        hosts: int,
        max_seconds: float,
        corpus: str | None = None,
        summary_only: bool = False,
    ) -> None:
        source = (
            ["--corpus", corpus] + (["--summary-only"] if summary_only else [])
            if corpus
            else ["--feeds", str(feeds), "--items", str(items)]
        )
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.poll_server",
                *source,
                "--hosts",
                str(hosts),
                "--max-seconds",
                str(max_seconds),
                "--watch-stdin",
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("READY "):
            self.close()
            raise SystemExit(f"feed server did not start (got {line!r})")
        self.info = json.loads(line[len("READY ") :])
        self.ports: list[int] = self.info["ports"]
        self.urls = [self.url(i) for i in range(self.info["feeds"])]
        self.entries: int = self.info["entries"]

    def url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.ports[index % len(self.ports)]}/feeds/{index}.xml"

    def stats(self, reset: bool = False) -> dict:
        conn = http.client.HTTPConnection("127.0.0.1", self.ports[0], timeout=30)
        try:
            conn.request("GET", "/_stats?reset=1" if reset else "/_stats")
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()



# Runs SCRIPT ARGS... as `python SCRIPT ARGS...` would, and ends the process when its standard
# input closes: a server script that has no such option still never outlives the benchmark,
# even when the benchmark is killed and has no chance to stop it.
_RUN_UNTIL_STDIN_CLOSES = """
import os, runpy, sys, threading
def watch():
    try:
        while sys.stdin.buffer.read(1):
            pass
    finally:
        os._exit(0)
threading.Thread(target=watch, daemon=True).start()
sys.argv = sys.argv[1:]
sys.path[0] = os.path.dirname(os.path.abspath(sys.argv[0]))
runpy.run_path(sys.argv[0], run_name="__main__")
"""


class ScriptFeedServer(_ServerProcess):
    """The evaluation harness's feed server script serving a corpus, with FeedServer's interface.

    The script takes `CORPUS --dir D --ready-file F [--summary-only]`, writes the feed list to
    D/feeds.opml and appends "METHOD PATH STATUS IF-NONE-MATCH IF-MODIFIED-SINCE" to
    D/requests.log for every request: the request counts come from that log (it says
    nothing of gzip or connections). Sizes and formats are taken from one fetch of every feed
    before the runs, as served.
    """

    def __init__(self, script: str, corpus: str, summary_only: bool, workdir: Path, timeout: float) -> None:
        self.dir = workdir / "feedserver"
        self.dir.mkdir(parents=True)
        ready = self.dir / "ready"
        self.log_path = self.dir / "requests.log"
        self._offset = 0  # lines of the request log that stats() no longer counts
        started = time.monotonic()
        with open(self.dir / "stderr", "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _RUN_UNTIL_STDIN_CLOSES, script, corpus, "--dir", str(self.dir),
                 "--ready-file", str(ready), *(["--summary-only"] if summary_only else [])],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                message = (self.dir / "stderr").read_text(encoding="utf-8", errors="replace")
                raise SystemExit(f"{script} did not start: {message.strip()[-1000:]}")
            time.sleep(0.05)
        self.urls: list[str] = [  # in the order of the OPML the script wrote
            o.attrib["xmlUrl"]
            for o in ElementTree.parse(self.dir / "feeds.opml").iter("outline")
            if "xmlUrl" in o.attrib
        ]
        self.ports = sorted({urlsplit(u).port or 80 for u in self.urls})
        with open(corpus, encoding="utf-8") as fh:
            self.entries = sum(1 for line in fh if line.strip())  # the script serves every article
        self.info = {"feeds": len(self.urls), "entries": self.entries, "corpus": corpus,
                     "summary_only": summary_only, **self._survey()}
        self.info["build_seconds"] = round(time.monotonic() - started, 2)
        self.stats(reset=True)

    def _survey(self) -> dict:
        """Sizes, formats and full-text feeds of what is served: one gzip GET of every feed."""
        formats = {"rss": 0, "atom": 0, "rdf": 0}
        plain = gz = full = full_bytes = 0
        conns: dict[tuple[str, int], http.client.HTTPConnection] = {}
        for url in self.urls:
            parts = urlsplit(url)
            key = (parts.hostname or "127.0.0.1", parts.port or 80)
            conn = conns.get(key) or conns.setdefault(key, http.client.HTTPConnection(*key, timeout=60))
            conn.request("GET", parts.path, headers={"Accept-Encoding": "gzip"})
            resp = conn.getresponse()
            raw = resp.read()
            body = gzip.decompress(raw) if resp.getheader("Content-Encoding") == "gzip" else raw
            gz, plain = gz + len(raw), plain + len(body)
            ctype = resp.getheader("Content-Type", "")
            formats["atom" if "atom" in ctype else "rdf" if "rdf" in ctype else "rss"] += 1
            if b"<content:encoded>" in body or b"<content " in body:
                full, full_bytes = full + 1, full_bytes + len(body)
        for c in conns.values():
            c.close()
        return {"bytes": plain, "gzip_bytes": gz, "formats": formats, "full_text_feeds": full,
                "atom_feeds": formats["atom"], "mean_full_text_feed_bytes": round(full_bytes / max(1, full))}

    def _log_lines(self) -> list[list[str]]:
        """The request log once it stops growing: the script logs a request after its response."""
        lines, deadline = None, time.monotonic() + 2
        while True:
            with open(self.log_path, encoding="utf-8", errors="replace") as fh:
                now = [line.split() for line in fh if line.strip()]
            if now == lines or time.monotonic() > deadline:
                return now
            lines = now
            time.sleep(0.05)

    def stats(self, reset: bool = False) -> dict:
        lines = self._log_lines()
        counted = lines[self._offset :]
        if reset:
            self._offset = len(lines)
        status: dict[str, int] = {}
        for f in counted:
            status[f[2]] = status.get(f[2], 0) + 1
        return {
            "requests": len(counted),
            "status": status,
            "conditional": sum(1 for f in counted if f[3:5] != ["-", "-"]),
        }



def _kill_group(pgid: int) -> None:
    """Kill what is left of a process group this script started (its session leader's pid)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


AnyServer = FeedServer | ScriptFeedServer


# --- measuring one child process ----------------------------------------------------------------


@dataclass
class Run:
    wall: float
    returncode: int
    stdout: str
    stderr: str
    maxrss_mib: float  # ru_maxrss of the child process itself
    tree_pss_mib: float  # peak summed PSS of the child's session, sampled
    tree_processes: int  # most processes seen at once in the session
    cpu_seconds: float  # user+system CPU of every process of the session (see run_measured)
    other_cpu_seconds: float  # CPU that processes outside this benchmark used meanwhile (machine noise)


def _session_members(sid: int) -> list[int]:
    members = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # state ppid pgrp session ...
            members.append(int(name))
    return members


TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_ticks(pid: int) -> int:
    """utime + stime of one process (itself only), in clock ticks; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


def _machine_busy_ticks() -> int:
    """Busy CPU time of the whole machine (all cores), in clock ticks."""
    try:
        with open("/proc/stat", "rb") as fh:
            f = [int(x) for x in fh.readline().split()[1:]]
        return (
            f[0] + f[1] + f[2] + f[5] + f[6] + (f[7] if len(f) > 7 else 0)
        )  # user nice system irq softirq steal
    except (OSError, ValueError, IndexError):
        return 0


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
            for line in fh:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    try:  # no smaps_rollup: fall back to RSS
        with open(f"/proc/{pid}/statm", "rb") as fh:
            return int(fh.read().split()[1]) * PAGE // 1024
    except OSError:
        return 0


def run_measured(
    cmd: list[str], *, cwd: str, timeout: float, env: dict[str, str] | None = None, ours: tuple[int, ...] = ()
) -> Run:
    """Run cmd in its own session; wall time from start to reaping, memory as described above.

    CPU: user+system time of every process of the session, from /proc samples (the last
    value seen per process) and, for the process itself, its exact rusage at exit. Other
    CPU: the machine's busy time during the run minus the session's, minus that of `ours`
    (the feed server) and of this script: what unrelated processes took from the cores.
    """
    out_path, err_path = os.path.join(cwd, "run.stdout"), os.path.join(cwd, "run.stderr")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        done = threading.Event()
        reaped: dict = {}
        busy0, ours0 = _machine_busy_ticks(), sum(_cpu_ticks(p) for p in ours)
        self0 = sum(os.times()[:2])
        started = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, start_new_session=True
        )

        def reap() -> None:
            _, status, usage = os.wait4(proc.pid, 0)
            reaped.update(end=time.perf_counter(), status=status, usage=usage)
            done.set()

        waiter = threading.Thread(target=reap, daemon=True)
        waiter.start()
        peak_kib, most = 0, 0
        ticks: dict[int, int] = {}
        deadline = started + timeout
        have_proc = os.path.isdir("/proc")
        try:
            while not done.wait(0.1):
                if have_proc:
                    members = _session_members(proc.pid)
                    most = max(most, len(members))
                    peak_kib = max(peak_kib, sum(_pss_kib(p) for p in members))
                    for p in members:
                        ticks[p] = max(ticks.get(p, 0), _cpu_ticks(p))
                if time.perf_counter() > deadline:
                    _kill_group(proc.pid)
                    done.wait(10)
                    break
        except BaseException:  # Ctrl-C or SIGTERM: the measured processes go too
            _kill_group(proc.pid)
            done.wait(10)
            raise
        waiter.join(timeout=10)
        busy1, ours1 = _machine_busy_ticks(), sum(_cpu_ticks(p) for p in ours)
        self1 = sum(os.times()[:2])
        _kill_group(proc.pid)  # leftovers (a fork server that outlived its parent)
        proc.returncode = os.waitstatus_to_exitcode(reaped["status"]) if reaped else -9
    timed_out = not reaped or reaped["end"] > deadline
    with open(out_path, encoding="utf-8", errors="replace") as fh:
        stdout = fh.read()
    with open(err_path, encoding="utf-8", errors="replace") as fh:
        stderr = fh.read()
    if timed_out:
        stderr += f"\n(killed after the {timeout:g} s time limit)"
    ticks.pop(proc.pid, None)
    usage = reaped.get("usage")
    main_cpu = (usage.ru_utime + usage.ru_stime) if usage else 0.0
    cpu = main_cpu + sum(ticks.values()) / TICK
    other = (busy1 - busy0 - (ours1 - ours0)) / TICK - cpu - (self1 - self0)
    return Run(
        wall=(reaped["end"] if reaped else time.perf_counter()) - started,
        returncode=proc.returncode if not timed_out else -9,
        stdout=stdout,
        stderr=stderr,
        maxrss_mib=(reaped["usage"].ru_maxrss / 1024) if reaped else 0.0,
        tree_pss_mib=peak_kib / 1024,
        tree_processes=most,
        cpu_seconds=cpu,
        other_cpu_seconds=max(0.0, other),
    )


# --- one measurement of each tool ---------------------------------------------------------------


@dataclass
class Measurement:
    tool: str  # monitor | reader
    phase: str  # first | second
    repetition: int
    seconds: float  # the headline time (see the module docstring)
    process_seconds: float  # wall time of the whole child process
    inner_seconds: float | None  # monitor: the cycle's own time; reader: same as seconds
    feeds: int
    new_entries: int
    ok: int
    not_modified: int
    failed: int
    rss_mib: float
    tree_pss_mib: float
    tree_processes: int
    cpu_seconds: float
    other_cpu_seconds: float
    server: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    raw: dict = field(default_factory=dict)


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MONITOR_DB", "MONITOR_CONFIG")}
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _bench_env() -> dict[str, str]:
    """For `python -m bench.X` in a working directory elsewhere: the project root on PYTHONPATH."""
    env = _clean_env()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def monitor_command(src: str | None = None) -> list[str]:
    """The installed `monitor` script; with a source tree, `python -m monitor` from that tree."""
    exe = shutil.which("monitor", path=os.path.dirname(sys.executable))
    return [exe] if exe and not src else [sys.executable, "-m", "monitor"]


def monitor_env(args: argparse.Namespace) -> dict[str, str]:
    env = _clean_env()
    if args.monitor_src:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [args.monitor_src, env.get("PYTHONPATH")]))
    return env


def prepare_monitor(workdir: Path, server: AnyServer, args: argparse.Namespace) -> tuple[list[str], Path]:
    """Config allowing the loopback ports, an OPML of the feeds, a fresh database with them imported."""
    config = workdir / "monitor.toml"
    hosts = ", ".join(f'"127.0.0.1:{p}"' for p in server.ports)
    config.write_text(f"[polling]\nallow_hosts = [{hosts}]\n", encoding="utf-8")
    opml = workdir / "feeds.opml"
    outlines = "\n".join(
        f'    <outline type="rss" text="Outlet {i}" xmlUrl={quoteattr(url)}/>'
        for i, url in enumerate(server.urls)
    )
    opml.write_text(
        f'<?xml version="1.0" encoding="utf-8"?>\n<opml version="2.0"><head><title>bench</title></head>'
        f"<body>\n{outlines}\n</body></opml>\n",
        encoding="utf-8",
    )
    base = monitor_command(args.monitor_src) + ["--db", str(workdir / "monitor.db"), "--config", str(config)]
    # Bytecode, as an install writes it: with PYTHONDONTWRITEBYTECODE set and a source tree
    # (an editable install, --monitor-src), every run would compile monitor's modules again.
    subprocess.run(
        [sys.executable, "-c", "import compileall, os, monitor; "
         "compileall.compile_dir(os.path.dirname(monitor.__file__), quiet=1)"],
        cwd=workdir, env=monitor_env(args), check=True, timeout=args.timeout,
    )
    done = subprocess.run(
        base + ["feeds", "import", str(opml)],
        cwd=workdir,
        env=monitor_env(args),
        capture_output=True,
        text=True,
        timeout=args.timeout,
    )
    if done.returncode != 0 or f"added {len(server.urls)}," not in done.stdout:
        raise SystemExit(f"monitor feeds import failed ({done.returncode}): {done.stdout}{done.stderr}")
    return base, config


def measure_monitor(
    rep: int, workdir: Path, server: AnyServer, args: argparse.Namespace
) -> list[Measurement]:
    base, _ = prepare_monitor(workdir, server, args)

    def counts(report: dict, run: Run) -> dict:
        return dict(seconds=run.wall, feeds=report.get("feeds", 0), new_entries=report.get("new", 0),
                    ok=report.get("fetched", 0), not_modified=report.get("not_modified", 0),
                    failed=report.get("failed", 0))

    return measure_phases("monitor", rep, workdir, server, args, env=monitor_env(args),
                          command=lambda phase: base + ["poll", "--all", "--json"],
                          report_of=lambda out: json.loads(out), counts=counts)


def measure_reader(
    rep: int, workdir: Path, server: AnyServer, args: argparse.Namespace
) -> list[Measurement]:
    urls = workdir / "urls.txt"
    urls.write_text("\n".join(server.urls) + "\n", encoding="utf-8")
    db = workdir / "reader.sqlite"

    def counts(report: dict, run: Run) -> dict:
        return dict(seconds=report.get("seconds", run.wall), feeds=len(server.urls),
                    new_entries=report.get("new_entries", 0), ok=report.get("ok", 0),
                    not_modified=report.get("not_modified", 0), failed=report.get("error", 0))

    return measure_phases(
        "reader", rep, workdir, server, args, env=_bench_env(),
        command=lambda phase: [sys.executable, "-m", "bench.poll_reader", "--db", str(db),
                               "--urls", str(urls), "--phase", phase, "--workers", str(args.workers)],
        report_of=lambda out: json.loads(out.strip().splitlines()[-1]), counts=counts)


def measure_phases(tool: str, rep: int, workdir: Path, server: AnyServer, args: argparse.Namespace, *,
                   env: dict, command, report_of, counts) -> list[Measurement]:
    """The first (all 200) and second (all 304) run of one tool, each checked against the server."""
    results = []
    for phase in ("first", "second"):
        server.stats(reset=True)
        run = run_measured(command(phase), cwd=str(workdir), timeout=args.timeout, env=env,
                           ours=(server.proc.pid,))
        stats = server.stats()
        try:
            report = report_of(run.stdout)
        except (ValueError, IndexError):
            report = {}
        m = Measurement(
            tool=tool,
            phase=phase,
            repetition=rep,
            process_seconds=run.wall,
            inner_seconds=report.get("seconds"),
            rss_mib=run.maxrss_mib,
            tree_pss_mib=run.tree_pss_mib,
            tree_processes=run.tree_processes,
            cpu_seconds=run.cpu_seconds,
            other_cpu_seconds=run.other_cpu_seconds,
            server=stats,
            raw=report,
            **counts(report, run),
        )
        if run.returncode != 0 or not report:
            m.problems.append(f"exit {run.returncode}: {(run.stderr or run.stdout).strip()[-500:]}")
        check(m, len(server.urls), server.entries)
        results.append(m)
    return results


def check(m: Measurement, n: int, entries: int) -> None:
    """Both tools must have done the same work, by their own counts and by the server's:
    n feeds fetched and all their entries stored, then n answered 304."""
    status = m.server.get("status", {})
    if m.phase == "first":
        want = {
            "ok": (m.ok, n),
            "new entries": (m.new_entries, entries),
            "server 200s": (status.get("200", 0), n),
        }
    else:
        want = {
            "not modified": (m.not_modified, n),
            "new entries": (m.new_entries, 0),
            "server 304s": (status.get("304", 0), n),
        }
    want["failed"] = (m.failed, 0)
    want["server requests"] = (m.server.get("requests", 0), n)
    for what, (got, expected) in want.items():
        if got != expected:
            m.problems.append(f"{what}: {got}, expected {expected}")


# --- the transport floor -------------------------------------------------------------------------


def transport_floor(server: AnyServer, feeds: int, connections: int = 4) -> dict[str, float]:
    """Bare http.client GETs of every feed over keep-alive connections: what the server alone costs."""

    def fetch(indices: list[int], conditional: dict[int, str]) -> dict[int, str]:
        conns: dict[int, http.client.HTTPConnection] = {}
        etags = {}
        for i in indices:
            url = urlsplit(server.urls[i])
            port = url.port or 80
            conn = conns.get(port) or conns.setdefault(
                port, http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            )
            headers = {"Accept-Encoding": "gzip"}
            if i in conditional:
                headers["If-None-Match"] = conditional[i]
            conn.request("GET", url.path, headers=headers)
            resp = conn.getresponse()
            resp.read()
            etags[i] = resp.getheader("ETag", "")
        for c in conns.values():
            c.close()
        return etags

    chunks = [list(range(k, feeds, connections)) for k in range(connections)]
    out: dict[str, float] = {}
    etags: dict[int, str] = {}
    with ThreadPoolExecutor(connections) as pool:
        for phase in ("200", "304"):
            known = dict(etags)  # empty for the 200s: nothing conditional until all are in
            started = time.perf_counter()
            for part in pool.map(lambda c, known=known: fetch(c, known), chunks):
                if phase == "200":
                    etags.update(part)
            out[phase] = time.perf_counter() - started
    server.stats(reset=True)
    return out


# --- report ------------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarize(measurements: list[Measurement]) -> dict:
    groups: dict[str, dict] = {}
    for tool in ("monitor", "reader"):
        for phase in ("first", "second"):
            ms = [m for m in measurements if m.tool == tool and m.phase == phase]
            if not ms:
                continue
            secs = [m.seconds for m in ms]
            med = median(secs)
            groups[f"{tool}_{phase}"] = {
                "runs": len(ms),
                "seconds": med,
                "min": min(secs),
                "max": max(secs),
                "process_seconds": median([m.process_seconds for m in ms]),
                "inner_seconds": median([m.inner_seconds for m in ms if m.inner_seconds is not None]),
                "feeds_per_s": ms[0].feeds / med if med else 0.0,
                "entries_per_s": median([m.new_entries for m in ms]) / med if med else 0.0,
                "new_entries": median([m.new_entries for m in ms]),
                "cpu_seconds": median([m.cpu_seconds for m in ms]),
                "other_cores": median(
                    [m.other_cpu_seconds / m.process_seconds for m in ms if m.process_seconds]
                ),
                "rss_mib": median([m.rss_mib for m in ms]),
                "tree_pss_mib": median([m.tree_pss_mib for m in ms]),
                "tree_processes": max(m.tree_processes for m in ms),
                "problems": sorted({p for m in ms for p in m.problems}),
            }
    ratios = {}
    g = groups
    if "reader_first" in g and "monitor_first" in g:
        ratios["reader_first / monitor_first"] = g["reader_first"]["seconds"] / g["monitor_first"]["seconds"]
    if "monitor_first" in g and "monitor_second" in g:
        ratios["monitor_first / monitor_second"] = (
            g["monitor_first"]["seconds"] / g["monitor_second"]["seconds"]
        )
    # The same ratios in CPU seconds: steadier on a shared machine, but blind to parallelism.
    cpu = {
        name: g[a]["cpu_seconds"] / g[b]["cpu_seconds"]
        for name, (a, b) in {
            "reader_first / monitor_first": ("reader_first", "monitor_first"),
            "monitor_first / monitor_second": ("monitor_first", "monitor_second"),
        }.items()
        if a in g and b in g and g[b]["cpu_seconds"]
    }
    return {"groups": groups, "ratios": ratios, "cpu_ratios": cpu}


TARGETS = {
    "reader_first / monitor_first": (2.0, ">= 2x (aim 3x)"),
    "monitor_first / monitor_second": (5.0, ">= 5x"),
}


def markdown(summary: dict, meta: dict) -> str:
    g = summary["groups"]
    labels = {
        "monitor_first": f"monitor {meta['monitor_version']}, first poll (200s)",
        "monitor_second": f"monitor {meta['monitor_version']}, second poll (304s)",
        "reader_first": f"reader {meta['reader_version']}, first update (200s)",
        "reader_second": f"reader {meta['reader_version']}, second update (304s)",
    }
    lines = [
        f"{_served(meta)}, loopback, "
        f"{meta['cpus']} cores, Python {meta['python']}; median of {meta['repeat']} runs (min-max).",
        "",
        "| run | wall s | CPU s | feeds/s | new entries/s | peak RSS MiB | peak tree PSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key, label in labels.items():
        if key not in g:
            continue
        r = g[key]
        eps = f"{r['entries_per_s']:,.0f}" if r["new_entries"] else "-"
        flag = " (!)" if r["problems"] else ""
        lines.append(
            f"| {label}{flag} | {r['seconds']:.2f} ({r['min']:.2f}-{r['max']:.2f}) | "
            f"{r['cpu_seconds']:.1f} | "
            f"{r['feeds_per_s']:,.0f} | {eps} | {r['rss_mib']:.0f} | {r['tree_pss_mib']:.0f} |"
        )
    lines += ["", "| ratio (of medians) | wall | target | CPU (for reference) |", "|---|---:|---|---:|"]
    for name, value in summary["ratios"].items():
        floor, text = TARGETS[name]
        cpu = summary.get("cpu_ratios", {}).get(name)
        lines.append(
            f"| {name} | {value:.2f}x | {text}: {'met' if value >= floor else 'missed'} | "
            + (f"{cpu:.2f}x |" if cpu is not None else "- |")
        )
    lines += [
        "",
        "monitor: wall time of the `monitor --db X --config C poll --all --json` process (start-up, imports, "
        "database open and parse-worker start included; its package compiled to bytecode first, as an "
        "install does); reader: `update_feeds(workers="
        f"{meta['workers']}, scheduled=False)` timed in-process (imports, database open and add_feed "
        "excluded). "
        "CPU: user+system seconds of the whole process tree (whole process, start-up included, for both "
        "tools). "
        "Peak RSS: ru_maxrss of the measured process alone; tree PSS: peak summed proportional set size of "
        "the "
        "process and its children (monitor's fork server and parse workers), sampled every 100 ms.",
    ]
    noise = [r["other_cores"] for r in g.values() if r.get("other_cores") is not None]
    if noise:
        lines.append(
            f"Other processes on the machine used {min(noise):.2f}-{max(noise):.2f} cores on average during "
            "the runs (median per row): wall times are only comparable when this is near 0."
        )
    if "monitor_first" in g:
        mf, ms = g["monitor_first"], g.get("monitor_second", {})
        lines.append(
            f"monitor cycle time inside the process (report `seconds`: fetch + parse + store; clustering "
            f"and topic matching follow it): first {mf['inner_seconds']:.2f} s"
            + (f", second {ms['inner_seconds']:.2f} s" if ms else "")
            + "."
        )
    if "reader_first" in g:
        rf = g["reader_first"]
        lines.append(
            f"reader process wall time, for comparison: first {rf['process_seconds']:.2f} s"
            + (f", second {g['reader_second']['process_seconds']:.2f} s" if "reader_second" in g else "")
            + "."
        )
    floor = meta.get("transport_floor")
    if floor:
        lines.append(
            f"Transport floor (bare http.client, 4 keep-alive connections, no parsing): "
            f"{floor['200']:.2f} s for the 200s (gzip), {floor['304']:.2f} s for the 304s."
        )
    problems = [(k, p) for k, r in g.items() for p in r["problems"]]
    if problems:
        lines += ["", "Problems (these runs did not do the expected work):"]
        lines += [f"- {k}: {p}" for k, p in problems]
    return "\n".join(lines)


def _served(meta: dict) -> str:
    """What the feeds were: the generated set, or a corpus with its formats and sizes."""
    sizes = f"{meta['corpus_mb']:.1f} MB, {meta['corpus_gzip_mb']:.1f} MB gzipped"
    if not meta.get("corpus"):
        full = meta["full_text_feeds"]
        return f"{meta['feeds']} feeds x {meta['items']} items ({full} with full text, {sizes})"
    f = meta["formats"]
    text = "summary only" if meta["summary_only"] else f"full text in {meta['full_text_feeds']} feeds"
    return (
        f"corpus {Path(meta['corpus']).name}: {meta['feeds']} feeds, one per outlet ({f['rss']} RSS 2.0, "
        f"{f['atom']} Atom 1.0, {f['rdf']} RSS 1.0/RDF), {meta['entries']:,} entries, {text} ({sizes}), "
        f"served by {meta['feedserver'] or 'bench/poll_server.py'}"
    )


def command_line(args: argparse.Namespace) -> str:
    source = (
        [f"--corpus {args.corpus}"]
        + (["--summary-only"] if args.summary_only else [])
        + ([f"--feedserver {args.feedserver}"] if args.feedserver else [])
        if args.corpus
        else [f"--feeds {args.feeds}", f"--items {args.items}"]
    )
    parts = [
        "python -m bench.poll",
        *source,
        f"--repeat {args.repeat}",
        f"--workers {args.workers}",
    ]
    if args.hosts != 1:
        parts.append(f"--hosts {args.hosts}")
    if args.no_reader:
        parts.append("--no-reader")
    if args.monitor_src:
        parts.append(f"--monitor-src {args.monitor_src}")
    return " ".join(parts)


def _version(cmd: list[str], env: dict[str, str] | None = None) -> str:
    try:
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=60, env=env or _clean_env()
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def _git_describe() -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()
        return head + ("+local changes" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def _server(args: argparse.Namespace, tmp: Path, runs: int) -> AnyServer:
    """The feed server the options ask for; it lives at most as long as every run may take."""
    if args.feedserver:
        return ScriptFeedServer(args.feedserver, args.corpus, args.summary_only, tmp, args.timeout)
    return FeedServer(args.feeds, args.items, args.hosts, args.timeout * runs + 600, args.corpus,
                      args.summary_only)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--feeds", type=int, help="generated feeds (default 1000)")
    ap.add_argument("--items", type=int, help="items per generated feed (default 20)")
    ap.add_argument(
        "--corpus",
        metavar="FILE",
        help="serve this corpus (JSON lines: id, outlet, outlet_url, title, summary, content, link, "
        "published) instead of generated feeds, one feed per outlet",
    )
    ap.add_argument(
        "--summary-only", action="store_true", help="with --corpus: no full text, titles and descriptions"
    )
    ap.add_argument(
        "--feedserver",
        metavar="SCRIPT",
        help="with --corpus: serve it with this feed server script (the evaluation harness's "
        "feedserver.py) instead of bench/poll_server.py",
    )
    ap.add_argument("--repeat", type=int, default=3, help="repetitions (medians are reported)")
    ap.add_argument("--workers", type=int, default=8, help="reader's update_feeds(workers=...)")
    ap.add_argument(
        "--hosts",
        type=int,
        default=1,
        help="listening ports on 127.0.0.1; each is one host:port for per-host limits",
    )
    ap.add_argument(
        "--timeout", type=float, default=900.0, help="seconds one poll may take before it is killed"
    )
    ap.add_argument("--no-reader", action="store_true", help="measure monitor only")
    ap.add_argument(
        "--monitor-src",
        metavar="DIR",
        help="run monitor from this source tree (python -m monitor with PYTHONPATH=DIR), e.g. a patched copy",
    )
    ap.add_argument("--no-floor", action="store_true", help="skip the bare http.client transport floor")
    ap.add_argument(
        "--json", action="store_true", help="print JSON (every run, medians, ratios) instead of Markdown"
    )
    ap.add_argument(
        "--render", metavar="FILE", help="print the Markdown of a saved --json result, run nothing"
    )
    args = ap.parse_args()
    if args.render:
        saved = json.loads(Path(args.render).read_text(encoding="utf-8"))
        runs = [Measurement(**r) for r in saved["runs"]]
        meta = saved["meta"]
        print(
            f"Command: `{meta['command']}` "
            f"(monitor {meta['monitor_commit']}, reader {meta['reader_version']})"
        )
        print()
        print(markdown(summarize(runs), meta))
        return
    if args.corpus:
        if args.feeds is not None or args.items is not None:
            ap.error("--feeds and --items are for generated feeds: a corpus has its own")
        if args.feedserver and args.hosts != 1:
            ap.error("--hosts is for bench/poll_server.py: a --feedserver script listens on one port")
        if not os.path.isfile(args.corpus):
            ap.error(f"--corpus {args.corpus}: no such file")
    elif args.summary_only or args.feedserver:
        ap.error("--summary-only and --feedserver need --corpus")
    args.feeds = 1000 if args.feeds is None else args.feeds
    args.items = 20 if args.items is None else args.items
    if min(args.feeds, args.items, args.repeat, args.workers, args.hosts) < 1:
        ap.error("--feeds, --items, --repeat, --workers and --hosts must be at least 1")
    if not args.no_reader:
        probe = subprocess.run(
            [sys.executable, "-c", "import reader, sgmllib"], capture_output=True, text=True
        )
        if probe.returncode != 0:
            ap.error(
                "reader is not installed here: pip install 'reader>=3,<4' sgmllib3k (or use --no-reader)"
            )

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks: server and temp dirs go
    meta: dict = {
        "command": command_line(args),
        "feeds": args.feeds,
        "items": args.items,
        "corpus": args.corpus,
        "summary_only": args.summary_only,
        "feedserver": args.feedserver,
        "repeat": args.repeat,
        "workers": args.workers,
        "hosts": args.hosts,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "monitor_version": _version(
            monitor_command(args.monitor_src) + ["--version"], monitor_env(args)
        ).split()[-1:]
        or ["?"],
        "monitor_commit": _git_describe() if not args.monitor_src else f"source tree {args.monitor_src}",
        "reader_version": None
        if args.no_reader
        else _version([sys.executable, "-c", "import reader; print(reader.__version__)"]),
    }
    meta["monitor_version"] = meta["monitor_version"][0]
    measurements: list[Measurement] = []
    started = time.monotonic()
    log(
        f"serving {args.corpus}{' (summary only)' if args.summary_only else ''} ..."
        if args.corpus
        else f"generating {args.feeds} feeds x {args.items} items ..."
    )
    runs = args.repeat * (2 if args.no_reader else 4) + 2
    with tempfile.TemporaryDirectory(prefix="bench-poll-") as tmp, _server(args, Path(tmp), runs) as server:
        info = server.info
        meta.update(
            feeds=len(server.urls),
            entries=server.entries,
            formats=info.get("formats"),
            corpus_mb=info["bytes"] / 1e6,
            corpus_gzip_mb=info["gzip_bytes"] / 1e6,
            full_text_feeds=info["full_text_feeds"],
            atom_feeds=info["atom_feeds"],
            mean_full_text_feed_kb=info["mean_full_text_feed_bytes"] / 1000,
            ports=server.ports,
        )
        log(
            f"serving {len(server.urls)} feeds, {server.entries} entries on "
            f"127.0.0.1:{','.join(map(str, server.ports))} ({info['bytes'] / 1e6:.1f} MB, "
            f"built in {info['build_seconds']} s)"
        )
        if not args.no_floor:
            meta["transport_floor"] = transport_floor(server, len(server.urls))
            log(
                f"transport floor: {meta['transport_floor']['200']:.2f} s (200s), "
                f"{meta['transport_floor']['304']:.2f} s (304s)"
            )
        for rep in range(args.repeat):
            tools = (
                ["monitor"]
                if args.no_reader
                else (["monitor", "reader"] if rep % 2 == 0 else ["reader", "monitor"])
            )
            for tool in tools:
                workdir = Path(tmp) / f"{tool}-{rep}"
                workdir.mkdir()
                measure = measure_monitor if tool == "monitor" else measure_reader
                for m in measure(rep, workdir, server, args):
                    measurements.append(m)
                    rate = f", {m.new_entries / m.seconds:,.0f} entries/s" if m.new_entries else ""
                    log(
                        f"[{rep + 1}/{args.repeat}] {tool:7} {m.phase:6} {m.seconds:7.2f} s{rate}, "
                        f"RSS {m.rss_mib:.0f} MiB, tree PSS {m.tree_pss_mib:.0f} MiB, "
                        f"{m.server.get('connections', '?')} connections"
                        + (f"  PROBLEM: {'; '.join(m.problems)}" if m.problems else "")
                    )
                shutil.rmtree(workdir, ignore_errors=True)
    meta["total_seconds"] = time.monotonic() - started
    summary = summarize(measurements)
    if args.json:
        print(json.dumps({"meta": meta, **summary, "runs": [asdict(m) for m in measurements]}, indent=2))
    else:
        print(
            f"Command: `{meta['command']}` "
            f"(monitor {meta['monitor_commit']}, reader {meta['reader_version']})"
        )
        print()
        print(markdown(summary, meta))
    if any(m.problems for m in measurements):
        sys.exit(1)


if __name__ == "__main__":
    main()
