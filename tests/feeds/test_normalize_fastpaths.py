"""The sanitiser's short cuts give what the general code gives, on any input.

Simple markup is tokenized without html.parser, and plain absolute URLs skip urljoin and
urlsplit. Each is checked here against the general path it stands for: the same handler
calls and the same output for thousands of random documents, the same URL for random URLs.
"""
from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

import monitor.feeds.normalize as normalize
from monitor.feeds.normalize import html_to_text, safe_url, sanitize_html_with_text

FEEDS = Path(__file__).resolve().parents[1] / "data" / "feeds"

# --- markup ----------------------------------------------------------------------------------

# Pieces of markup, simple and not: random documents are made of them.
PIECES = [
    "<p>", "</p>", "<P CLASS='x'>", "<br>", "<br/>", "<br />", "<hr/>", "<div id=\"a\" >", "</div >",
    '<a href="https://example.com/a?b=1&amp;c=2">', '<a href="/rel/path" title="T &quot;q&quot;">',
    "<a href='javascript:alert(1)'>", "</a>", "<a href=unquoted>", '<a href="x"/>', "<a b c>",
    '<img src="http://example.com/i.png" width="1" height="1">', '<img src="/i.png" alt="">',
    '<img alt="a>b" src="https://example.com/x.png"/>', "<em>", "</em>", "<strong>", "</STRONG>",
    "<table>", "<tr>", "<td>", "</td>", "</tr>", "</table>", "<ul>", "<li>", "</li>", "</ul>",
    "<script>", "</script>", "<script>if (a<b) { x = '<p>'; }</script>", "<style>p{}</style>",
    "<iframe src='https://example.com/e'>", "</iframe>", "<iframe><b>inside</b></iframe>",
    "<textarea><i>t</i></textarea>", "<title>T</title>", "<noscript><p>n</p></noscript>",
    "<!-- a comment -->", "<!--", "-->", "<!DOCTYPE html>", "<?php x ?>", "<![CDATA[c]]>",
    "<o:p>", "</o:p>", "<a\thref=\"https://example.com/tab\">", "<span\nclass=\"n\">", "<a b==\"c\">",
    "<a b='c'd='e'>", "<x-custom a='1'>", "<h1>", "</h1>", "</br>", "</>", "< p>", "<", ">", "&",
    "&amp;", "&lt;p&gt;", "&#8203;", "&#x27;", "&nbsp;", "&copy", "&unknown;", "AT&T", "x &y",
    "text", " words and more words ", "\n", "\t", "Zoë", "日本", "\u200b", "\r\n",
]


def random_document(rnd: random.Random) -> str:
    return "".join(rnd.choice(PIECES) for _ in range(rnd.randint(1, 25)))


class Recorder(normalize._Sanitizer):
    """The sanitiser, noting every handler call it receives."""

    def __init__(self) -> None:
        super().__init__(None, "https://feeds.example/path/feed.xml")
        self.calls: list[tuple] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.calls.append(("start", tag, list(attrs)))
        super().handle_starttag(tag, attrs)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.calls.append(("startend", tag, list(attrs)))
        super().handle_startendtag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        self.calls.append(("end", tag))
        super().handle_endtag(tag)

    def handle_data(self, data: str) -> None:
        self.calls.append(("data", data))
        super().handle_data(data)


def html_parser_calls(document: str) -> list[tuple]:
    """The calls html.parser itself makes: feed() then close(), as _run does for markup it
    does not hand to the simple tokenizer."""
    parser = Recorder()
    parser.feed(document)
    parser.close()
    return parser.calls


def tokenized_calls(document: str) -> tuple[list[tuple], int]:
    """The simple tokenizer's calls, then html.parser's for what it leaves; and how far it read."""
    parser = Recorder()
    done = normalize._tokenize_simple(parser, document)
    parser.feed(document[done:])
    parser.close()
    return parser.calls, done


def test_simple_markup_reaches_the_handlers_as_html_parser_sends_it() -> None:
    """Same calls, same order, same arguments. Documents without an unfinished construct at the
    end only: there _run goes on past where html.parser's feed() stops, which is tested below."""
    rnd = random.Random(20261203)
    whole = partly = compared = 0
    for _ in range(4000):
        document = random_document(rnd)
        if document.rstrip().endswith(("<", "<!--", "&", "&copy")):
            continue
        calls, done = tokenized_calls(document)
        assert calls == html_parser_calls(document), document
        compared += 1
        whole += done == len(document)
        partly += 0 < done < len(document)
    # the comparison means something only if the tokenizer read many documents, whole and in part
    assert compared > 3000
    assert whole > 300
    assert partly > 1000


@pytest.mark.parametrize("max_len", [None, 40, 300])
def test_sanitised_html_and_text_are_those_of_html_parser(monkeypatch: pytest.MonkeyPatch,
                                                          max_len: int | None) -> None:
    """Whole documents through sanitize_html_with_text and html_to_text: the same output with the
    simple tokenizer as with html.parser alone, unfinished constructs and truncation included."""
    rnd = random.Random(max_len or 7)
    documents = [random_document(rnd) for _ in range(3000)]
    base = "https://feeds.example/path/feed.xml"

    def outputs() -> list[tuple[tuple[str, str], str]]:
        return [(sanitize_html_with_text(d, max_len, base), html_to_text(d, max_len)) for d in documents]

    fast = outputs()
    monkeypatch.setattr(normalize, "_tokenize_simple", lambda parser, data: 0)
    assert fast == outputs()


def test_publisher_feeds_sanitise_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    """The markup publishers send (the real feeds kept in tests/data/feeds), field by field."""
    from monitor.feeds.parse import parse_feed

    bodies = [p.read_bytes() for p in sorted(FEEDS.glob("*.xml"))]
    assert len(bodies) >= 10

    def parsed() -> list:
        from datetime import UTC, datetime

        at = datetime(2026, 12, 1, tzinfo=UTC)
        return [parse_feed(b, {}, at, base_url="https://feeds.example/feed.xml") for b in bodies]

    taken: list[bool] = []
    tokenize: Callable[[normalize._Sanitizer, str], int] = normalize._tokenize_simple

    def counting(parser: normalize._Sanitizer, data: str) -> int:
        done = tokenize(parser, data)
        taken.append(done == len(data))
        return done

    monkeypatch.setattr(normalize, "_tokenize_simple", counting)
    fast = parsed()
    assert sum(taken) > 100  # most publisher markup is simple
    monkeypatch.setattr(normalize, "_tokenize_simple", lambda parser, data: 0)
    assert fast == parsed()


# --- URLs ------------------------------------------------------------------------------------


def joined(value: str, base: str | None) -> str | None:
    """safe_url without its short cut: always joined to the base, then split."""
    return normalize._resolved(normalize._as_browsers_read(value), base) if value else None


BASES = [None, "", "http://feeds.example/p/feed.xml", "https://example.com/x/", "ftp://example.com/",
         "http://[broken/", "https://example.com:8080", "HTTP://EXAMPLE.COM/"]


def test_plain_urls_are_what_joining_gives() -> None:
    rnd = random.Random(11)
    starts = ["http://", "https://", "HTTP://", "http:/", "//", "", "javascript:"]
    host = "ab.-0Z:@["
    rest = "-aZ09._~!$&'()*+,=:@%/?#;[]\\ \t\xe9"
    plain = 0
    for _ in range(60000):
        value = rnd.choice(starts) + "".join(rnd.choice(host) for _ in range(rnd.randint(0, 6)))
        value += "".join(rnd.choice(rest) for _ in range(rnd.randint(0, 10)))
        base = rnd.choice(BASES)
        assert safe_url(value, base) == joined(value, base), (value, base)
        plain += normalize._PLAIN_URL.fullmatch(value) is not None
    assert plain > 300  # the short cut was taken often enough to be tested


@pytest.mark.parametrize(
    ("value", "base", "expected"),
    [
        ("https://example.com/a/b?c=1", "http://feeds.example/", "https://example.com/a/b?c=1"),
        ("http://example.com/a?", "http://feeds.example/", "http://example.com/a"),  # urljoin drops "?"
        ("HTTP://example.com/a", "http://feeds.example/", "http://example.com/a"),  # scheme lower-cased
        ("https://example.com/a", "http://[broken/", None),  # urljoin refuses the base
        ("https://example.com/a;p", "https://feeds.example/", "https://example.com/a;p"),
    ],
)
def test_urls_near_the_plain_ones(value: str, base: str, expected: str | None) -> None:
    assert safe_url(value, base) == expected
