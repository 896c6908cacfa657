"""OPML import/export: categories, round-trip, and every kind of bad outline."""
from __future__ import annotations

import pytest

from monitor.errors import OpmlError
from monitor.feeds.opml import parse_opml, write_opml
from monitor.types import FeedSource
from tests.support import DATA


def test_nested_outlines_become_categories_and_bad_ones_are_reported():
    result = parse_opml((DATA / "opml_nested.opml").read_bytes())
    assert [(s.url, s.title, s.category) for s in result.sources] == [
        ("https://wire-one.example/rss", "Wire One", "World"),
        ("https://tehran-daily.example/feed", "Tehran Daily", "World/Middle East"),
        ("http://loose.example/atom.xml", "Loose feed", None),
        ("https://tagged.example/rss", "Tagged", "Tech/Policy"),
    ]
    assert result.sources[0].site_url == "https://wire-one.example/"
    rejected = {r.title: r.reason for r in result.rejected}
    assert set(rejected) == {"Dup of wire", "Local file", "Script", "Exec", "Pipe", "No host", "Gopher"}
    assert "duplicate" in rejected["Dup of wire"]
    for title in ("Local file", "Script", "Exec", "Gopher"):
        assert "scheme" in rejected[title], rejected[title]


def test_round_trip():
    feeds = [FeedSource("https://a.example/rss", "A & B <news>", "World/Middle East", "https://a.example/"),
             FeedSource("https://b.example/rss", "B", "World"),
             FeedSource("https://c.example/rss?x=1&y=2", None, None)]
    again = parse_opml(write_opml(feeds))
    assert again.rejected == []
    assert [(s.url, s.title, s.category, s.site_url) for s in again.sources] == [
        ("https://a.example/rss", "A & B <news>", "World/Middle East", "https://a.example/"),
        ("https://b.example/rss", "B", "World", None),
        ("https://c.example/rss?x=1&y=2", "https://c.example/rss?x=1&y=2", None, None)]


@pytest.mark.parametrize("data,needle", [
    (b"<opml><body><outline", "malformed"),
    (b"", "malformed"),
    (b"<html><body/></html>", "not an OPML"),
    (b"<opml version='2.0'><head/></opml>", "no <body>"),
    (b'<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
     b"<opml><body><outline text='&b;' xmlUrl='https://x.example/'/></body></opml>", "DTD or entities"),
    (b'<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
     b"<opml><body><outline text='&x;' xmlUrl='https://x.example/'/></body></opml>", "DTD or entities"),
])
def test_malformed_documents(data, needle):
    with pytest.raises(OpmlError, match=needle):
        parse_opml(data)


def test_ten_thousand_outlines_are_all_imported():
    """A large subscription list comes through whole: every outline, in order, under its category."""
    body = "".join(f'<outline text="F{i}" xmlUrl="https://host{i % 50}.example/feed/{i}"/>' for i in range(10_000))
    data = f"<opml version='2.0'><body><outline text='Bulk'>{body}</outline></body></opml>".encode()
    result = parse_opml(data)
    assert len(result.sources) == 10_000 and not result.rejected
    assert [s.url for s in result.sources] == [f"https://host{i % 50}.example/feed/{i}" for i in range(10_000)]
    assert {s.category for s in result.sources} == {"Bulk"}
