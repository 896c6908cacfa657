#!/usr/bin/env python3
"""News feeds served over HTTP on 127.0.0.1, for bench/poll.py: generated, or from a corpus file.

    python -m bench.poll_server --feeds 1000 --items 20 [--hosts 1] [--seed 1]
    python -m bench.poll_server --corpus FILE [--summary-only] [--hosts 1]

Builds `--feeds` feed documents in memory (deterministic for a given seed), then serves
them from `--hosts` ThreadingHTTPServers on 127.0.0.1 (one port each: the fetchers see one
host per port, so their per-host limits behave as they do with many publishers). Prints
one line `READY {json}` with the ports and the corpus figures on stdout once it listens.

With `--corpus`, the feeds come from a file of articles in the evaluation schema (JSON
lines: id, outlet, outlet_url, title, summary, content, link, published; content may be
missing) instead: one feed per outlet, the outlets in sorted order rotating through RSS 2.0,
Atom 1.0 and RSS 1.0 (RDF), items newest first, the full text as content:encoded or Atom
content unless `--summary-only`, Last-Modified the newest item's time. The documents are
those the evaluation harness's feed server renders, so a bench run parses the same bytes
as an evaluation run; only the paths differ (`/feeds/N.xml`, N the outlet's place in the
sorted order, for every mode).

Like a publisher's server it answers If-None-Match (else If-Modified-Since) with 304,
sends ETag and Last-Modified, and gzips when the request's Accept-Encoding allows it.
`GET /_stats` returns request counters as JSON (`/_stats?reset=1` also zeroes them).

It stops on SIGTERM/SIGINT, after `--max-seconds`, and with `--watch-stdin` when its
standard input closes (bench/poll.py passes it, so the server never outlives the benchmark).
"""

from __future__ import annotations

import argparse
import email.utils
import gzip
import hashlib
import json
import os
import random
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape, quoteattr

# --- the corpus ----------------------------------------------------------------------------
#
# Text follows a news stream rather than word salad, because the cycle clusters what it
# stores and clustering cost depends on how entries overlap: a Zipfian general vocabulary
# (20,000 words), events with their own key terms, names, place and numbers, most events
# reported once and some by up to 20 outlets within hours, full texts that end on
# background about another recent event, and per-outlet boilerplate.

FUNCTION_WORDS = (
    "the of and to in a for on that with as by at from was is has said it its "
    "after over but were have be this who which will their an also been not"
).split()
SYLLABLES = (
    "ka ri mo ta le ne sa vo di pa lu ze ga ro mi te na bo ki su fa jo ha re li da ve ko zu ma no pe ti ra"
).split()
SECTIONS = (
    "world",
    "politics",
    "business",
    "health",
    "technology",
    "middle-east",
    "africa",
    "asia",
    "europe",
)
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc)  # the newest item of the stream


def _word(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(n))


@dataclass
class _Event:
    keys: list[str]
    names: list[str]
    place: str
    numbers: list[str]
    t0: datetime


@dataclass
class _Report:
    event: _Event
    when: datetime
    background: _Event | None


class Corpus:
    """`feeds` x `items` reports of a deterministic event stream, as RSS 2.0 and Atom documents."""

    def __init__(self, feeds: int, items: int, seed: int = 1) -> None:
        self.feeds, self.items, self.seed = feeds, items, seed
        rng = random.Random(seed)
        self.general = [_word(rng, rng.randint(2, 4)) for _ in range(20000)]
        self.general_cum = []
        total = 0.0
        for i in range(len(self.general)):
            total += 1.0 / (i + 1) ** 1.05
            self.general_cum.append(total)
        topical = [_word(rng, rng.randint(3, 5)) for _ in range(40000)]
        events: list[_Event] = []
        reports: list[_Report] = []
        while len(reports) < feeds * items:
            size = 1 if rng.random() < 0.45 else min(20, 1 + int(rng.expovariate(1 / 4.0)))
            ev = _Event(
                keys=rng.sample(topical, rng.randint(10, 18)),
                names=[f"{_word(rng, 2).title()} {_word(rng, 3).title()}" for _ in range(rng.randint(1, 3))],
                place=_word(rng, 3).title(),
                numbers=[str(rng.choice([rng.randint(2, 99), rng.randint(100, 5000)])) for _ in range(2)],
                t0=NOW - timedelta(hours=48 * rng.random()),
            )
            for _ in range(size):
                when = min(NOW, ev.t0 + timedelta(minutes=rng.expovariate(1 / 120.0)))
                bg = rng.choice(events[-300:]) if events and rng.random() < 0.5 else None
                reports.append(_Report(ev, when, bg))
            events.append(ev)
        rng.shuffle(reports)
        self.reports = reports[: feeds * items]

    def _general(self, rng: random.Random, k: int) -> list[str]:
        return rng.choices(self.general, cum_weights=self.general_cum, k=k)

    def _sentence(self, rng: random.Random, ev: _Event, n_keys: int, n_general: int, name: bool) -> str:
        words = rng.sample(ev.keys, min(n_keys, len(ev.keys))) + self._general(rng, n_general)
        words += rng.sample(FUNCTION_WORDS, 4)
        if name:
            words.append(rng.choice(ev.names))
        if rng.random() < 0.5:
            words.append(rng.choice(ev.numbers))
        rng.shuffle(words)
        return " ".join(words).capitalize() + rng.choice((".", ".", ".", ",\u201d said a spokesperson."))

    def _title(self, rng: random.Random, ev: _Event) -> str:
        title = " ".join(rng.sample(ev.keys, 4) + [ev.place] + self._general(rng, 2)).capitalize()
        return rng.choice(("", "", "", "UPDATE 2-", "LIVE: ")) + title + rng.choice(("", "", "", " & more"))

    def _article_html(self, rng: random.Random, r: _Report, site: str, size: int) -> str:
        """Full text as CMSs publish it: figures, links with tracking, embeds, a pixel."""
        ev = r.event

        def sent(keys: int = 3, general: int = 10, name: bool = False, e: _Event = ev) -> str:
            return self._sentence(rng, e, keys, general, name)

        parts = [
            f'<figure class="lead"><img src="{site}/img/{rng.randrange(10**6)}.jpg" '
            'width="1200" height="675" '
            f'alt="{escape(sent(2, 4))}" loading="lazy" /><figcaption>{escape(sent(2, 6, True))} '
            f'<span class="credit">Photo: Agency</span></figcaption></figure>'
        ]
        background = False
        while sum(map(len, parts)) < size:
            x = rng.random()
            if not background and r.background and sum(map(len, parts)) > size * 0.7:
                background = True
                parts.append(
                    "<h2>Background</h2>"
                    + "".join(
                        f"<p>{escape(sent(3, 8, True, r.background))}</p>" for _ in range(rng.randint(1, 3))
                    )
                )
            elif x < 0.6:
                s = " ".join(sent(name=rng.random() < 0.3) for _ in range(rng.randint(2, 4)))
                if rng.random() < 0.5:
                    a = s.rfind(" ", 0, rng.randrange(len(s) // 2)) + 1
                    b = s.find(" ", a + 12)
                    b = b if b > 0 else len(s)
                    href = (
                        f"/{rng.choice(SECTIONS)}/{rng.randrange(10**6)}?utm_source=rss&amp;utm_medium=feed"
                        if rng.random() < 0.5
                        else f"https://example.org/{rng.choice(SECTIONS)}/{rng.randrange(10**6)}"
                    )
                    s = (
                        f'{escape(s[:a])}<a href="{href}" target="_blank" rel="noopener">'
                        f"{escape(s[a:b])}</a>{escape(s[b:])}"
                    )
                else:
                    s = escape(s)
                parts.append(
                    f'<p style="margin:0 0 1em">{s.replace(" said ", " <strong>said</strong> ", 1)}</p>'
                )
            elif x < 0.7:
                parts.append(f"<h2>{escape(self._title(rng, ev))}</h2>")
            elif x < 0.78:
                parts.append(
                    f'<blockquote class="quote"><p>&ldquo;{escape(sent(2, 8))}&rdquo;</p>'
                    f"<cite>{rng.choice(ev.names)}</cite></blockquote>"
                )
            elif x < 0.86:
                items = "".join(f"<li>{escape(sent(1, 6))}</li>" for _ in range(rng.randint(3, 5)))
                parts.append(f"<ul>{items}</ul>")
            elif x < 0.92:
                parts.append(
                    f'<div class="embed"><blockquote class="twitter-tweet"><p lang="en">{escape(sent(2, 6))}'
                    f'</p>&mdash; {rng.choice(ev.names)} (@handle) <a href="https://twitter.com/x/status/'
                    f'{rng.randrange(10**15)}">November 1, 2026</a></blockquote><script async '
                    f'src="https://platform.twitter.com/widgets.js" charset="utf-8"></script></div>'
                )
            else:
                parts.append(
                    '<iframe width="560" height="315" '
                    f'src="https://www.youtube.com/embed/{rng.randrange(10**9)}"'
                    f' frameborder="0" allowfullscreen></iframe><p><em>{escape(sent(1, 8))}</em></p>'
                )
        parts.append(
            f'<p class="related">Read more: <a href="{site}/{rng.choice(SECTIONS)}/">'
            f"{rng.choice(SECTIONS)}</a> "
            f"&#8226; &copy; 2026</p>"
        )
        parts.append(f'<img src="{site}/pixel.gif?id={rng.randrange(10**9)}" width="1" height="1" alt="" />')
        return "".join(parts)

    def document(self, index: int) -> tuple[bytes, str]:
        """Feed `index`: every third carries full text, every fifth is Atom, the rest RSS 2.0."""
        rng = random.Random(self.seed * 1_000_003 + index)
        full, atom = index % 3 == 0, index % 5 == 4
        site = f"https://outlet{index}.example.com"
        name = f"{_word(rng, 3).title()} {rng.choice(('News', 'Times', 'Herald', 'Post', 'Ledger'))}"
        footer = f"Follow {name} for more. {_word(rng, 2).title()} {_word(rng, 3)} {_word(rng, 2)}."
        mine = sorted(
            self.reports[index * self.items : (index + 1) * self.items], key=lambda r: r.when, reverse=True
        )
        entries = []
        for j, r in enumerate(mine):
            link = f"{site}/{rng.choice(SECTIONS)}/2026/11/{rng.randrange(10**7)}-story.html"
            if rng.random() < 0.3:
                link += "?utm_source=rss&utm_medium=feed&utm_campaign=world"
            lead = " ".join(
                [self._sentence(rng, r.event, 5, 6, True) + f" It happened in {r.event.place}."]
                + [self._sentence(rng, r.event, 4, 8, rng.random() < 0.5) for _ in range(rng.randint(0, 2))]
            )
            summary = f"<p>{escape(lead)}</p><p>{escape(footer)}</p>"
            if rng.random() < 0.4:  # many feeds put a thumbnail in the description
                summary = f'<img src="{site}/thumb/{rng.randrange(10**6)}.jpg" width="150" /> {summary}'
            entries.append(
                {
                    "title": self._title(rng, r.event),
                    "link": link,
                    "when": r.when,
                    "summary": summary,
                    "guid": f"{site}/?p={index * 1000 + j}" if rng.random() < 0.5 else link,
                    "author": rng.choice(r.event.names)
                    if rng.random() < 0.2
                    else f"{_word(rng, 2).title()} Staff",
                    "categories": rng.sample(SECTIONS, rng.randint(1, 3)),
                    "content": self._article_html(rng, r, site, rng.randint(2000, 6000)) if full else None,
                }
            )
        newest = mine[0].when if mine else NOW
        if atom:
            return self._atom(name, site, newest, entries), "application/atom+xml; charset=utf-8"
        return self._rss(index, name, site, newest, entries), "application/rss+xml; charset=utf-8"

    @staticmethod
    def _atom(name: str, site: str, newest: datetime, entries: list[dict]) -> bytes:
        out = [
            '<?xml version="1.0" encoding="utf-8"?>\n'
            '<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en">',
            f'<title>{escape(name)}</title><link rel="alternate" href="{site}/"/>'
            f'<link rel="self" href="{site}/feed.atom"/><id>{site}/</id>'
            f"<updated>{newest.isoformat()}</updated>",
        ]
        for e in entries:
            out.append(
                f'<entry><title type="html">{escape(escape(e["title"]))}</title>'
                f'<link rel="alternate" type="text/html" href="{escape(e["link"])}"/>'
                f"<id>{escape(e['guid'])}</id><published>{e['when'].isoformat()}</published>"
                f"<updated>{e['when'].isoformat()}</updated><author><name>{e['author']}</name></author>"
            )
            out.extend(f'<category term="{c}"/>' for c in e["categories"])
            out.append(f'<summary type="html">{escape(e["summary"])}</summary>')
            if e["content"]:
                out.append(f'<content type="html">{escape(e["content"])}</content>')
            out.append("</entry>")
        out.append("</feed>")
        return "\n".join(out).encode("utf-8")

    @staticmethod
    def _rss(index: int, name: str, site: str, newest: datetime, entries: list[dict]) -> bytes:
        out = [
            '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" '
            'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:atom="http://www.w3.org/2005/Atom">'
            f"<channel><title>{escape(name)}</title><link>{site}/</link><description>Latest news from "
            f'{escape(name)}</description><language>en</language><atom:link href="{site}/feed/" rel="self" '
            'type="application/rss+xml"/>'
            f"<lastBuildDate>{email.utils.format_datetime(newest)}</lastBuildDate>"
            "<ttl>15</ttl>"
        ]
        for e in entries:
            permalink = "true" if e["guid"] == e["link"] else "false"
            out.append(
                f"<item><title>{escape(e['title'])}</title><link>{escape(e['link'])}</link>"
                f"<dc:creator><![CDATA[{e['author']}]]></dc:creator>"
                f"<pubDate>{email.utils.format_datetime(e['when'])}</pubDate>"
            )
            out.extend(f"<category><![CDATA[{c}]]></category>" for c in e["categories"])
            out.append(f'<guid isPermaLink="{permalink}">{escape(e["guid"])}</guid>')
            out.append(
                f"<description><![CDATA[{e['summary']}]]></description>"
                if index % 2
                else f"<description>{escape(e['summary'])}</description>"
            )
            if e["content"]:
                out.append(f"<content:encoded><![CDATA[{e['content']}]]></content:encoded>")
            out.append("</item>")
        out.append("</channel></rss>")
        return "\n".join(out).encode("utf-8")


@dataclass(frozen=True)
class Doc:
    body: bytes
    gz: bytes
    etag: str
    last_modified: str
    modified: datetime
    ctype: str


def build_corpus(feeds: int, items: int, seed: int = 1) -> dict[str, Doc]:
    corpus = Corpus(feeds, items, seed)
    docs = {}
    for i in range(feeds):
        body, ctype = corpus.document(i)
        modified = NOW - timedelta(minutes=i)
        docs[feed_path(i)] = Doc(
            body=body,
            gz=gzip.compress(body, compresslevel=6, mtime=0),
            etag='"' + hashlib.sha1(body).hexdigest()[:20] + '"',
            last_modified=email.utils.format_datetime(modified, usegmt=True),
            modified=modified,
            ctype=ctype,
        )
    return docs


def feed_path(index: int) -> str:
    return f"/feeds/{index}.xml"


# --- a corpus of real articles ---------------------------------------------------------------
#
# One feed per outlet in the three formats news sites publish, rendered as the evaluation
# harness's feed server renders them (same elements, same escaping, same item order), so
# that what a bench run parses is what an evaluation run parses.

FORMATS = ("rss", "atom", "rdf")
CONTENT_TYPES = {
    "rss": "application/rss+xml; charset=utf-8",
    "atom": "application/atom+xml; charset=utf-8",
    "rdf": "application/rdf+xml; charset=utf-8",
}
OLDEST = datetime(2000, 1, 1, tzinfo=UTC)  # Last-Modified of a feed with no items


def load_articles(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def parse_time(value: str) -> datetime:
    """ISO 8601 with an offset, `Z`, or none (taken as UTC), or a date alone (midnight UTC)."""
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "outlet"


def _render_rss(outlet: str, home: str, items: list[dict]) -> str:
    out = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">',
        "<channel>",
        f"<title>{escape(outlet)}</title>",
        f"<link>{escape(home)}</link>",
        f"<description>{escape(outlet)} news</description>",
    ]
    for it in items:
        out.append("<item>")
        out.append(f"<title>{escape(it['title'])}</title>")
        out.append(f"<link>{escape(it['link'])}</link>")
        out.append(f'<guid isPermaLink="false">{escape(it["id"])}</guid>')
        out.append(f"<pubDate>{email.utils.format_datetime(parse_time(it['published']))}</pubDate>")
        out.append(f"<description>{escape(it.get('summary') or '')}</description>")
        if it.get("content"):
            out.append(f"<content:encoded>{escape(it['content'])}</content:encoded>")
        out.append("</item>")
    out += ["</channel>", "</rss>"]
    return "\n".join(out)


def _render_atom(outlet: str, home: str, items: list[dict]) -> str:
    updated = max((parse_time(i["published"]) for i in items), default=datetime.now(UTC))
    out = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<feed xmlns="http://www.w3.org/2005/Atom">',
        f"<title>{escape(outlet)}</title>",
        f"<link href={quoteattr(home)}/>",
        f"<id>{escape(home)}/</id>",
        f"<updated>{updated.isoformat()}</updated>",
    ]
    for it in items:
        out.append("<entry>")
        out.append(f"<title>{escape(it['title'])}</title>")
        out.append(f'<link rel="alternate" href={quoteattr(it["link"])}/>')
        out.append(f"<id>{escape(it['id'])}</id>")
        t = parse_time(it["published"]).isoformat()
        out.append(f"<published>{t}</published><updated>{t}</updated>")
        out.append(f'<summary type="html">{escape(it.get("summary") or "")}</summary>')
        if it.get("content"):
            out.append(f'<content type="html">{escape(it["content"])}</content>')
        out.append("</entry>")
    out.append("</feed>")
    return "\n".join(out)


def _render_rdf(outlet: str, home: str, items: list[dict]) -> str:
    out = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
        'xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/">',
        f"<channel rdf:about={quoteattr(home)}>",
        f"<title>{escape(outlet)}</title>",
        f"<link>{escape(home)}</link>",
        f"<description>{escape(outlet)} news</description>",
        "<items><rdf:Seq>",
    ]
    out += [f"<rdf:li rdf:resource={quoteattr(it['id'])}/>" for it in items]
    out += ["</rdf:Seq></items>", "</channel>"]
    for it in items:
        out.append(f"<item rdf:about={quoteattr(it['id'])}>")
        out.append(f"<title>{escape(it['title'])}</title>")
        out.append(f"<link>{escape(it['link'])}</link>")
        out.append(f"<dc:date>{parse_time(it['published']).isoformat()}</dc:date>")
        out.append(f"<description>{escape(it.get('summary') or '')}</description>")
        if it.get("content"):
            out.append(f"<content:encoded>{escape(it['content'])}</content:encoded>")
        out.append("</item>")
    out.append("</rdf:RDF>")
    return "\n".join(out)


RENDER = {"rss": _render_rss, "atom": _render_atom, "rdf": _render_rdf}


@dataclass(frozen=True)
class CorpusFeed:
    outlet: str
    format: str  # rss | atom | rdf
    body: bytes
    entries: int
    full_text: bool  # at least one item carries content
    newest: datetime


def render_corpus(articles: list[dict], summary_only: bool = False) -> list[CorpusFeed]:
    """One feed per outlet, outlets sorted by name and formats in turn; items newest first."""
    by_outlet: dict[str, list[dict]] = {}
    homes: dict[str, str] = {}
    for art in articles:
        homes.setdefault(art["outlet"], art.get("outlet_url") or "")
        by_outlet.setdefault(art["outlet"], []).append(art)
    feeds, used = [], set()
    for n, outlet in enumerate(sorted(by_outlet)):
        fmt = FORMATS[n % len(FORMATS)]
        name, base, k = _slug(outlet), _slug(outlet), 2
        while name in used:  # the placeholder home page of an outlet without one stays unique
            name, k = f"{base}-{k}", k + 1
        used.add(name)
        items = sorted(by_outlet[outlet], key=lambda a: parse_time(a["published"]), reverse=True)
        if summary_only:
            items = [{k: v for k, v in a.items() if k != "content"} for a in items]
        body = RENDER[fmt](outlet, homes[outlet] or f"https://{name}.example", items).encode("utf-8")
        feeds.append(
            CorpusFeed(
                outlet=outlet,
                format=fmt,
                body=body,
                entries=len(items),
                full_text=any(a.get("content") for a in items),
                newest=max((parse_time(a["published"]) for a in items), default=OLDEST),
            )
        )
    return feeds


def build_corpus_docs(path: str, summary_only: bool = False) -> tuple[dict[str, Doc], dict]:
    """The documents of a corpus file by path, and its figures for the READY line."""
    feeds = render_corpus(load_articles(path), summary_only)
    docs = {}
    for i, f in enumerate(feeds):
        docs[feed_path(i)] = Doc(
            body=f.body,
            gz=gzip.compress(f.body, compresslevel=6, mtime=0),
            etag='"' + hashlib.sha1(f.body).hexdigest()[:16] + '"',
            last_modified=email.utils.format_datetime(f.newest.astimezone(UTC), usegmt=True),
            modified=f.newest,
            ctype=CONTENT_TYPES[f.format],
        )
    full = [f for f in feeds if f.full_text]
    info = {
        "corpus": path,
        "summary_only": summary_only,
        "entries": sum(f.entries for f in feeds),
        "formats": {fmt: sum(1 for f in feeds if f.format == fmt) for fmt in FORMATS},
        "full_text_feeds": len(full),
        "atom_feeds": sum(1 for f in feeds if f.format == "atom"),
        "mean_full_text_feed_bytes": round(sum(len(f.body) for f in full) / max(1, len(full))),
    }
    return docs, info


# --- the server ----------------------------------------------------------------------------


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.status: dict[str, int] = {}
        self.gzip = 0
        self.conditional = 0
        self.body_bytes = 0
        self.connections = 0

    def snapshot(self) -> dict:
        return {
            "requests": self.requests,
            "status": dict(self.status),
            "gzip": self.gzip,
            "conditional": self.conditional,
            "body_bytes": self.body_bytes,
            "connections": self.connections,
        }


def _accepts_gzip(value: str) -> bool:
    for part in value.split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() in ("gzip", "x-gzip", "*"):
            q = params.strip().lower()
            return not (q.startswith("q=") and float(q[2:] or 0) == 0)
    return False


def _etags(value: str) -> list[str]:
    return [t.strip().removeprefix("W/") for t in value.split(",") if t.strip()]


def make_handler(docs: dict[str, Doc], stats: Stats) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "bench-feeds/1"
        sys_version = ""
        disable_nagle_algorithm = True  # headers and body go out at once, no delayed-ACK stalls

        def setup(self) -> None:
            super().setup()
            with stats.lock:
                stats.connections += 1

        def do_GET(self) -> None:  # noqa: N802
            path = self.path.split("?")[0]
            if path == "/_stats":
                with stats.lock:
                    body = json.dumps(stats.snapshot()).encode()
                    if "reset=1" in self.path:
                        stats.reset()
                return self._send(200, body, {"Content-Type": "application/json"}, count=False)
            doc = docs.get(path)
            if doc is None:
                return self._send(404, b"not found", {"Content-Type": "text/plain"})
            inm, ims = self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since")
            fresh = False
            if inm is not None:
                fresh = inm.strip() == "*" or doc.etag.removeprefix("W/") in _etags(inm)
            elif ims:
                try:
                    fresh = doc.modified <= email.utils.parsedate_to_datetime(ims)
                except (TypeError, ValueError):
                    fresh = False
            validators = {"ETag": doc.etag, "Last-Modified": doc.last_modified, "Vary": "Accept-Encoding"}
            if fresh:
                return self._send(304, b"", validators, conditional=True)
            headers = {"Content-Type": doc.ctype, **validators}
            body = doc.body
            if _accepts_gzip(self.headers.get("Accept-Encoding", "")):
                body = doc.gz
                headers["Content-Encoding"] = "gzip"
            self._send(200, body, headers, conditional=inm is not None or bool(ims))

        def _send(
            self,
            status: int,
            body: bytes,
            headers: dict[str, str],
            *,
            count: bool = True,
            conditional: bool = False,
        ) -> None:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            if status != 304:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body:
                self.wfile.write(body)
            if count:
                with stats.lock:
                    stats.requests += 1
                    stats.status[str(status)] = stats.status.get(str(status), 0) + 1
                    stats.gzip += "Content-Encoding" in headers
                    stats.conditional += conditional
                    stats.body_bytes += len(body)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # 20+ clients connecting at once must not hit a full backlog


def serve(
    feeds: int,
    items: int,
    hosts: int,
    seed: int,
    max_seconds: float,
    watch_stdin: bool,
    corpus: str | None = None,
    summary_only: bool = False,
) -> None:
    started = time.monotonic()
    if corpus:
        docs, figures = build_corpus_docs(corpus, summary_only)
        feeds, items = len(docs), 0  # items per feed vary: see "entries"
    else:
        docs = build_corpus(feeds, items, seed)
        full = [d for i, d in enumerate(docs.values()) if i % 3 == 0]
        figures = {
            "entries": feeds * items,
            "full_text_feeds": len(full),
            "atom_feeds": sum(1 for i in range(feeds) if i % 5 == 4),
            "mean_full_text_feed_bytes": round(sum(len(d.body) for d in full) / max(1, len(full))),
        }
    stats = Stats()
    handler = make_handler(docs, stats)
    servers = [Server(("127.0.0.1", 0), handler) for _ in range(max(1, hosts))]
    ports = [s.server_address[1] for s in servers]
    threads = [
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True) for s in servers
    ]
    for t in threads:
        t.start()
    stop = threading.Event()

    def watch() -> None:
        try:
            while sys.stdin.buffer.read(1):
                pass
        except (OSError, ValueError):
            pass
        stop.set()

    if watch_stdin:
        threading.Thread(target=watch, daemon=True).start()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    info = {
        "ports": ports,
        "pid": os.getpid(),
        "feeds": feeds,
        "items": items,
        "seed": seed,
        "bytes": sum(len(d.body) for d in docs.values()),
        "gzip_bytes": sum(len(d.gz) for d in docs.values()),
        **figures,
        "build_seconds": round(time.monotonic() - started, 2),
    }
    print("READY " + json.dumps(info), flush=True)
    stop.wait(max_seconds)
    for s in servers:
        s.shutdown()
        s.server_close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--feeds", type=int, default=1000)
    ap.add_argument("--items", type=int, default=20)
    ap.add_argument("--hosts", type=int, default=1, help="listening ports, i.e. distinct host:port origins")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-seconds", type=float, default=3600.0, help="stop after this long whatever happens")
    ap.add_argument(
        "--watch-stdin", action="store_true", help="stop when standard input closes (the parent ended)"
    )
    ap.add_argument(
        "--corpus",
        metavar="FILE",
        help="serve this corpus (JSON lines, evaluation schema): one feed per outlet",
    )
    ap.add_argument(
        "--summary-only", action="store_true", help="with --corpus: titles and descriptions, no full text"
    )
    args = ap.parse_args()
    if args.summary_only and not args.corpus:
        ap.error("--summary-only needs --corpus")
    serve(
        args.feeds,
        args.items,
        args.hosts,
        args.seed,
        args.max_seconds,
        args.watch_stdin,
        corpus=args.corpus,
        summary_only=args.summary_only,
    )


if __name__ == "__main__":
    main()
