"""fastfeed: every document it accepts reads exactly as feedparser reads it, and it refuses the rest.

The reference is parse._read_with_feedparser(..., fast=False), i.e. feedparser itself; the
fast path must give the same (title, link, ttl, entries, warning) tuple, field by field.
"""
from __future__ import annotations

import importlib.util
import random
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.errors import ParseError
from monitor.feeds import fastfeed
from monitor.feeds.parse import _XML_CONTROL, _read_with_feedparser, decode_body, fix_char_refs, parse_feed
from tests.support import DATA

ROOT = Path(__file__).resolve().parents[2]
FEEDS = DATA / "feeds"
NOW = datetime(2026, 11, 3, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fast_path_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Compare the replay with the feedparser installed, whatever its release: on a release
    not yet verified, monitor itself keeps to feedparser, and these tests say whether the
    release can be added to VERIFIED_FEEDPARSER."""
    monkeypatch.setattr(fastfeed, "ENABLED", True)
RSS_TYPE = {"content-type": "application/rss+xml; charset=utf-8"}
NS = " ".join(f'xmlns:{prefix}="{uri}"' for prefix, uri in (
    ("content", "http://purl.org/rss/1.0/modules/content/"),
    ("dc", "http://purl.org/dc/elements/1.1/"),
    ("atom", "http://www.w3.org/2005/Atom"),
    ("media", "http://search.yahoo.com/mrss/"),
    ("itunes", "http://www.itunes.com/dtds/podcast-1.0.dtd"),
    ("slash", "http://purl.org/rss/1.0/modules/slash/"),
))
CHANNEL = "<title>Gulf Ledger</title><link>https://ledger.example/</link>"
FEED = '<title>Wire</title><link href="https://wire.example/"/>'


def rss(*items: str, channel: str = CHANNEL, root: str = f'version="2.0" {NS}') -> bytes:
    body = "".join(f"<item>{item}</item>" for item in items)
    return f'<?xml version="1.0"?><rss {root}><channel>{channel}{body}</channel></rss>'.encode()


def atom(*entries: str, feed: str = FEED) -> bytes:
    body = "".join(f"<entry>{entry}</entry>" for entry in entries)
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom" '
        f'xmlns:media="http://search.yahoo.com/mrss/">{feed}{body}</feed>'
    ).encode()


# The one refusal the readers document (parse._read_with_feedparser): neither a feed version nor
# entries. Anything else they raise would reach the user as `parser_error`, i.e. a crash.
DOCUMENTED_REJECTIONS = {"not_a_feed"}


def read_both(body: bytes, headers: dict[str, str], base: str | None = None) -> tuple[Any, Any, bool]:
    """(fast path's outcome, feedparser's outcome, whether the fast path answered).

    An outcome is the reader's tuple or a documented refusal; a crash on either path fails the test."""
    headers = {k.lower(): v for k, v in headers.items()}
    text, _ = decode_body(body, headers)  # what parse_feed does before either reader
    text = fix_char_refs(_XML_CONTROL.sub("", text).lstrip("\ufeff \t\r\n"))
    taken: list[bool] = []
    real = fastfeed.read

    def spy(data: bytes, response_headers: dict[str, str]) -> fastfeed.FastFeed | None:
        found = real(data, response_headers)
        taken.append(found is not None)
        return found

    def outcome(fast: bool) -> Any:
        path = "fast path" if fast else "feedparser path"
        try:
            return _read_with_feedparser(text, headers, base, fast=fast)
        except ParseError as exc:
            if exc.reason not in DOCUMENTED_REJECTIONS:
                raise AssertionError(f"the {path} refused the document with {exc}") from exc
            return ("refused", exc.reason, exc.detail)  # both paths refusing alike is agreement
        except Exception as exc:
            # parse_feed would hide this as `parser_error`; here it is a bug, even when both paths hit it.
            raise AssertionError(f"the {path} crashed: {type(exc).__name__}: {exc}") from exc

    fastfeed.read = spy
    try:
        fast = outcome(True)
    finally:
        fastfeed.read = real
    return fast, outcome(False), taken == [True]


def assert_same(body: bytes, headers: dict[str, str] | None = None, base: str | None = None) -> bool:
    """Assert both readers agree; return whether the fast path answered."""
    fast, slow, taken = read_both(body, RSS_TYPE if headers is None else headers, base)
    if fast != slow and len(fast) == len(slow) == 5:  # point at the first differing field
        for name, a, b in zip(("title", "link", "ttl", "entries", "warning"), fast, slow):
            if name == "entries" and len(a) == len(b):
                for i, (x, y) in enumerate(zip(a, b)):
                    assert vars(x) == vars(y), f"entry {i}"
            assert a == b, name
    assert fast == slow
    return taken


# --- corpora ---------------------------------------------------------------------------------

REAL = sorted(p.name for p in FEEDS.glob("*.xml"))
ACCEPTED_REAL = {
    "AmazonWebServicesBlog.xml", "CRE.xml", "GiantRobotsSmashingIntoOtherGiantRobots.xml",
    "HuffPostCanada.xml", "PaulDixExplainsNothing.xml", "TechCrunch.xml", "TenderLovemaking.xml",
    "google_alerts_atom.xml", "youtube_atom.xml",
}


@pytest.mark.parametrize("name", REAL)
@pytest.mark.parametrize(
    "headers", [{}, RSS_TYPE, {"content-type": "text/html"}], ids=["none", "rss", "html"]
)
@pytest.mark.parametrize("base", [None, "https://feeds.example/path/feed.xml"], ids=["nobase", "base"])
def test_real_feeds(name: str, headers: dict[str, str], base: str | None) -> None:
    taken = assert_same((FEEDS / name).read_bytes(), headers, base)
    assert taken == (name in ACCEPTED_REAL)


def _poll_server() -> Any:
    spec = importlib.util.spec_from_file_location("poll_server_corpus", ROOT / "bench" / "poll_server.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_bench_documents_take_the_fast_path_and_match() -> None:
    """bench/poll_server.py's documents: RSS 2.0 with CDATA and content:encoded, Atom with html."""
    corpus = _poll_server().Corpus(30, 20, seed=3)
    for index in range(30):
        body, ctype = corpus.document(index)
        headers = {"content-type": ctype}
        assert assert_same(body, headers, f"https://outlet{index}.example.com/feed"), index
        if index % 7 == 0:  # and end to end
            fast = parse_feed(body, headers, NOW)
            real = fastfeed.read
            fastfeed.read = lambda data, response_headers: None
            try:
                assert parse_feed(body, headers, NOW) == fast
            finally:
                fastfeed.read = real


# --- edge cases: all must take the fast path -------------------------------------------------

ITEM = "<title>T</title><link>https://ledger.example/a</link>"
CASES: dict[str, bytes] = {
    "title markup and entities": rss(
        "<title>Oil &lt;b&gt;up&lt;/b&gt; &amp;amp; gas &#169;</title>",
        "<title>AT&amp;T &amp;nbsp; x&lt;y</title>",
        "<title>&lt;i&gt;x&lt;/i&gt; and &amp;foo;</title>",
    ),
    "cdata": rss(
        "<title><![CDATA[A <em>b</em>]]></title><description><![CDATA[<p>x</p>]]></description>"
        "<content:encoded><![CDATA[<p>full</p>]]></content:encoded>"
    ),
    "guid permalink": rss(
        "<title>a</title><guid>https://ledger.example/g1</guid>",
        '<title>b</title><guid isPermaLink="true">/rel/g2</guid>',
        '<title>c</title><guid isPermaLink="false">https://ledger.example/g3</guid>',
        '<title>d</title><guid isPermaLink="True">g4</guid>',
        "<guid>https://x.example/g5</guid><link>https://x.example/l5</link>",
        "<link>https://x.example/l6</link><guid>https://x.example/g6</guid>",
    ),
    "missing and empty links": rss(
        "<title>a</title><description>d</description>",
        "<title>b</title><link/><guid>https://x.example/g</guid>",
        "<title>c</title><link>  </link>",
        "<title>d</title><link>https://x.example/?a=1&amp;amp;b=2&amp;copy;</link>",
        channel="<title>C</title><link>https://c.example/?a&amp;amp;b=1</link>",
    ),
    "xml:base": rss(
        '<title>b</title><link base="https://plain.example/">r2</link><guid>g</guid>',
        channel=f'{CHANNEL}<item xml:base="https://base.example/dir/"><title>a</title><link>rel/1?x=1&amp;y=2'
        '</link><description xml:base="/other/">&lt;a href="p"&gt;x&lt;/a&gt;</description></item>',
    ),
    "leaking xml:base without a feed URL": atom(
        '<title xml:base="https://leak.example/x/">t</title><id>rel-id</id><link href="rel-link"/>'
    ),
    "rss authors": rss(
        "<title>a</title><dc:creator>Jane Roe</dc:creator>",
        "<title>b</title><author>joe@example.com (Joe Bloggs)</author>",
        "<title>c</title><author>Joe &lt;joe@example.com&gt;</author><dc:creator>J</dc:creator>",
        "<title>d</title><itunes:author>Pod</itunes:author><author>x@y.org</author>",
        "<title>e</title><author>a@b.co</author><atom:author><atom:name>N</atom:name></atom:author>",
        # feedparser splits the first author into name and e-mail and files them under the second
        "<title>f</title><author>Joe &lt;joe@x.org&gt;</author><atom:author><atom:uri>/u</atom:uri></atom:author>",
    ),
    "atom authors": atom(
        "<title>a</title><author><name>Ann</name><email>ann@x.org</email></author>",
        "<title>b</title><author><email>e@x.org</email><name>Bo</name></author>",
        "<title>c</title><author><uri>/u</uri></author>",
        "<title>d</title><author><name>A</name></author><author><name>B</name></author>",
    ),
    "dates": rss(
        "<title>a</title><pubDate>Mon, 06 Sep 2010 16:45:00 +0000</pubDate>",
        "<title>b</title><pubDate>not a date</pubDate><dc:date>2024-05-01</dc:date>",
        "<title>c</title><pubDate>1700000000</pubDate>",
        "<title>d</title><dc:date>2024-05-01T10:00:00+02:00</dc:date><pubDate></pubDate>",
        "<title>e</title><atom:updated>2099-01-01T00:00:00Z</atom:updated>",
    ),
    "descriptions and content": rss(
        "<title>a</title><description></description>",
        "<title>b</title><description>same</description><content:encoded>same</content:encoded>",
        "<title>c</title><content:encoded>&lt;p&gt;only&lt;/p&gt;</content:encoded>",
        "<title>d</title><description>one</description><description>two</description>"
        "<itunes:summary>three</itunes:summary>",
        "<title>e</title><content:encoded>c</content:encoded><description>after</description>"
        "<media:description>m</media:description>",
        '<title>f</title><description type="text">a &amp;amp; b</description>',
    ),
    "atom text constructs": atom(
        '<title type="html">A &amp;amp; &lt;b&gt;B&lt;/b&gt;</title>'
        '<summary type="text">&lt;p&gt;not html&lt;/p&gt;</summary>'
        '<content type="html">&lt;p&gt;html&lt;/p&gt;</content>',
        '<title type="text">x &lt;b&gt;</title><content>plain</content><summary>later summary</summary>',
        "<id>https://wire.example/1</id><title>no link</title>",
        '<id>tag:wire.example,2024:2</id><link rel="self" href="/s"/>'
        '<link rel="alternate" type="text/html" href="/a"/>',
    ),
    "non-ascii": rss(
        "<title>Caf\u00e9 \u201cnews\u201d \u2014 \u65b0\u805e</title>"
        "<description>\u00c3\u00a9t\u00c3\u00a9 \u0080\u0099 &#150;</description>"
        "<dc:creator>Jos\u00e9</dc:creator>",
        channel="<title>R\u00e9seau</title><link>https://r.example/</link>",
    ),
    "channel: ttl, image, textinput, atom:link": rss(
        "<title>x</title>",
        channel='<title>Chan</title><ttl> 60 </ttl><atom:link href="https://alt.example/" />'
        "<image><title>Img</title><url>/logo.png</url><link>https://img.example/</link><width>88</width>"
        "</image>"
        "<textInput><title>TI</title><name>q</name><link>https://t.example/</link></textInput>"
        "<itunes:owner><itunes:name>O</itunes:name></itunes:owner><link>https://chan.example/</link>",
    ),
    "feed id as link": atom("<title>x</title>", feed="<title>F</title><id>https://feed.example/</id>"),
    "media and namespaced extras": rss(
        '<title>a</title><media:group><media:content url="https://m/1.jpg"><media:title>MT</media:title>'
        "<media:description>MD</media:description></media:content></media:group>"
        '<slash:comments>4</slash:comments><enclosure url="https://m/a.mp3" type="audio/mpeg" length="1"/>'
        "<category>c</category><comments>/c</comments>",
        "<media:title>first</media:title><title>second</title><dc:title>third</dc:title>",
        "<wrap><title>deep</title></wrap><title>shallow</title>",
    ),
    "eval-harness shaped rss": rss(
        "<title>Iraq launches offensive</title><link>https://w.example/a1</link>"
        '<guid isPermaLink="false">a0001</guid><pubDate>Mon, 17 Oct 2016 02:46:09 +0000</pubDate>'
        "<description>BAGHDAD, Oct 17 - text</description>"
        "<content:encoded>Full &lt;text&gt;</content:encoded>",
        root='version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"',
    ),
    "version 0.91": rss(f"{ITEM}<description>&lt;b&gt;d&lt;/b&gt;</description>", root='version="0.91"'),
    "version 0.92": rss(f"{ITEM}<guid>https://x.example/g</guid>", root='version="0.92"'),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_edge_cases(name: str) -> None:
    for headers in (RSS_TYPE, {}, {"content-type": "text/html; charset=iso-8859-1"}):  # html: a bozo warning
        for base in (None, "https://feeds.example/f/rss.xml"):
            assert assert_same(CASES[name], headers, base)


REFUSED: dict[str, bytes] = {
    "doctype": b'<?xml version="1.0"?><!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" '
    b'"http://my.netscape.com/publish/formats/rss-0.91.dtd"><rss version="0.91"><channel>'
    b"<title>a</title><item><title>x</title></item></channel></rss>",
    "xhtml content": atom(
        '<title>x</title><content type="xhtml">'
        '<div xmlns="http://www.w3.org/1999/xhtml"><p>x</p></div></content>'
    ),
    "rdf": b'<?xml version="1.0"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
    b'xmlns="http://purl.org/rss/1.0/"><channel><title>a</title></channel>'
    b"<item><title>x</title></item></rdf:RDF>",
    "malformed": b'<rss version="2.0"><channel><title>a</title><item><title>x</item></channel></rss>',
    "atom 0.3": b'<feed version="0.3" xmlns="http://purl.org/atom/ns#"><title>a</title>'
    b"<entry><title>x</title></entry></feed>",
    "rss 1.0 version": rss(ITEM, root='version="1.0"'),
    "markup in title": rss("<title>a <b>bold</b></title>"),
    "source": rss(f'{ITEM}<source url="https://s.example/">S</source>'),
    "image in an item": rss(f"{ITEM}<image><title>i</title></image>"),
    "base64": atom('<content type="application/octet-stream">aGk=</content>'),
    "prefix renaming a namespace": rss(
        f"{ITEM}<dc:encoded>x</dc:encoded>",
        root='version="2.0" xmlns:dc="http://purl.org/rss/1.0/modules/content/"'
    ),
    "html root": b'<html xmlns="http://www.w3.org/1999/xhtml"><body><p>login</p></body></html>',
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_documents_fall_back(name: str) -> None:
    assert assert_same(REFUSED[name], RSS_TYPE) is False


def test_typical_feeds_take_the_fast_path() -> None:
    """The speed-up must not vanish silently (an over-eager refusal)."""
    item = (
        "<title>Markets rally</title><link>https://news.example/a?utm=1&amp;x=2</link>"
        "<dc:creator><![CDATA[Staff]]></dc:creator><pubDate>Mon, 02 Nov 2026 10:00:00 +0000</pubDate>"
        '<category><![CDATA[world]]></category><guid isPermaLink="false">https://news.example/?p=1</guid>'
        "<description><![CDATA[<p>Lead.</p>]]></description>"
        "<content:encoded><![CDATA[<p>Full text.</p>]]></content:encoded>"
    )
    assert assert_same(rss(item, item, channel=f"{CHANNEL}<ttl>15</ttl>"))
    entry = (
        '<title type="html">Markets &amp;amp; more</title><id>https://wire.example/1</id>'
        '<link rel="alternate" type="text/html" href="https://wire.example/1"/>'
        "<published>2026-11-02T10:00:00+00:00</published><updated>2026-11-02T10:00:00+00:00</updated>"
        '<author><name>Desk</name></author><category term="world"/>'
        '<summary type="html">&lt;p&gt;Lead&lt;/p&gt;</summary>'
        '<content type="html">&lt;p&gt;Full&lt;/p&gt;</content>'
    )
    assert assert_same(atom(entry, entry), {"content-type": "application/atom+xml"})


def test_unverified_feedparser_release_disables_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fastfeed, "ENABLED", False)
    assert fastfeed.read(rss(ITEM), {"content-type": "application/xml"}) is None


def test_replayed_names_are_feedparser_handlers() -> None:
    """A renamed or removed handler in feedparser must not leave a stale replay behind."""
    assert set(fastfeed._DISPATCH) <= fastfeed._HANDLERS


# --- random documents ------------------------------------------------------------------------

TEXTS = [
    "Plain", "  spaced  ", "", "A &amp; B", "x &lt;b&gt;b&lt;/b&gt; y", "<![CDATA[<p>P</p>]]>", "caf\u00e9",
    "\u00c3\u00a9t\u00c3\u00a9", "&lt;i&gt;it&lt;/i&gt;", "https://x.example/a?b=1&amp;amp;c=2", "/rel/path",
    "j@x.org (J)", "Mon, 06 Sep 2010 16:45:00 +0000", "2024-05-01", "1700000000", "nope",
]
BASES = ["https://b.example/d/", "/o/", "", "javascript:x"]


def _piece(rng: random.Random, atom_doc: bool) -> str:
    """One element of an entry or of the channel/feed, from the shapes the edge cases cover."""
    t = rng.choice(TEXTS)
    base = f' xml:base="{rng.choice(BASES)}"' if rng.random() < 0.15 else ""
    typ = f' type="{rng.choice(["text", "html", "HTML", "text/plain"])}"' if rng.random() < 0.3 else ""
    shapes = [
        f"<title{typ}{base}>{t}</title>", f"<media:title>{t}</media:title>", f"<w><title>{t}</title></w>",
    ]
    if atom_doc:
        shapes += [
            f'<link{base} href="{rng.choice(TEXTS[9:11])}"/>', f'<link rel="self" href="{t}"/>',
            f"<id{base}>{t}</id>", f"<summary{typ}>{t}</summary>", f"<content{typ}{base}>{t}</content>",
            f"<published>{t}</published>", f"<updated>{t}</updated>", f'<category term="{t}"/>',
            f"<author><name>{t}</name><email>{rng.choice(['j@x.org', 'x'])}</email></author>",
        ]
    else:
        shapes += [
            f"<link{base}>{t}</link>", "<link/>", f"<guid>{t}</guid>",
            f'<guid isPermaLink="{rng.choice(["true", "false"])}"{base}>{t}</guid>',
            f"<description{typ}{base}>{t}</description>", f"<content:encoded{base}>{t}</content:encoded>",
            f"<author>{t}</author>", f"<dc:creator>{t}</dc:creator>", f"<pubDate>{t}</pubDate>",
            f"<dc:date>{t}</dc:date>", f"<itunes:summary>{t}</itunes:summary>", f'<atom:link href="{t}"/>',
            f"<media:description>{t}</media:description>", f"<category>{t}</category>",
        ]
    return rng.choice(shapes)


@pytest.mark.parametrize("seed", range(4))
def test_random_documents(seed: int) -> None:
    rng = random.Random(seed)
    taken = 0
    for n in range(100):
        atom_doc = n % 2 == 0
        entries = [
            "".join(_piece(rng, atom_doc) for _ in range(rng.randint(0, 7))) for _ in range(rng.randint(0, 4))
        ]
        head = "".join(_piece(rng, atom_doc) for _ in range(rng.randint(0, 3)))
        body = atom(*entries, feed=head) if atom_doc else rss(*entries, channel=head + "<ttl>30</ttl>")
        taken += assert_same(body, rng.choice([RSS_TYPE, {}]), rng.choice([None, "https://f.example/x/feed"]))
    assert taken >= 60  # most random documents stay on the fast path, so the comparison means something
