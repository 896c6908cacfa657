#!/usr/bin/env python3
"""Speed benchmark of event clustering on a synthetic, realistic news stream.

    python -m bench.cluster [--sizes 10000,100000,1000000] [--per-day 1500] [--baseline 3000]
    python -m bench.cluster --corpus FILE [--summary-only] [--copies K]

Each size runs in its own process (clean peak-memory figures). A stream of `size` entries
is generated on the fly: events of 1-20 reports (most are single reports, as in real
feeds) from 300 feeds, with paraphrased titles and leads, names (some in transliteration
variants), numbers, a background paragraph about another recent event, and per-feed
boilerplate. Entries arrive `--per-day` a day, so the 7-day window holds ~7x that many
whatever the size: cost per entry should not grow with the number of stored entries.

The stage runs as monitor runs it: in runs of `--chunk` entries (a poll cycle's new entries;
default 20,000, a first poll), each weighed one batch ahead by a worker process that is
handed the stream's statistics and hands them back (all of which is timed), while this
process decides. Generating the stream is not timed.

With `--corpus FILE`, the stream is a corpus in the evaluation schema (JSON lines with `id`,
`outlet`, `title`, `summary`, optional `content`, `published`, and optionally `event`): real
reporting, whose full-text entries are far longer than the generated ones. Each article
becomes the entry monitor would store (title and text made plain by monitor's own
normalisation, the content's text or else the summary's; `--summary-only` takes the summary
only, as most feeds give), one feed per outlet, in published order. `--copies K` plays it K
times, each copy shifted past the follow-up window and given new entry ids, for a longer run
(the scores then count each copy's events apart). The corpus is one clustering run
(`--chunk` still splits it), as a first poll of those feeds would be.

`--decisions FILE` writes each entry's cluster (merges applied) and `--against FILE`
compares a run with such a file entry by entry: a speed change must not change a
decision (run it before the change with `--decisions`, after it with `--against`).

Prints entries/s, per-entry latency p50/p95/p99, peak RSS, the window's size, and pairwise
P/R/F1 against the generator's events (a sanity check, not a quality measure). The naive
baseline (score the entry against every entry in the window, same decision rule) runs on
the first `--baseline` entries only: it is O(window) per entry and far too slow beyond.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import random
import resource
import subprocess
import sys
import time
from array import array
from collections import deque
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bench.scoring import score
from monitor.events import similarity as sim
from monitor.events.clusterer import Assignment, ClusterConfig, Clusterer, collection_paused
from monitor.events.weighpool import weigh_ahead, workers_available
from monitor.feeds.normalize import clean_text, html_to_text, title_text
from monitor.types import ClusterDoc

FUNCTION_WORDS = ("the of and to in a for on that with as by at from was is has said it its "
                  "after over but were have be this who which will their an also been not").split()
WEEKDAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
SYLLABLES = ("ka ri mo ta le ne sa vo di pa lu ze ga ro mi te na bo ki su fa jo "
             "ha re li da ve ko zu ma no pe ti ra").split()


def _word(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(n))


class Stream:
    """Deterministic generator of (ClusterDoc, event id) in published order."""

    def __init__(self, size: int, per_day: int, seed: int = 1, feeds: int = 300) -> None:
        self.rng = rng = random.Random(seed)
        self.size = size
        self.per_day = per_day
        # a Zipfian general vocabulary and a pool of topical words events draw their key terms from
        self.general = [_word(rng, rng.randint(2, 4)) for _ in range(20000)]
        self.general_cum = list(itertools.accumulate(1.0 / (i + 1) ** 1.05 for i in range(len(self.general))))
        self.topical = [_word(rng, rng.randint(3, 5)) for _ in range(40000)]
        self.feeds = list(range(1, feeds + 1))
        self.footers = {}
        for f in self.feeds:
            lines = [f"{_word(rng, 2).title()} {_word(rng, 3)} {_word(rng, 2)} {_word(rng, 3)}.",
                     f"Read more at {_word(rng, 3).title()} {_word(rng, 2).title()}."]
            self.footers[f] = lines[: rng.randint(1, 2)]
        self.outlets = {f: f"{_word(rng, 3).title()} {_word(rng, 2).title()}" for f in self.feeds}
        self.start = datetime(2024, 1, 1, tzinfo=timezone.utc)

    def _general(self, k: int) -> list[str]:
        return self.rng.choices(self.general, cum_weights=self.general_cum, k=k)

    def _event(self, eid: int, t0: float) -> dict:
        rng = self.rng
        return {
            "id": eid, "t0": t0,
            "keys": rng.sample(self.topical, rng.randint(10, 18)),
            "names": [f"{_word(rng, 2).title()} {_word(rng, 3).title()}" for _ in range(rng.randint(1, 3))],
            "place": _word(rng, 3).title(),
            "numbers": [str(rng.choice([rng.randint(2, 99), rng.randint(100, 5000)])) for _ in range(2)],
            "day": WEEKDAYS[int(t0 // 86400) % 7],
        }

    def _sentence(self, ev: dict, n_keys: int, n_general: int, with_name: bool) -> str:
        rng = self.rng
        words = rng.sample(ev["keys"], min(n_keys, len(ev["keys"]))) + self._general(n_general)
        words += rng.sample(FUNCTION_WORDS, 4)
        if with_name:
            name = rng.choice(ev["names"])
            if rng.random() < 0.2:  # a transliteration variant
                name = name.replace("a", "ah", 1) if "a" in name else name + "i"
            words.append(name)
        if rng.random() < 0.5:
            words.append(rng.choice(ev["numbers"]))
        rng.shuffle(words)
        return " ".join(words).capitalize() + "."

    def _report(self, ev: dict, ts: float, recent: deque) -> tuple[str, str]:
        rng = self.rng
        title = " ".join(rng.sample(ev["keys"], 4) + [ev["place"]] + self._general(2)).capitalize()
        lead = [self._sentence(ev, 5, 6, True) + f" It happened in {ev['place']} on {ev['day']}."]
        lead += [self._sentence(ev, 4, 8, rng.random() < 0.5) for _ in range(rng.randint(1, 3))]
        body = []
        if rng.random() < 0.6:  # full text: more facts, then background on another recent event
            body += [self._sentence(ev, 3, 10, rng.random() < 0.3) for _ in range(rng.randint(3, 12))]
            if recent and rng.random() < 0.5:
                other = rng.choice(recent)
                body += [self._sentence(other, 3, 8, True) for _ in range(rng.randint(1, 3))]
        return title, " ".join(lead + body)

    def __iter__(self):
        rng = self.rng
        spacing = 86400.0 / self.per_day
        # open events: each has a remaining report count; new events start at a steady rate
        open_events: list[tuple[dict, int]] = []
        recent: deque = deque(maxlen=200)
        next_event = 0
        t = 0.0
        for n in range(self.size):
            t += rng.expovariate(1.0 / spacing)
            # keep ~40 events open; most reports belong to a recently started event
            while len(open_events) < 40:
                size = 1 if rng.random() < 0.45 else min(20, 1 + int(rng.expovariate(1 / 4.0)))
                ev = self._event(next_event, t)
                next_event += 1
                open_events.append((ev, size))
                recent.append(ev)
            i = rng.randrange(len(open_events))
            ev, left = open_events[i]
            if left <= 1:
                open_events.pop(i)
            else:
                open_events[i] = (ev, left - 1)
            feed = rng.choice(self.feeds)
            title, text = self._report(ev, t, recent)
            stamp = (self.start + timedelta(seconds=t)).strftime("%d %b %Y %H:%M")
            text = f"{text} Posted {stamp}. " + " ".join(self.footers[feed])
            doc = ClusterDoc(entry_id=n + 1, feed_id=feed, outlet=self.outlets[feed], title=title, text=text,
                             published=self.start + timedelta(seconds=t))
            yield doc, ev["id"]


class CorpusStream:
    """(ClusterDoc, event number) of a corpus in the evaluation schema, in published order."""

    def __init__(self, path: str, summary_only: bool = False, copies: int = 1) -> None:
        with open(path, encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh if line.strip()]
        rows.sort(key=lambda a: (_published(a), str(a.get("id"))))
        feeds: dict[str, int] = {}
        events: dict[str, int] = {}
        self.articles = []
        for a in rows:
            feed = feeds.setdefault(str(a.get("outlet") or a.get("outlet_url") or ""), len(feeds) + 1)
            event = events.setdefault(str(a.get("event", a.get("id"))), len(events))
            html = "" if summary_only else a.get("content") or ""
            text = clean_text(html_to_text(html) or html_to_text(a.get("summary") or ""))
            self.articles.append((feed, str(a.get("outlet") or ""), title_text(a.get("title") or ""), text,
                                  _published(a), event))
        self.feeds, self.events, self.copies = len(feeds), len(events), copies
        self.size = len(self.articles) * copies
        span = self.articles[-1][4] - self.articles[0][4] if self.articles else timedelta(0)
        # past the follow-up window, so that no copy links to an earlier one
        self.shift = span + ClusterConfig().follow_up_window + timedelta(days=30)
        self.mean_chars = sum(len(x[3]) for x in self.articles) / max(1, len(self.articles))

    def __iter__(self):
        n = len(self.articles)
        for k in range(self.copies):
            for i, (feed, outlet, title, text, published, event) in enumerate(self.articles):
                doc = ClusterDoc(entry_id=k * n + i + 1, feed_id=feed, outlet=outlet, title=title, text=text,
                                 published=published + k * self.shift)
                yield doc, k * self.events + event


def _published(article: dict) -> datetime:
    when = datetime.fromisoformat(str(article["published"]).replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _naive_assign(window: deque, docs_cluster: dict, q: sim.DocFeatures, config: ClusterConfig,
                  next_id: list[int], df: sim.DocumentFrequencies) -> int:
    """Baseline: score q against every window entry; join the best member's cluster."""
    horizon = q.ts - config.window.total_seconds()
    while window and window[0].ts < horizon:
        old = window.popleft()
        df.remove(old.terms)
    best, best_c = 0.0, None
    scale = config.time_scale.total_seconds()
    for other in window:
        s = sim.pair_similarity(q, other) * math.exp(-0.5 * ((q.ts - other.ts) / scale) ** 2)
        if s > best:
            best, best_c = s, docs_cluster[other.entry_id]
    if best >= config.join and best_c is not None:
        cid = best_c
    else:
        cid = next_id[0]
        next_id[0] += 1
    docs_cluster[q.entry_id] = cid
    window.append(q)
    return cid


class _Workers:
    """CPU time and peak memory of the weighing worker (a child of multiprocessing's fork server,
    so not in this process's RUSAGE_CHILDREN), from /proc, sampled while they live."""

    def __init__(self) -> None:
        self.cpu: dict[int, float] = {}
        self.hwm_kb = 0

    def sample(self) -> None:
        from multiprocessing import forkserver
        server = getattr(forkserver._forkserver, "_forkserver_pid", None)
        if server is None or not os.path.isdir("/proc"):
            return
        tick = os.sysconf("SC_CLK_TCK")
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                if int(stat[1]) != server:
                    continue
                self.cpu[int(pid)] = (int(stat[11]) + int(stat[12])) / tick
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        self.hwm_kb = max(self.hwm_kb, int(line.split()[1]))
            except (OSError, IndexError, ValueError):
                continue


def run_size(size: int, per_day: int, baseline: int, workers: int | None, chunk: int,
             source: CorpusStream | None = None, decisions: str | None = None,
             against: str | None = None) -> dict:
    config = ClusterConfig()
    cl = Clusterer(config)
    # per-entry bookkeeping in compact arrays, so that peak RSS is the clusterer's, not ours
    lat = array("d")
    gold = array("q")
    pred = array("q")
    merged_into: dict[int, int] = {}
    t_total = cpu_total = 0.0
    load_before = os.getloadavg()[0]
    stream = iter(source if source is not None else Stream(size, per_day))
    paused = collection_paused()  # as monitor clusters a batch
    paused.__enter__()
    readers = _Workers()
    while True:
        # One clustering run per chunk, as monitor clusters one cycle's new entries: the chunk is
        # generated first (not timed); a run's time includes starting the worker, handing it the
        # statistics and taking them back (added to its last entry).
        batch = list(itertools.islice(stream, chunk))
        if not batch:
            break
        stage = weigh_ahead(cl.weigher, batch, len(batch), lambda item: item[0], workers=workers)
        last = len(lat) + len(batch) - 1
        while True:
            if len(lat) % 2000 == 1999 or len(lat) == last:  # the worker's CPU, before it ends
                readers.sample()
            c0, t0 = time.process_time(), time.perf_counter()
            try:
                (doc, ev), feats = next(stage)
            except StopIteration:
                dt = time.perf_counter() - t0
                cpu_total += time.process_time() - c0
                t_total += dt
                lat[-1] += dt
                break
            a: Assignment = cl.place(feats)
            dt = time.perf_counter() - t0
            cpu_total += time.process_time() - c0
            t_total += dt
            lat.append(dt)
            for m in a.merged:
                merged_into[m] = a.cluster_id
            gold.append(ev)
            pred.append(a.cluster_id)
    paused.__exit__(None, None, None)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    reader_cpu, reader_rss_mb = sum(readers.cpu.values()), readers.hwm_kb / 1024
    window_entries, window_clusters = cl.window_entries, cl.window_clusters
    del cl

    def final(c: int) -> int:  # merges apply to earlier predictions too
        while c in merged_into:
            c = merged_into[c]
        return c

    checked = {}
    if decisions or against:  # each entry's cluster, merges applied, to compare runs entry by entry
        final_ids = [final(p) for p in pred]
        if decisions:
            with open(decisions, "w", encoding="utf-8") as fh:
                fh.writelines(json.dumps({"entry": i + 1, "cluster": c}) + "\n" for i, c in enumerate(final_ids))
        if against:
            with open(against, encoding="utf-8") as fh:
                before = {r["entry"]: r["cluster"] for r in map(json.loads, fh)}
            differ = [i + 1 for i, c in enumerate(final_ids) if before.get(i + 1) != c]
            checked = {"against": against, "compared": len(final_ids), "differ": len(differ),
                       "missing": len(before.keys() - set(range(1, len(final_ids) + 1))),
                       "first_differing": differ[0] if differ else None}
    lat = sorted(lat)
    pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1e3  # noqa: E731
    q = score({str(i): str(g) for i, g in enumerate(gold)},
              {str(i): str(final(p)) for i, p in enumerate(pred)})
    out = {"size": size, "entries_per_s": size / t_total, "mean_ms": t_total / size * 1e3,
           "workers": workers_available() if workers is None else workers,
           "cpu_ms_per_entry": (cpu_total + reader_cpu) / size * 1e3, "reader_rss_mb": reader_rss_mb,
           "main_cpu_ms_per_entry": cpu_total / size * 1e3, "worker_cpu_ms_per_entry": reader_cpu / size * 1e3,
           "load": max(load_before, os.getloadavg()[0]),
           "p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99),
           "peak_rss_mb": peak_rss_mb, "window_entries": window_entries, "window_clusters": window_clusters,
           "pair_p": q["pair_p"], "pair_r": q["pair_r"], "pair_f1": q["pair_f1"], "checked": checked}
    if baseline and source is None:
        n = min(baseline, size)
        window: deque = deque()
        dc: dict[int, int] = {}
        df = sim.DocumentFrequencies()
        bp = sim.FeedBoilerplate()
        next_id = [1]
        t_base = 0.0
        t_ours = 0.0
        cl2 = Clusterer(config)
        for doc, _ in Stream(n, per_day):
            t0 = time.perf_counter()
            feats = sim.extract(doc, bp)
            feats.index(df)
            bp.add(doc.feed_id, feats.sentence_keys, feats.headline)
            _naive_assign(window, dc, feats, config, next_id, df)
            t_base += time.perf_counter() - t0
            t0 = time.perf_counter()
            cl2.assign(doc)
            t_ours += time.perf_counter() - t0
        out.update({"baseline_entries": n, "baseline_entries_per_s": n / t_base,
                    "indexed_entries_per_s_same_prefix": n / t_ours})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--per-day", type=int, default=1500, help="entries per day in the stream")
    ap.add_argument("--baseline", type=int, default=3000, help="entries for the naive baseline (0: skip)")
    ap.add_argument("--workers", type=int, default=None,
                    help="weighing workers beside the deciding process (default: as monitor picks; 0: none)")
    ap.add_argument("--chunk", type=int, default=20000,
                    help="entries per clustering run, as one cycle's new entries (default: a first poll's)")
    ap.add_argument("--corpus", help="cluster this corpus (evaluation schema, JSON lines), not a generated stream")
    ap.add_argument("--summary-only", action="store_true", help="with --corpus: titles and summaries only")
    ap.add_argument("--copies", type=int, default=1, help="with --corpus: play it this many times")
    ap.add_argument("--decisions", help="write each entry's cluster (merges applied) to this file, JSON lines")
    ap.add_argument("--against", help="compare each entry's cluster with a --decisions file of an earlier run")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    source = CorpusStream(args.corpus, args.summary_only, args.copies) if args.corpus else None
    if args.one:
        print(json.dumps(run_size(args.one, args.per_day, args.baseline, args.workers, args.chunk, source,
                                  args.decisions, args.against)))
        return 0
    if source is not None:
        sizes = [source.size]
        print(f"corpus: {args.corpus}{' (summary only)' if args.summary_only else ''}, "
              f"{len(source.articles)} articles x {args.copies}, {source.feeds} outlets, "
              f"mean text {source.mean_chars:.0f} characters")
        label = "pair P/R/F1 against its events"
    else:
        sizes = [int(s) for s in args.sizes.split(",")]
        print(f"stream: {args.per_day} entries/day, 7-day window ~{7 * args.per_day} entries; 300 feeds")
        label = "synthetic pair P/R/F1"
    corpus_args = ["--corpus", args.corpus, "--copies", str(args.copies)] if args.corpus else []
    corpus_args += ["--summary-only"] if args.summary_only else []
    if (args.decisions or args.against) and len(sizes) > 1:
        ap.error("--decisions and --against take one size (or a corpus)")
    corpus_args += ["--decisions", args.decisions] if args.decisions else []
    corpus_args += ["--against", args.against] if args.against else []
    for size in sizes:
        baseline = args.baseline if size == sizes[0] and source is None else 0
        res = subprocess.run([sys.executable, "-m", "bench.cluster", "--one", str(size),
                              "--per-day", str(args.per_day), "--baseline", str(baseline),
                              "--chunk", str(args.chunk), *corpus_args]
                             + (["--workers", str(args.workers)] if args.workers is not None else []),
                             capture_output=True, text=True, check=True)
        r = json.loads(res.stdout.strip().splitlines()[-1])
        print(f"{r['size']:>9,} entries: {r['entries_per_s']:7.0f} entries/s "
              f"(weighing worker {r['workers']}, CPU {r['cpu_ms_per_entry']:.2f} ms/entry in all: "
              f"{r['main_cpu_ms_per_entry']:.2f} deciding + {r['worker_cpu_ms_per_entry']:.2f} weighing, "
              f"load {r['load']:.1f})  "
              f"per entry p50 {r['p50_ms']:.2f} p95 {r['p95_ms']:.2f} p99 {r['p99_ms']:.2f} "
              f"mean {r['mean_ms']:.2f} ms  peak RSS {r['peak_rss_mb']:.0f} MB "
              f"(the weighing worker {r['reader_rss_mb']:.0f} MB)  "
              f"window {r['window_entries']} entries/{r['window_clusters']} clusters  "
              f"{label} {r['pair_p']:.3f}/{r['pair_r']:.3f}/{r['pair_f1']:.3f}")
        c = r["checked"]
        if c:
            print(f"{'':>9}  decisions against {c['against']}: "
                  + ("identical, entry by entry" if not c["differ"] and not c["missing"] else
                     f"{c['differ']} of {c['compared']} entries in another cluster (first: entry "
                     f"{c['first_differing']}), {c['missing']} entries of that run missing here"))
        if "baseline_entries" in r:
            print(f"{'':>9}  naive baseline (every window entry) on the first {r['baseline_entries']:,}: "
                  f"{r['baseline_entries_per_s']:.0f} entries/s vs indexed "
                  f"{r['indexed_entries_per_s_same_prefix']:.0f} entries/s on the same prefix")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
