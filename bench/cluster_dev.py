#!/usr/bin/env python3
"""Offline evaluator of event clustering on a labelled corpus: the tuning tool.

    python -m bench.cluster_dev [CORPUS.jsonl] [--set join=0.3 ...] [--errors N]
                                [--robustness] [--variant long] [--real-feeds DIR]

Runs the Clusterer over the corpus in published order (default: ../shared/data/events-dev.jsonl)
and prints pairwise and BCubed precision/recall/F1 (bench/scoring.py, BCubed
also over multi-article events), then the gold event pairs that were merged (false merges)
and the events that were split (missed links, with each stray's score and best match).

--set overrides a ClusterConfig field (durations in hours): `--set join=0.25 --set
time_scale=48`. --robustness also scores synthetic variants of the corpus that test
generalisation rather than the corpus' quirks (see make_variant). --real-feeds clusters
unlabelled real feeds with full text and lists every cluster of two or more entries.
"""
from __future__ import annotations

import argparse
import html
import json
import random
import re
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bench.scoring import score
from monitor.events.clusterer import ClusterConfig, Clusterer
from monitor.feeds.normalize import html_to_text
from monitor.types import ClusterDoc

# --- the labelled corpus, as the store would give it ----------------------------------------
# Text is the plain text of `content` (full text, content:encoded) when present, else of
# `summary`, made by the parser's own html_to_text; titles have entities unescaped; a
# date-only `published` is midnight UTC; each outlet is one feed.
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = ROOT.parent / "shared" / "data" / "events-dev.jsonl"


def parse_published(value: str) -> datetime:
    """ISO 8601 with offset or 'Z' -> aware UTC; a date alone -> midnight UTC."""
    v = value.strip()
    if len(v) == 10:
        return datetime.fromisoformat(v).replace(tzinfo=timezone.utc)
    if v.endswith("Z"):
        v = v[:-1] + "+00:00"
    dt = datetime.fromisoformat(v)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


@dataclass(frozen=True)
class Article:
    id: str
    event: str
    doc: ClusterDoc
    raw: dict


def load(path: str | Path = DEFAULT_CORPUS) -> list[Article]:
    """Articles in published order (ties by id), with one feed id per outlet."""
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    feed_ids: dict[str, int] = {}
    out = []
    for n, a in enumerate(rows, start=1):
        feed_id = feed_ids.setdefault(a["outlet"], len(feed_ids) + 1)
        content = a.get("content")
        if isinstance(content, list):
            content = " ".join(c.get("value", "") if isinstance(c, dict) else str(c) for c in content)
        text = html_to_text(content or "") or html_to_text(a.get("summary") or "")
        doc = ClusterDoc(entry_id=n, feed_id=feed_id, outlet=a["outlet"],
                         title=html.unescape(a.get("title") or "").strip(), text=text,
                         published=parse_published(a["published"]))
        out.append(Article(id=a["id"], event=str(a.get("event")), doc=doc, raw=a))
    out.sort(key=lambda x: (x.doc.published, x.doc.entry_id))
    return out


def parse_sets(items: list[str]) -> ClusterConfig:
    cfg = ClusterConfig()
    known = {f.name for f in fields(ClusterConfig)}
    for item in items:
        k, v = item.split("=", 1)
        if k not in known:
            raise SystemExit(f"unknown setting {k!r}; known: {', '.join(sorted(known))}")
        cur = getattr(cfg, k)
        val = timedelta(hours=float(v)) if isinstance(cur, timedelta) else type(cur)(v)
        cfg = replace(cfg, **{k: val})
    return cfg


def run(articles: list[Article], config: ClusterConfig):
    """Cluster in order; predicted cluster per article id (merges applied) and each decision."""
    cl = Clusterer(config)
    pred: dict[str, int] = {}
    decisions = {}
    for a in articles:
        asg = cl.assign(a.doc)
        pred[a.id] = asg.cluster_id
        decisions[a.id] = asg
        for absorbed in asg.merged:
            for k, v in pred.items():
                if v == absorbed:
                    pred[k] = asg.cluster_id
    return pred, decisions


def evaluate(articles, pred):
    gold = {a.id: a.event for a in articles}
    return score(gold, {k: str(v) for k, v in pred.items()})


def report(articles, pred, decisions, n_errors: int) -> None:
    gold = {a.id: a.event for a in articles}
    by_pred = defaultdict(list)
    for k, v in pred.items():
        by_pred[v].append(k)
    false = Counter()
    for members in by_pred.values():
        for i, x in enumerate(members):
            for y in members[i + 1:]:
                if gold[x] != gold[y]:
                    false[tuple(sorted((gold[x], gold[y])))] += 1
    print(f"false-merge pairs: {sum(false.values())}")
    for (g1, g2), n in false.most_common(n_errors):
        print(f"  {n:3d}  {g1} + {g2}")
    by_gold = defaultdict(list)
    for k in pred:
        by_gold[gold[k]].append(k)
    missed = []
    for g, members in by_gold.items():
        parts = Counter(pred[m] for m in members)
        if len(parts) > 1:
            lost = sum(parts.values()) ** 2 - sum(c * c for c in parts.values())
            missed.append((lost // 2, g, members))
    missed.sort(key=lambda x: (-x[0], x[1]))
    print(f"missed-link pairs: {sum(m[0] for m in missed)}")
    for lost, g, members in missed[:n_errors]:
        main = Counter(pred[m] for m in members).most_common(1)[0][0]
        strays = [f"{m}({decisions[m].score:.2f}->{decisions[m].matched_entry_id})"
                  for m in members if pred[m] != main]
        print(f"  {lost:3d}  {g}: strays {' '.join(strays)}")


def print_scores(label: str, s: dict) -> None:
    print(f"{label:28} pair P/R/F1 {s['pair_p']:.3f}/{s['pair_r']:.3f}/{s['pair_f1']:.3f}  "
          f"BCubed {s['bcubed_p']:.3f}/{s['bcubed_r']:.3f}/{s['bcubed_f1']:.3f}  "
          f"multi {s['bcubed_multi_p']:.3f}/{s['bcubed_multi_r']:.3f}/{s['bcubed_multi_f1']:.3f}  "
          f"clusters {s['pred_clusters']}/{s['gold_clusters']}")


# --- synthetic robustness variants ------------------------------------------------------
_FURNITURE = [
    "Sign in to comment on this story.", "Follow us on Twitter and Facebook for the latest updates.",
    "Copyright {year} {outlet}. All rights reserved.", "Read more: top stories from {outlet}.",
    "Subscribe to our newsletter to get the day's headlines in your inbox.",
    "This article was published by {outlet} and may not be reproduced without permission.",
    "Posted: {date} by {outlet} staff", "Share this article", "Advertisement",
    "Click here to download the {outlet} app.",
]


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if len(s.split()) >= 5]


def make_variant(articles: list[Article], kind: str, seed: int = 7) -> list[Article]:
    """Harder copies of the corpus that test generalisation, not the dev corpus' quirks.

    padded:   every outlet gets its own furniture (3 lines, first and last), like scraped pages.
    long:     bodies grow to ~200-600 words, full-text-like: the summary as lead, then
              sentences from other reports of the same event, then a background paragraph
              of sentences from earlier reports (two days) of other events of the same topic, plus furniture.
    shuffled: feed ids are reassigned at random among 40 feeds (outlet names kept).
    stubs:    a quarter of the entries lose their text (title only).
    """
    rng = random.Random(seed)
    outlets = sorted({a.doc.outlet for a in articles})
    furniture = {o: rng.sample(_FURNITURE, 3) for o in outlets}
    by_event = defaultdict(list)
    for a in articles:
        by_event[a.event].append(a)
    out = []
    for a in articles:
        d = a.doc
        fill = {"outlet": d.outlet, "year": d.published.year, "date": d.published.strftime("%d %b %Y %H:%M")}
        text = d.text
        feed_id = d.feed_id
        if kind in ("padded", "long"):
            head, *tail = [f.format(**fill) for f in furniture[d.outlet]]
            body = [text]
            if kind == "long":
                same = [s for b in by_event[a.event] if b is not a for s in _sentences(b.doc.text)]
                near = [s for b in articles if b.event != a.event
                        and 0 < (d.published - b.doc.published).total_seconds() < 2 * 86400
                        and set(b.raw.get("topics", ())) & set(a.raw.get("topics", ()))
                        for s in _sentences(b.doc.text)]
                body += rng.sample(same, min(len(same), rng.randint(4, 10)))
                body += rng.sample(near, min(len(near), rng.randint(2, 6)))
            text = "\n".join([head] + body + tail)
        elif kind == "shuffled":
            feed_id = rng.randint(1, 40)
        elif kind == "stubs":
            if rng.random() < 0.25:
                text = ""
        elif kind != "summary":
            raise ValueError(kind)
        out.append(Article(a.id, a.event, replace(d, text=text, feed_id=feed_id), a.raw))
    return out


VARIANTS = ("summary", "padded", "long", "shuffled", "stubs")


def real_feeds(directory: Path, config: ClusterConfig) -> None:
    """Unlabelled real feeds (full text, real boilerplate): list every cluster of two or more.

    Blog and news feeds of different sites and years: nearly every entry is its own story,
    so the multi-entry clusters printed here are the ones to read for false merges.
    """
    from monitor.errors import ParseError
    from monitor.feeds.parse import parse_feed

    docs = []
    fetched = datetime(2024, 1, 1, tzinfo=timezone.utc)
    for feed_id, path in enumerate(sorted(directory.iterdir()), start=1):
        if path.suffix not in (".xml", ".json"):
            continue
        try:
            parsed = parse_feed(path.read_bytes(), {}, fetched)
        except ParseError:
            continue
        for e in parsed.entries:
            docs.append(ClusterDoc(entry_id=len(docs) + 1, feed_id=feed_id, outlet=parsed.title or path.stem,
                                   title=e.title, text=e.text, published=e.published))
    docs.sort(key=lambda d: (d.published, d.entry_id))
    cl = Clusterer(config)
    clusters = defaultdict(list)
    into: dict[int, int] = {}
    for d in docs:
        a = cl.assign(d)
        for m in a.merged:
            into[m] = a.cluster_id
        clusters[a.cluster_id].append((d, a))
    final = defaultdict(list)
    for cid, members in clusters.items():
        while cid in into:
            cid = into[cid]
        final[cid].extend(members)
    words = sum(len(d.text.split()) for d in docs) / max(1, len(docs))
    multi = [m for m in final.values() if len(m) > 1]
    print(f"real feeds: {len(docs)} entries (mean {words:.0f} words of text) -> {len(final)} clusters, "
          f"{len(multi)} with two or more entries")
    for members in multi:
        for d, a in members:
            print(f"   {d.outlet[:20]:20} {d.published:%Y-%m-%d} {a.reason:10} {a.score:.2f}  {d.title[:70]}")
        print()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", nargs="?", default=str(DEFAULT_CORPUS))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a ClusterConfig field (durations in hours)")
    ap.add_argument("--errors", type=int, default=15, help="confusions to list")
    ap.add_argument("--variant", choices=VARIANTS, default="summary",
                    help="which corpus version the confusions are listed for")
    ap.add_argument("--robustness", action="store_true", help="also score every synthetic variant")
    ap.add_argument("--real-feeds", type=Path, metavar="DIR",
                    help="also cluster the unlabelled feed files in DIR and list multi-entry clusters")
    args = ap.parse_args(argv)
    articles = load(args.corpus)
    config = parse_sets(args.set)
    kinds = VARIANTS if args.robustness else (args.variant,)
    for kind in kinds:
        variant = articles if kind == "summary" else make_variant(articles, kind)
        pred, decisions = run(variant, config)
        print_scores(kind, evaluate(variant, pred))
        if kind == args.variant:
            shown = (pred, decisions, variant)
    pred, decisions, variant = shown
    print(f"-- confusions ({args.variant})")
    report(variant, pred, decisions, args.errors)
    if args.real_feeds:
        real_feeds(args.real_feeds, config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
