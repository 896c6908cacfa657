"""fastfeed: every document it accepts reads exactly as feedparser reads it, and it refuses the rest.

The reference is parse._read_with_feedparser(..., fast=False), i.e. feedparser itself; the
fast path must give the same (title, link, ttl, entries, warning) tuple, field by field, and
before that the same raw values for every key parse.py reads from feedparser's result
(`feedparser_fields`), so that a difference parse.py's mapping happens to hide still shows.
RSS 2.0, Atom 1.0 and RSS 1.0 (RDF) documents alike.
"""
from __future__ import annotations

import importlib.util
import io
import random
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser
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


RDF_NS = 'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"'
RDF_CHANNEL = (
    f'<channel rdf:about="https://ledger.example/">{CHANNEL}<description>Gulf news</description>'
    '<items><rdf:Seq><rdf:li rdf:resource="https://ledger.example/a"/></rdf:Seq></items></channel>'
)


def rdf(*siblings: str, channel: str = RDF_CHANNEL, before: str = "", root: str = f"{RDF_NS} {NS}") -> bytes:
    """An RSS 1.0 document: `before`, the channel, then the siblings (items, image, textinput)."""
    body = "".join(siblings)
    return f'<?xml version="1.0"?><rdf:RDF {root}>{before}{channel}{body}</rdf:RDF>'.encode()


def rdf_item(inner: str, about: str | None = "https://ledger.example/a") -> str:
    """An RSS 1.0 item, with its rdf:about unless `about` is None."""
    attr = "" if about is None else f' rdf:about="{about}"'
    return f"<item{attr}>{inner}</item>"


# The one refusal the readers document (parse._read_with_feedparser): neither a feed version nor
# entries. Anything else they raise would reach the user as `parser_error`, i.e. a crash.
DOCUMENTED_REJECTIONS = {"not_a_feed"}


def feedparser_fields(
    version: str, feed: Any, entries: list[Any], problem: Exception | None
) -> dict[str, Any]:
    """Every value parse._read_with_feedparser and _fp_entry read from a result, by name, as stored.

    Read with dict.get, past FeedParserDict's key aliases, so both readers' dicts are compared
    on what they hold."""
    def get(node: Any, *path: str) -> Any:
        for key in path:
            node = dict.get(node, key) if isinstance(node, dict) else None
        return node

    out: dict[str, Any] = {
        "version": version,
        "problem": None if problem is None else f"{type(problem).__name__}: {problem}",
        "feed.title": get(feed, "title"),
        "feed.title_detail.type": get(feed, "title_detail", "type"),
        "feed.link": get(feed, "link"),
        "feed.ttl": get(feed, "ttl"),
        "entries": len(entries),
    }
    for i, entry in enumerate(entries):
        for key in (
            "id", "link", "title", "summary", "author", "published", "published_parsed", "updated",
            "updated_parsed",
        ):
            out[f"entries[{i}].{key}"] = get(entry, key)
        for path in (("title_detail", "type"), ("summary_detail", "type"), ("summary_detail", "base")):
            out[f"entries[{i}].{'.'.join(path)}"] = get(entry, *path)
        out[f"entries[{i}].content"] = [
            (get(c, "value"), get(c, "type"), get(c, "base")) for c in get(entry, "content") or []
        ]
    return out


def read_both(body: bytes, headers: dict[str, str], base: str | None = None) -> tuple[Any, Any, bool]:
    """(fast path's outcome, feedparser's outcome, whether the fast path answered).

    An outcome is the reader's tuple or a documented refusal; a crash on either path fails the test.
    When the fast path answers, its raw result must equal feedparser's on the same input, key by key."""
    headers = {k.lower(): v for k, v in headers.items()}
    text, _ = decode_body(body, headers)  # what parse_feed does before either reader
    text = fix_char_refs(_XML_CONTROL.sub("", text).lstrip("\ufeff \t\r\n"))
    taken: list[bool] = []
    answers: list[fastfeed.FastFeed] = []
    references: list[dict[str, Any]] = []
    real = fastfeed.read
    real_parse = feedparser.parse

    def spy(data: bytes, response_headers: dict[str, str]) -> fastfeed.FastFeed | None:
        found = real(data, response_headers)
        taken.append(found is not None)
        if found is not None:
            answers.append(found)
        return found

    def parse_spy(source: io.BytesIO, **kwargs: Any) -> Any:
        result = real_parse(source, **kwargs)
        problem = result.get("bozo_exception") if result.get("bozo") else None
        references.append(feedparser_fields(result.get("version") or "", result.get("feed") or {},
                                            result.get("entries") or [], problem))
        return result

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
    feedparser.parse = parse_spy  # parse.py calls it as feedparser.parse
    try:
        slow = outcome(False)
    finally:
        feedparser.parse = real_parse
    if answers:  # the same bytes and headers went to both readers
        assert len(references) == 1
        assert feedparser_fields(*answers[0]) == references[0]
    return fast, slow, taken == [True]


def assert_same(body: bytes, headers: dict[str, str] | None = None, base: str | None = None) -> bool:
    """Assert both readers agree; return whether the fast path answered."""
    fast, slow, taken = read_both(body, RSS_TYPE if headers is None else headers, base)
    if fast != slow and len(fast) == len(slow) == 5:  # point at the first differing field
        for name, a, b in zip(("title", "link", "ttl", "entries", "warning"), fast, slow, strict=True):
            if name == "entries" and len(a) == len(b):
                for i, (x, y) in enumerate(zip(a, b, strict=True)):
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


RDF_FILES = sorted(p.name for p in (FEEDS / "rdf").glob("*.rdf"))  # written for these tests


@pytest.mark.parametrize("name", RDF_FILES)
@pytest.mark.parametrize(
    "headers",
    [{}, {"content-type": "application/rdf+xml"}, {"content-type": "text/html"}],
    ids=["none", "rdf", "html"],
)
@pytest.mark.parametrize("base", [None, "https://feeds.example/path/feed.rdf"], ids=["nobase", "base"])
def test_rdf_feeds_take_the_fast_path_and_match(name: str, headers: dict[str, str], base: str | None) -> None:
    """Publisher-shaped RSS 1.0 feeds (Slash, Movable Type, prefixed and latin-1, the quirks) all replay."""
    assert assert_same((FEEDS / "rdf" / name).read_bytes(), headers, base)


def test_rdf_files_cover_the_shapes() -> None:
    """The comparison above means something only if the files hold the shapes it is about."""
    assert len(RDF_FILES) >= 4
    texts = [(FEEDS / "rdf" / name).read_bytes() for name in RDF_FILES]
    for needle in (
        b"<dc:creator>", b"<dc:date>", b"<content:encoded><![CDATA[", b"xml:base=", b"<r:RDF",
        b"<image rdf:about", b"<textinput rdf:about", b"<item>", b'<item rdf:about="">', b"&amp;amp;",
        b'encoding="iso-8859-1"',
    ):
        assert any(needle in text for text in texts), needle
    quirks = parse_feed((FEEDS / "rdf" / "quirks.rdf").read_bytes(), {}, NOW)
    assert quirks.title is None  # the image before the channel hides its title, on both paths
    assert [e.guid for e in quirks.entries][:2] == ["urn:tidewater:wire:0001", "wire-0002"]


# hostile and odd variants of the RDF files: (name, mutation, whether the fast path may answer)
END = b"</rdf:RDF>"
MUTATIONS: dict[str, tuple[Callable[[bytes], bytes], bool]] = {
    "as is": (lambda b: b, True),
    "image and textinput first": (
        lambda b: b.replace(
            b"<channel ", b"<textinput><title>T</title></textinput><image><title></title></image><channel ", 1
        ),
        True,
    ),
    "about without prefix": (lambda b: b.replace(b"rdf:about=", b"about="), True),
    "javascript base": (lambda b: b.replace(b"<channel ", b'<channel xml:base="javascript:x" ', 1), True),
    "items inside the channel": (
        lambda b: b.replace(b"</channel>", b"").replace(END, b"</channel>" + END), True
    ),
    "no RSS 1.0 namespace": (lambda b: b.replace(b'xmlns="http://purl.org/rss/1.0/"', b""), False),
    "RSS 0.90 namespace": (
        lambda b: b.replace(b'"http://purl.org/rss/1.0/"', b'"http://my.netscape.com/rdf/simple/0.9/"'), False
    ),
    "second channel": (lambda b: b.replace(END, b"<channel><title>2</title></channel>" + END), False),
    "truncated": (lambda b: b[: len(b) * 2 // 3], False),
    "doctype": (lambda b: b.replace(b"<rdf:RDF", b"<!DOCTYPE rdf:RDF><rdf:RDF", 1), False),
    "title beside the channel": (lambda b: b.replace(END, b"<title>loose</title>" + END), False),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
@pytest.mark.parametrize("name", [n for n in RDF_FILES if n != "prefixed_latin1.rdf"])  # uses other prefixes
def test_rdf_variants_match(name: str, mutation: str) -> None:
    """Both readers agree on every variant; the fast path answers the ones it should, refuses the rest."""
    change, may_answer = MUTATIONS[mutation]
    body = change((FEEDS / "rdf" / name).read_bytes())
    for headers in ({}, {"content-type": "application/rdf+xml"}):
        assert assert_same(body, headers, "https://feeds.example/f.rdf") is may_answer


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
        "<title>f</title><author>Joe &lt;joe@x.org&gt;</author>"
        "<atom:author><atom:uri>/u</atom:uri></atom:author>",
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
    # RSS 1.0 (RDF): items beside the channel, read by feedparser outside the feed
    "rdf: minimal": b'<?xml version="1.0"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
    b'xmlns="http://purl.org/rss/1.0/"><channel><title>a</title></channel>'
    b"<item><title>x</title></item></rdf:RDF>",
    "rdf: eval-harness shaped": rdf(
        rdf_item("<title>Iraq launches offensive</title><link>https://w.example/a1</link>"
                 "<dc:date>2016-10-17T02:46:09+00:00</dc:date>"
                 "<description>BAGHDAD, Oct 17 - text</description>"
                 "<content:encoded>Full &lt;text&gt;\n\nmore</content:encoded>", "a0001"),
        rdf_item("<title>Second</title><link>https://w.example/a2</link><dc:date>2016-10-18T00:00:00+00:00</dc:date>"
                 "<description></description>", "a0002"),
        root=f'{RDF_NS} xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/"',
    ),
    "rdf: dc fields": rdf(
        rdf_item(
            "<dc:title>DC title</dc:title><dc:creator>Jane Roe</dc:creator>"
            "<dc:date>2024-05-01T10:00:00+02:00</dc:date><dc:description>DC description</dc:description>"
            "<dc:subject>s</dc:subject><dc:publisher>P</dc:publisher><dc:rights>R</dc:rights>"
            "<dc:language>en</dc:language><dc:identifier>urn:x:1</dc:identifier><dc:source>https://s.example/</dc:source>"
        ),
        rdf_item(
            "<title>t</title><dc:title>later dc title</dc:title><dc:date>not a date</dc:date>"
            "<dcterms:issued>2024-05-02</dcterms:issued><dcterms:modified>2024-05-03T00:00:00Z</dcterms:modified>"
            "<dc:creator>joe@example.com (Joe)</dc:creator><dc:creator>Second</dc:creator>"
        ),
        rdf_item(
            "<title>t</title><dc:date>1700000000</dc:date><dc:date>Mon, 06 Sep 2010 16:45:00 +0000</dc:date>"
            "<dc:creator>Joe &lt;joe@example.com&gt;</dc:creator>"
        ),
        channel='<channel rdf:about="c"><dc:title>Chan</dc:title><title>later</title>'
        "<dc:date>2024-05-01</dc:date><dc:creator>desk</dc:creator><link>https://c.example/</link></channel>",
        root=f'{RDF_NS} {NS} xmlns:dcterms="http://purl.org/dc/terms/"',
    ),
    "rdf: content:encoded with html": rdf(
        rdf_item(
            "<title>a</title><description>&lt;p&gt;lead&lt;/p&gt;</description>"
            '<content:encoded>&lt;p&gt;full &lt;a href="/x"&gt;link&lt;/a&gt;&lt;/p&gt;</content:encoded>'
        ),
        rdf_item(
            "<title>b</title><content:encoded><![CDATA[<p>first <img src='i.png'/></p>]]></content:encoded>"
            "<description>after content</description><description>third</description>"
        ),
        rdf_item("<title>c</title><content:encoded>plain words only</content:encoded>"),
        rdf_item("<title>d</title><description>one</description><description>two</description>"),
    ),
    "rdf: entities": rdf(
        rdf_item("<title>Oil &lt;b&gt;up&lt;/b&gt; &amp;amp; gas &#169; &#x2014; &quot;q&quot;</title>"
                 "<link>https://x.example/?a=1&amp;amp;b=2&amp;copy;</link>"
                 "<description>AT&amp;T &amp;nbsp; x&lt;y &amp;foo;</description>"),
        rdf_item("<title>Caf\u00e9 \u00c3\u00a9t\u00c3\u00a9 \u0080\u0099 &#150;</title>", "https://x.example/caf\u00e9"),
        channel="<channel><title>R\u00e9seau &amp;amp; co</title><link>https://r.example/?a&amp;amp;b=1</link>"
        "</channel>",
    ),
    "rdf: missing fields": rdf(
        "<item/>", rdf_item(""), rdf_item("<title></title><link></link><description></description>"),
        rdf_item("<link>  </link>", None), rdf_item("<title>   </title>", ""),
        channel="<channel/>",
    ),
    "rdf: no channel": rdf(rdf_item("<title>only items</title>"), channel=""),
    "rdf: xml:base": rdf(
        rdf_item("<title>a</title><link>rel/1?x=1&amp;y=2</link><guid>g/2</guid>"
                 '<description xml:base="/other/">&lt;a href="p"&gt;x&lt;/a&gt;</description>', "rel/about"),
        '<item xml:base="https://base.example/dir/" rdf:about="r"><title>b</title><link>l</link>'
        '<content:encoded xml:base="sub/">c</content:encoded></item>',
        rdf_item('<title>c</title><link xml:base="javascript:x">j</link>', None),
        channel='<channel xml:base="https://chan.example/c/"><title>C</title><link>home</link></channel>',
        root=f'{RDF_NS} {NS} xml:base="https://root.example/feeds/"',
    ),
    "rdf: leaking xml:base without a feed URL": rdf(
        rdf_item('<title xml:base="https://leak.example/x/">t</title><link>rel-link</link><guid>rel-guid</guid>'),
        channel='<channel xml:base="https://c.example/"><title>C</title></channel>',
    ),
    "rdf: odd namespace prefixes": (
        b'<?xml version="1.0"?><R:RDF xmlns:R="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
        b'xmlns:rss="http://purl.org/rss/1.0/" xmlns:DC="http://purl.org/dc/elements/1.1/" '
        b'xmlns:ce="http://purl.org/rss/1.0/modules/content/" xmlns:x="http://vocab.example/x#">'
        b'<rss:channel R:about="https://c.example/"><rss:title>C</rss:title>'
        b"<rss:link>https://c.example/</rss:link>"
        b'<rss:items><R:Seq><R:li R:resource="https://c.example/1"/></R:Seq></rss:items></rss:channel>'
        b'<rss:item R:about="https://c.example/1"><rss:title>t</rss:title><DC:creator>A</DC:creator>'
        b"<DC:date>2024-05-01</DC:date><ce:encoded>&lt;p&gt;x&lt;/p&gt;</ce:encoded>"
        b"<x:title>not a title</x:title><x:link>not a link</x:link></rss:item></R:RDF>"
    ),
    "rdf: items with rdf:about only": rdf(
        rdf_item("", "https://x.example/1"), rdf_item("<title>t</title>", "urn:x:2"),
        rdf_item("<title>t</title><guid>https://x.example/g3</guid>", "https://x.example/3"),
        rdf_item('<title>t</title><guid isPermaLink="false">g4</guid>', "https://x.example/4"),
        rdf_item("<title>t</title><link>https://x.example/l5</link>", "https://x.example/5"),
        rdf_item("<title>t</title>", "  spaced about  "),
    ),
    "rdf: cdata": rdf(
        rdf_item("<title><![CDATA[A <em>b</em> & c]]></title><link><![CDATA[https://x.example/?a=1&b=2]]></link>"
                 "<description><![CDATA[<p>x</p>]]></description><content:encoded><![CDATA[<p>full</p>]]>"
                 "</content:encoded><dc:creator><![CDATA[Staff]]></dc:creator>"),
    ),
    "rdf: image and textinput beside the channel": rdf(
        "<image rdf:about='i'><title>Img</title><url>/logo.png</url><link>https://i.example/</link></image>",
        rdf_item("<title>x</title>"),
        "<textinput rdf:about='t'><title>TI</title><description>d</description><name>q</name>"
        "<link>https://t.example/</link></textinput>",
        channel='<channel><title>Chan</title><image rdf:resource="i"/><dc:title>after image</dc:title>'
        '<textinput rdf:resource="t"/><link>https://c.example/</link></channel>',
    ),
    "rdf: image before the channel hides its title": rdf(
        rdf_item("<title>x</title>"),
        before="<image><title>Img</title><url>u</url></image>",
    ),
    "rdf: empty textinput title hides nothing": rdf(
        rdf_item("<title>x</title>"),
        before="<textinput><title> </title><name>q</name></textinput>",
    ),
    "rdf: item before the channel hides its title": rdf(before=rdf_item("<title>first</title>")),
    "rdf: items inside the channel": rdf(
        channel=f"<channel>{CHANNEL}{rdf_item('<title>in</title><link>https://x.example/in</link>')}</channel>",
    ),
    "rdf: modules and lists": rdf(
        rdf_item("<title>t</title><slash:comments>4</slash:comments><syn:updatePeriod>x</syn:updatePeriod>"
                 "<taxo:topics><rdf:Bag><rdf:li rdf:resource='https://x.example/topic'/></rdf:Bag></taxo:topics>"
                 '<admin:generatorAgent rdf:resource="https://g.example/"/><media:title>m</media:title>'
                 "<category>c</category>"),
        "<rdf:Description rdf:about='x'><rdf:value>v</rdf:value></rdf:Description>",
        channel=f"<channel>{CHANNEL}<syn:updatePeriod>hourly</syn:updatePeriod><items><rdf:Bag>"
        "<rdf:li resource='https://x.example/1'/><rdf:li>text</rdf:li></rdf:Bag></items>"
        '<admin:errorReportsTo rdf:resource="mailto:x@y.example"/></channel>',
        root=f'{RDF_NS} {NS} xmlns:syn="http://purl.org/rss/1.0/modules/syndication/" '
        'xmlns:taxo="http://purl.org/rss/1.0/modules/taxonomy/" xmlns:admin="http://webns.net/mvcb/"',
    ),
    "rdf: attributes on the root": rdf(
        rdf_item("<title>t</title><link>l</link>"), root=f'{RDF_NS} {NS} xml:lang="fr" xml:base="https://r.example/"'
    ),
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
    "rdf 0.90": b'<?xml version="1.0"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
    b'xmlns="http://my.netscape.com/rdf/simple/0.9/"><channel><title>a</title></channel>'
    b"<item><title>x</title></item></rdf:RDF>",
    "rdf: atom namespace declared first (feedparser's version atom10)": rdf(
        rdf_item("<title>x</title>"), root='xmlns:atom="http://www.w3.org/2005/Atom" ' + RDF_NS
    ),
    "rdf: RSS 1.0 namespace declared below the root": (
        b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><channel xmlns="http://purl.org/rss/1.0/">'
        b"<title>a</title></channel><item xmlns='http://purl.org/rss/1.0/'><title>x</title></item></rdf:RDF>"
    ),
    "rdf: two channels": rdf(rdf_item("<title>x</title>"), channel=RDF_CHANNEL * 2),
    "rdf: title beside the channel": rdf(rdf_item("<title>x</title>"), "<title>loose</title>"),
    "rdf: license beside the channel": rdf(
        rdf_item("<title>x</title>"),
        "<cc:License rdf:about='https://l.example/'><cc:permits rdf:resource='x'/></cc:License>",
        root=f'{RDF_NS} xmlns:cc="http://web.resource.org/cc/"'
    ),
    # the link would even replay right (feedparser sets the feed link from there too): refused all the same
    "rdf: handled element inside an unknown one beside the channel": rdf(
        '<rdf:Description><link href="https://elsewhere.example/"/></rdf:Description>',
        rdf_item("<title>x</title>"),
    ),
    "rdf: image title with attributes beside the channel": rdf(
        '<image><title xml:base="https://b.example/">Img</title></image>', rdf_item("<title>x</title>")
    ),
    "rdf: image in an item": rdf(rdf_item("<title>x</title><image><title>i</title></image>")),
    "rdf: item dates as attributes": rdf('<item lastmod="2024-05-01"><title>x</title></item>'),
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
    entry = (
        "<title>Markets rally</title><link>https://news.example/a?utm=1&amp;x=2</link>"
        "<dc:creator>Staff</dc:creator><dc:date>2026-11-02T10:00:00+00:00</dc:date><dc:subject>world</dc:subject>"
        "<description>&lt;p&gt;Lead.&lt;/p&gt;</description><content:encoded><![CDATA[<p>Full text.</p>]]>"
        "</content:encoded>"
    )
    body = rdf(rdf_item(entry), rdf_item(entry, "https://news.example/2"))
    assert assert_same(body, {"content-type": "application/rdf+xml"})


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


def _rdf_sibling(rng: random.Random) -> str:
    """An image or textinput beside an RSS 1.0 channel, its title empty or not."""
    kind, extra = rng.choice([("image", "<url>/i.png</url>"), ("textinput", "<name>q</name>")])
    return f"<{kind}><title>{rng.choice(TEXTS[:3])}</title>{extra}<link>https://i.example/</link></{kind}>"


@pytest.mark.parametrize("seed", range(4))
def test_random_rdf_documents(seed: int) -> None:
    """RSS 1.0 documents from the RSS shapes plus RDF's own: rdf:about, dc:title and dc:description,
    items, image and textinput before, beside or inside the channel."""
    rng = random.Random(seed)
    taken = 0
    for _ in range(60):
        items = [
            rdf_item(
                "".join(
                    rng.choice([_piece(rng, False), f"<dc:title>{rng.choice(TEXTS)}</dc:title>",
                                f"<dc:description>{rng.choice(TEXTS)}</dc:description>"])
                    for _ in range(rng.randint(0, 6))
                ),
                rng.choice([None, "", "https://x.example/about", "rel/about", "urn:x:1", "caf\u00e9"]),
            )
            for _ in range(rng.randint(0, 4))
        ]
        head = "".join(_piece(rng, False) for _ in range(rng.randint(0, 3)))
        inside = items[:1] if rng.random() < 0.2 else []  # sloppy publishers: an item inside the channel
        channel = f'<channel rdf:about="c">{head}{"".join(inside)}</channel>'
        front = [items.pop() for _ in range(min(len(items), rng.randint(0, 1)))]  # an item before the channel
        side = [_rdf_sibling(rng) for _ in range(rng.randint(0, 2))]
        split = rng.randint(0, len(side))  # image, textinput: some before the channel, the rest after
        body = rdf(*items[len(inside):], *side[split:], channel=channel, before="".join(front + side[:split]))
        headers = rng.choice([{"content-type": "application/rdf+xml"}, {}])
        taken += assert_same(body, headers, rng.choice([None, "https://f.example/x/feed"]))
    assert taken >= 40  # most random documents stay on the fast path, so the comparison means something
