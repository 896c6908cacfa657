"""Every bench/ script runs, on the smallest sizes its options allow, so that none can rot.

Each runs as `python -m bench.NAME` from the project root in its own process, as it is
meant to be run; the test checks the exit status and the labels of the figures it prints,
not the figures. `reader` (lemon24's, which bench.poll compares monitor with) is no
dependency of monitor: bench.poll runs here with `--no-reader`, and a second test checks
that without `--no-reader` it either runs bench.poll_reader (when `reader` is installed)
or says how to install it or leave it out.
"""
from __future__ import annotations

import calendar
import gzip
import http.client
import importlib.util
import json
import subprocess
import sys
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import feedparser

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


def test_cluster_corpus(tmp_path: Path) -> None:
    """bench.cluster --corpus clusters a corpus in the evaluation schema, each copy one entry an
    article; --decisions and --against compare two runs' clusters entry by entry."""
    corpus = tmp_path / "tiny.jsonl"
    corpus.write_text("".join(json.dumps({**a, "event": a["id"][0]}) + "\n" for a in TINY_CORPUS), encoding="utf-8")
    for extra in ((), ("--summary-only",)):
        out = bench("cluster", "--corpus", str(corpus), "--copies", "2", *extra).stdout
        assert_labels(out, f"corpus: {corpus}{' (summary only)' if extra else ''}, 5 articles x 2, 3 outlets",
                      "       10 entries:", "entries/s", "weighing worker", "per entry p50", "peak RSS",
                      "pair P/R/F1 against its events")
    decisions = tmp_path / "decisions.jsonl"
    bench("cluster", "--corpus", str(corpus), "--copies", "2", "--decisions", str(decisions))
    rows = [json.loads(line) for line in decisions.read_text().splitlines()]
    assert [r["entry"] for r in rows] == list(range(1, 11))
    out = bench("cluster", "--corpus", str(corpus), "--copies", "2", "--against", str(decisions)).stdout
    assert_labels(out, f"decisions against {decisions}: identical, entry by entry")
    rows[3]["cluster"] += 1000  # another run that put the fourth entry elsewhere
    decisions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = bench("cluster", "--corpus", str(corpus), "--copies", "2", "--against", str(decisions)).stdout
    assert_labels(out, "1 of 10 entries in another cluster (first: entry 4), 0 entries of that run missing here")


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


# A corpus in the evaluation schema, made up here: three outlets (one without a home page), one
# article without full text, HTML and an ampersand in the text, times in three offsets.
TINY_CORPUS = [
    {"id": "c1", "outlet": "Cedar Gazette", "outlet_url": "https://cedar.example", "title": "Bridge reopens",
     "summary": "The <b>river</b> bridge reopened.",
     "content": "The river bridge reopened.\n\nTraffic & trams.",
     "link": "https://cedar.example/1", "published": "2016-10-20T09:00:00+02:00"},
    {"id": "a1", "outlet": "Alder Times", "outlet_url": "https://alder.example", "title": "Mill fire out",
     "summary": "Crews put out the mill fire.", "content": "Crews put out the mill fire overnight.",
     "link": "https://alder.example/1", "published": "2016-10-19T22:30:00Z"},
    {"id": "b1", "outlet": "Birch Wire", "outlet_url": "", "title": "Port strike ends",
     "summary": "Dock workers return.", "content": "Dock workers returned on Friday.",
     "link": "https://birch.example/1", "published": "2016-10-21T06:00:00-04:00"},
    {"id": "a2", "outlet": "Alder Times", "outlet_url": "https://alder.example", "title": "Mill reopens",
     "summary": "The mill reopened.", "link": "https://alder.example/2", "published": "2016-10-22T08:00:00Z"},
    {"id": "c2", "outlet": "Cedar Gazette", "outlet_url": "https://cedar.example", "title": "Tram line vote",
     "summary": "Council votes on trams.", "content": "The council voted on the tram line.",
     "link": "https://cedar.example/2", "published": "2016-10-18T12:00:00+02:00"},
]


def _epoch(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())


def _serve_corpus(path: Path, *extra: str) -> dict[str, tuple[dict[str, str], bytes]]:
    """Run bench.poll_server on the corpus; every feed fetched plainly, with gzip and conditionally.

    Returns path -> (headers of the plain 200, body); asserts the gzip and 304 answers on the way."""
    server = subprocess.Popen([sys.executable, "-m", "bench.poll_server", "--corpus", str(path), *extra,
                               "--max-seconds", "60", "--watch-stdin"], cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline() if server.stdout else ""
        assert line.startswith("READY "), line
        info = json.loads(line[len("READY "):])
        conn = http.client.HTTPConnection("127.0.0.1", info["ports"][0], timeout=30)
        feeds = {}
        for i in range(info["feeds"]):
            conn.request("GET", f"/feeds/{i}.xml")
            resp = conn.getresponse()
            body, headers = resp.read(), dict(resp.getheaders())
            assert resp.status == 200 and "Content-Encoding" not in headers
            conn.request("GET", f"/feeds/{i}.xml", headers={"Accept-Encoding": "gzip"})
            resp = conn.getresponse()
            assert resp.getheader("Content-Encoding") == "gzip" and gzip.decompress(resp.read()) == body
            for validator in ({"If-None-Match": headers["ETag"]},
                              {"If-Modified-Since": headers["Last-Modified"]}):
                conn.request("GET", f"/feeds/{i}.xml", headers=validator)
                resp = conn.getresponse()
                assert (resp.status, resp.read()) == (304, b""), validator
            feeds[f"/feeds/{i}.xml"] = (headers, body)
        conn.close()
        return feeds
    finally:
        if server.stdin:
            server.stdin.close()  # the server stops when its standard input closes
        server.wait(timeout=30)


def test_poll_server_serves_a_corpus_in_the_three_formats(tmp_path: Path) -> None:
    """`--corpus` serves one feed per outlet, outlets in name order taking RSS 2.0, Atom 1.0 and
    RSS 1.0 (RDF) in turn (as the evaluation harness does), each with its outlet's articles newest
    first, full text included; `--summary-only` leaves the full text out; ETag and Last-Modified
    (the newest article's time) give 304s, and gzip comes when asked."""
    corpus = tmp_path / "tiny.jsonl"
    corpus.write_text("".join(json.dumps(a) + "\n" for a in TINY_CORPUS), encoding="utf-8")
    expected = {  # path: (feedparser's version, outlet, ids newest first)
        "/feeds/0.xml": ("rss20", "Alder Times", ["a2", "a1"]),
        "/feeds/1.xml": ("atom10", "Birch Wire", ["b1"]),
        "/feeds/2.xml": ("rss10", "Cedar Gazette", ["c1", "c2"]),
    }
    articles = {a["id"]: a for a in TINY_CORPUS}
    for extra in ((), ("--summary-only",)):
        feeds = _serve_corpus(corpus, *extra)
        assert sorted(feeds) == sorted(expected)
        for path, (version, outlet, ids) in expected.items():
            headers, body = feeds[path]
            parsed = feedparser.parse(body)
            assert not parsed.bozo, (path, parsed.get("bozo_exception"))
            assert (parsed.version, parsed.feed.title) == (version, outlet), path
            assert [e.id for e in parsed.entries] == ids, path
            newest = max(_epoch(articles[i]["published"]) for i in ids)
            assert parsedate_to_datetime(headers["Last-Modified"]).timestamp() == newest, path
            for entry in parsed.entries:
                art = articles[entry.id]
                assert (entry.title, entry.link, entry.summary) == (art["title"], art["link"], art["summary"])
                when = entry.get("published_parsed") or entry.get("updated_parsed")
                assert calendar.timegm(when) == _epoch(art["published"]), entry.id
                content = [c.value for c in entry.get("content", [])]
                assert content == ([art["content"]] if "content" in art and not extra else []), entry.id


def test_poll_corpus_monitor_only(tmp_path: Path) -> None:
    """bench.poll --corpus polls the corpus' feeds with monitor; a poll that did not store every
    article, or a second poll that was not all 304s, makes it exit non-zero."""
    corpus = tmp_path / "tiny.jsonl"
    corpus.write_text("".join(json.dumps(a) + "\n" for a in TINY_CORPUS), encoding="utf-8")
    out = bench("poll", "--corpus", str(corpus), "--repeat", "1", "--no-reader", "--no-floor").stdout
    assert_labels(out, "corpus tiny.jsonl: 3 feeds, one per outlet (1 RSS 2.0, 1 Atom 1.0, 1 RSS 1.0/RDF), "
                  "5 entries, full text in 3 feeds", "first poll (200s)", "second poll (304s)",
                  "monitor_first / monitor_second")


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
