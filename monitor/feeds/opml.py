"""OPML <-> feed sources. Nested outlines without a feed URL become categories ("World/Middle East").

OPML files come from anywhere (exports of other readers, colleagues' lists), so the parser
is defusedxml (no DTDs, no entities, no external resources) and every outline is checked:
only http(s) URLs with a host are accepted; everything else is reported, never opened.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from monitor.errors import OpmlError
from monitor.feeds.guard import check_url
from monitor.types import FeedSource

MAX_OPML_BYTES = 20_000_000
MAX_DEPTH = 32
MAX_TITLE = 300


@dataclass(frozen=True)
class Rejected:
    url: str
    reason: str
    title: str | None = None


@dataclass
class OpmlImport:
    sources: list[FeedSource] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


def _clean(text: str | None, limit: int = MAX_TITLE) -> str | None:
    if text is None:
        return None
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    text = " ".join(text.split())[:limit]
    return text or None


def parse_opml(data: bytes) -> OpmlImport:
    """Read OPML bytes into feed sources plus what was rejected and why. Pure."""
    if len(data) > MAX_OPML_BYTES:
        raise OpmlError(f"OPML file is {len(data):,} bytes; the limit is {MAX_OPML_BYTES:,}")
    try:
        root = SafeET.fromstring(data, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise OpmlError(f"OPML refused: it declares a DTD or entities ({type(exc).__name__})") from None
    except ET.ParseError as exc:
        raise OpmlError(f"malformed OPML: {exc}") from None
    if _local(root.tag) != "opml":
        raise OpmlError(f"not an OPML document (root element <{_local(root.tag)}>)")
    body = next((c for c in root if _local(c.tag) == "body"), None)
    if body is None:
        raise OpmlError("OPML has no <body>")
    result = OpmlImport()
    seen: dict[str, str] = {}
    _walk(body, [], 0, result, seen)
    return result


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _walk(node: ET.Element, path: list[str], depth: int, result: OpmlImport, seen: dict[str, str]) -> None:
    for outline in node:
        if _local(outline.tag) != "outline":
            continue
        title = _clean(outline.get("title") or outline.get("text"))
        url = (outline.get("xmlUrl") or outline.get("xmlurl") or "").strip()
        if not url:
            if depth >= MAX_DEPTH:
                result.rejected.append(Rejected("", f"outlines nested deeper than {MAX_DEPTH} levels", title))
                continue
            _walk(outline, [*path, (title or "untitled").replace("/", "-")], depth + 1, result, seen)
            continue
        problem = check_url(url)
        if problem:
            result.rejected.append(Rejected(url[:500], problem.detail, title))
            continue
        if url in seen:
            result.rejected.append(Rejected(url, f"duplicate of the outline titled {seen[url]!r}", title))
            continue
        seen[url] = title or url
        category = "/".join(path) or _category_attr(outline.get("category"))
        site = (outline.get("htmlUrl") or "").strip()
        result.sources.append(FeedSource(url=url, title=title, category=category or None,
                                         site_url=site if site and not check_url(site) else None))


def _category_attr(value: str | None) -> str | None:
    """OPML 2.0 `category`: comma-separated slash paths; the first path is the category."""
    if not value:
        return None
    first = value.split(",")[0].strip().strip("/")
    return _clean(first)


def write_opml(feeds: list[FeedSource], title: str = "monitor feeds", now: datetime | None = None) -> bytes:
    """OPML 2.0 with one nested outline per category level, so parse_opml(write_opml(x)) == x."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    ET.SubElement(head, "dateCreated").text = format_datetime(now or datetime.now(UTC))
    body = ET.SubElement(root, "body")
    folders: dict[tuple[str, ...], ET.Element] = {(): body}
    for feed in feeds:
        parts = tuple(p for p in (feed.category or "").split("/") if p)
        for i in range(1, len(parts) + 1):
            if parts[:i] not in folders:
                folders[parts[:i]] = ET.SubElement(folders[parts[:i - 1]], "outline",
                                                   text=parts[i - 1], title=parts[i - 1])
        attrs = {"type": "rss", "text": feed.title or feed.url, "xmlUrl": feed.url}
        if feed.title:
            attrs["title"] = feed.title
        if feed.site_url:
            attrs["htmlUrl"] = feed.site_url
        ET.SubElement(folders[parts], "outline", attrs)
    ET.indent(root)
    document = ET.tostring(root, encoding="unicode").encode("utf-8")
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + document + b"\n"
