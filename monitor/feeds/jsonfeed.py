"""JSON Feed 1.0 / 1.1 (https://jsonfeed.org/version/1.1) -> RawFeed; any other JSON is not a feed.

feedparser 6 does not read JSON Feed, so this small reader maps it to the records the XML
readers produce; parse.py hands it every document that starts with `{` or `[` once decoded,
and normalises its entries as it does theirs. Values of the wrong JSON type are treated as
missing rather than refused: one odd field must not cost a feed its entries.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from monitor.errors import FailureReason, ParseError

from .normalize import canonical_url, one_line, text_to_html
from .rawfeed import MAX_TITLE, MAX_WARNING, RawEntry, RawFeed, parse_date

VERSION_PREFIX = "https://jsonfeed.org/version/"


def read_json_feed(text: str) -> RawFeed:
    """Read a decoded JSON Feed document, or raise ParseError(NOT_A_FEED)."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ParseError(FailureReason.NOT_A_FEED, one_line(f"invalid JSON: {exc}", MAX_WARNING)) from None
    version = doc.get("version") if isinstance(doc, dict) else None
    items = doc.get("items") if isinstance(doc, dict) else None
    if not (isinstance(version, str) and version.startswith(VERSION_PREFIX)):
        raise ParseError(FailureReason.NOT_A_FEED, "JSON document that is not a JSON Feed")
    if not isinstance(items, list):
        raise ParseError(FailureReason.NOT_A_FEED, "JSON Feed without an items list")
    raws = []
    for item in items:
        if not isinstance(item, dict):
            continue
        content = _str(item.get("content_html")) or text_to_html(_str(item.get("content_text")) or "")
        summary = _str(item.get("summary"))
        raws.append(
            RawEntry(
                id=_str(item.get("id")),
                link=_str(item.get("url")) or _str(item.get("external_url")),
                title=_str(item.get("title")) or "",
                title_is_html=False,
                summary_html=text_to_html(summary) if summary else "",
                content_html=content,
                author=_author(item) or _author(doc),
                published=parse_date(_str(item.get("date_published"))),
                updated=parse_date(_str(item.get("date_modified"))),
                base=_str(item.get("url")) or _str(doc.get("home_page_url")),
            )
        )
    title = one_line(_str(doc.get("title")) or "", MAX_TITLE) or None
    return RawFeed(title, canonical_url(_str(doc.get("home_page_url"))), None, raws, None)


def _str(value: Any) -> str | None:
    """A non-blank string, or a number written as one; None for anything else."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return str(value)
    return value if isinstance(value, str) and value.strip() else None


def _author(item: Mapping[str, Any]) -> str | None:
    """The first named author: 1.1's `authors` list, else 1.0's `author` object."""
    authors = item.get("authors")
    candidates = authors if isinstance(authors, list) else [item.get("author")]
    for author in candidates:
        if isinstance(author, dict) and _str(author.get("name")):
            return _str(author.get("name"))
    return None
