"""Labelled slices of the dev corpus, shared by the clusterer, weighing-pool and end-to-end tests.

- DOCS, GOLD, IDS: tests/data/cluster_cases.jsonl, the dev corpus' hard-negative groups (83
  articles), as ClusterDocs in publication order, each entry's gold event, and corpus id -> entry id.
- CORPUS: tests/data/corpus_telegram_iran.jsonl, the Telegram/Iran slice, as dicts; outlet_feed()
  writes one outlet's articles as an RSS document.
"""
from __future__ import annotations

import email.utils
import html
import json
from datetime import datetime, timezone
from xml.sax.saxutils import escape

from monitor.feeds.normalize import html_to_text
from monitor.types import ClusterDoc
from tests.support import DATA

CASES = DATA / "cluster_cases.jsonl"


def load_cases() -> tuple[list[ClusterDoc], dict[int, str], dict[str, int]]:
    rows = [json.loads(line) for line in CASES.read_text(encoding="utf-8").splitlines() if line.strip()]
    feeds: dict[str, int] = {}
    docs, gold, ids = [], {}, {}
    for n, r in enumerate(rows, start=1):
        published = r["published"]
        when = (datetime.fromisoformat(published).replace(tzinfo=timezone.utc) if len(published) == 10
                else datetime.fromisoformat(published.replace("Z", "+00:00")).astimezone(timezone.utc))
        docs.append(ClusterDoc(entry_id=n, feed_id=feeds.setdefault(r["outlet"], len(feeds) + 1),
                               outlet=r["outlet"], title=html.unescape(r["title"]),
                               text=html_to_text(r["summary"]), published=when))
        gold[n] = r["event"]
        ids[r["id"]] = n
    docs.sort(key=lambda d: (d.published, d.entry_id))
    return docs, gold, ids


DOCS, GOLD, IDS = load_cases()

CORPUS = [json.loads(line) for line in (DATA / "corpus_telegram_iran.jsonl").read_text().splitlines()]


def outlet_feed(outlet: str, articles: list[dict]) -> bytes:
    out = [f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{escape(outlet)}</title>']
    for a in articles:
        when = datetime.fromisoformat(a["published"].replace("Z", "+00:00"))
        out.append(f"<item><title>{escape(a['title'])}</title><link>{escape(a['link'])}</link>"
                   f'<guid isPermaLink="false">{a["id"]}</guid>'
                   f"<pubDate>{email.utils.format_datetime(when) if when.tzinfo else a['published']}</pubDate>"
                   f"<description>{escape(a['summary'])}</description></item>")
    out.append("</channel></rss>")
    return "".join(out).encode()
