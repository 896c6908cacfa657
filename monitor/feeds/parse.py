"""Feed documents (bytes + response headers) -> ParsedFeed: the only feedparser caller.

The bozo policy is translated here, once:

* a document that declares entities (`<!ENTITY` after a DOCTYPE) is refused before any
  parser sees it (`entities`): no real feed needs one, and it is how billion-laughs and
  external-entity (file / network read) attacks start;
* no feed version and no entries (an HTML login page, an empty body, JSON that is not a
  JSON Feed) is `not_a_feed`;
* recoverable problems (wrong charset, non-XML content type, ill-formed XML that the
  lenient parser still read) in a document that yields entries become
  `ParsedFeed.warning`, and the entries are kept.

Bytes are decoded here rather than by feedparser, because feedparser trusts a declared
single-byte charset (iso-8859-1 always "works") and silently turns UTF-8 into mojibake.
feedparser only ever receives a BytesIO and response headers, never a URL or path, and
its own HTML sanitiser is off: normalize's allow-list sanitiser is stricter (feedparser's
keeps `javascript:` links) and feedparser's pass tripled the parse time. JSON Feed 1.x,
which feedparser 6 does not read, goes to jsonfeed's small reader. Plain RSS 2.0, RSS 1.0 and Atom
1.0 documents are first offered to fastfeed, which reads them as feedparser would at a
fraction of the cost and declines (so feedparser runs) whatever it does not fully replay.
Every reader returns a RawFeed (rawfeed.py); the entries are normalised here, alike.
"""
from __future__ import annotations

import codecs
import hashlib
import io
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import feedparser

from monitor.errors import FailureReason, ParseError
from monitor.types import EntryData, ParsedFeed, ParserInfo

from .jsonfeed import read_json_feed
from .normalize import (
    canonical_url,
    clean_text,
    html_to_text,
    one_line,
    sanitize_html_with_text,
    text_to_html,
    title_text,
)
from .rawfeed import MAX_FIELD, MAX_TITLE, MAX_WARNING, RawEntry, RawFeed, parse_date

try:  # fastfeed uses feedparser's internals: a release that moved them is read by feedparser alone
    from . import fastfeed
except Exception:  # pragma: no cover - depends on the installed feedparser
    fastfeed = None  # type: ignore[assignment]


def parser_info() -> ParserInfo:
    """The installed feedparser and whether the fast reader is on for it (`monitor status`)."""
    from .normalize import COMPILED

    if fastfeed is None:  # pragma: no cover - depends on the installed feedparser
        return ParserInfo(feedparser.__version__, False, (), COMPILED)
    return ParserInfo(feedparser.__version__, fastfeed.ENABLED, tuple(fastfeed.VERIFIED_FEEDPARSER), COMPILED)


MAX_AUTHOR = 200
MAX_ID = 2_048
FUTURE_SLACK = timedelta(days=1)  # a date further ahead than this is a publisher's mistake

_XML_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")  # never legal in XML 1.0
_DOCTYPE = re.compile(r"<!\s*DOCTYPE", re.I)
_ENTITY = re.compile(r"<!\s*ENTITY", re.I)
_XML_DECL_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""")
_XML_DECL_ENCODING_TEXT = re.compile(r"""^(\s*<\?xml[^>]*?encoding\s*=\s*)(["'])[A-Za-z0-9._:-]*\2""")
_CHARSET = re.compile(r"""charset\s*=\s*["']?([A-Za-z0-9._:-]+)""", re.I)
_BOMS = (
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
)
# "<?" or "<" in UTF-16/32 without a BOM (XML spec, appendix F).
_NO_BOM = (
    (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00\x00\x00", "utf-32-le"),
    (b"\x00<\x00", "utf-16-be"),
    (b"<\x00", "utf-16-le"),
)
# Browsers read these labels as windows-1252; real feeds that say latin-1 mean it too.
_AS_CP1252 = {"iso8859-1", "ascii"}
_HTML_TYPES = ("text/html", "application/xhtml+xml")


def _cp1252_fallback(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeDecodeError):  # registered for decoding only
        raise error
    bad = error.object[error.start : error.end]
    return bad.decode("cp1252", errors="replace"), error.end


codecs.register_error("monitor-cp1252", _cp1252_fallback)


def _codec(label: str | None) -> str | None:
    if not label:
        return None
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return None
    return "cp1252" if name in _AS_CP1252 else name


def decode_body(body: bytes, headers: Mapping[str, str]) -> tuple[str, str | None]:
    """Decode a feed body; return the text and a warning when the declared charset was wrong.

    Order: byte-order mark; a declared UTF-16/32; valid UTF-8 (multi-byte UTF-8 is very
    unlikely to occur by chance, so it beats a declared single-byte charset); the charset
    from the header, then from the XML declaration; finally UTF-8 with windows-1252 for the
    bytes that are not UTF-8 (the usual "utf-8 declared, cp1252 pasted" feed).
    """
    header_label = _CHARSET.search(headers.get("content-type", ""))
    xml_label = _XML_DECL_ENCODING.match(body[:1024])
    declared = [label for label in (
        header_label.group(1) if header_label else None,
        xml_label.group(1).decode("ascii") if xml_label else None,
    ) if label]
    codecs_declared = [c for c in (_codec(label) for label in declared) if c]
    for bom, name in _BOMS:
        if body.startswith(bom):
            return body[len(bom) :].decode(name, errors="replace"), None
    for marker, name in _NO_BOM:
        if body.startswith(marker):
            return body.decode(name, errors="replace"), None
    for name in codecs_declared:
        if name.startswith(("utf-16", "utf-32")):
            try:
                return body.decode(name), None
            except UnicodeDecodeError:
                pass
    said = declared[0] if declared else "utf-8"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        if any(c != "utf-8" for c in codecs_declared) and not body.isascii():
            return text, f"CharacterEncodingOverride: declared {said}, parsed as utf-8"
        return text, None
    for name in codecs_declared:
        if name == "utf-8":
            continue
        for attempt in (name, "latin-1") if name == "cp1252" else (name,):
            try:
                return body.decode(attempt), None
            except UnicodeDecodeError:
                continue
    text = body.decode("utf-8", errors="monitor-cp1252")
    return text, f"CharacterEncodingOverride: declared {said}, parsed as windows-1252 where not utf-8"


_CHAR_REF = re.compile(r"&#(?:[xX]([0-9a-fA-F]+)|([0-9]+));?")


def _code_point(match: re.Match[str]) -> int:
    digits = match.group(1) or match.group(2)
    if len(digits) > 8:
        return -1
    return int(digits, 16) if match.group(1) else int(digits)


def _xml_safe(cp: int) -> bool:
    return cp in (0x9, 0xA, 0xD) or 0x20 <= cp < 0xD800 or 0xE000 <= cp < 0xFFFE or 0x10000 <= cp <= 0x10FFFF


def fix_char_refs(text: str) -> str:
    """Rewrite character references that no XML parser accepts.

    feedparser's lenient parser crashes on `&#xD800;` or `&#99999999;` (it calls chr() and
    encodes), and expat rejects `&#0;`, so one bad reference would fail or degrade a whole
    feed. Surrogate pairs written as two references (a JavaScript habit) become the real
    character; other surrogates and out-of-range values become U+FFFD; references to
    control characters are dropped. Valid references are left exactly as written.
    """
    if "&#" not in text:
        return text
    out: list[str] = []
    last = 0
    high_end = -1  # where an unpaired high-surrogate reference ended, its U+FFFD last in `out`
    high = 0
    for match in _CHAR_REF.finditer(text):
        cp = _code_point(match)
        written = match.group(0)
        if _xml_safe(cp) and written.endswith(";") and not written.startswith("&#X"):
            continue
        if 0xDC00 <= cp <= 0xDFFF and match.start() == high_end:
            out[-1] = f"&#x{0x10000 + ((high - 0xD800) << 10) + (cp - 0xDC00):x};"
            last, high_end = match.end(), -1
            continue
        out.append(text[last : match.start()])
        last = match.end()
        if 0xD800 <= cp <= 0xDBFF:
            high, high_end = cp, match.end()
            out.append("&#xfffd;")
        elif _xml_safe(cp):
            out.append(f"&#x{cp:x};")
        elif 0 <= cp < 0x20:
            out.append("")  # a control character has no place in text
        else:
            out.append("&#xfffd;")
    out.append(text[last:])
    return "".join(out)


def _refuse_entities(text: str) -> None:
    """Refuse any entity declaration after a DOCTYPE: only a DTD can declare one.

    Checked on the decoded text that the parser will get, so UTF-16 and control-character
    tricks (`<!EN\\0TITY`) cannot hide a declaration; deliberately broader than "the
    prolog" so a comment or quoted `<a` in the DTD cannot end our scan early.
    """
    doctype = _DOCTYPE.search(text)
    if doctype and _ENTITY.search(text, doctype.start()):
        raise ParseError(FailureReason.ENTITIES, "the document declares XML entities (<!ENTITY>); refused")


def parse_feed(
    body: bytes,
    headers: Mapping[str, str],
    fetched_at: datetime,
    *,
    max_entries: int = 1000,
    max_field: int = MAX_FIELD,
    base_url: str | None = None,
) -> ParsedFeed:
    """Parse one fetched document into a ParsedFeed, or raise ParseError(reason, detail).

    `headers` are the response headers (any case); `fetched_at` replaces missing,
    unparseable and future dates; `base_url` (the feed URL) resolves relative links when
    the response has no Content-Location. Reasons: `not_a_feed`, `entities`,
    `parser_error`. Never raises anything else.
    """
    try:
        return _parse(body, headers, fetched_at, max_entries, max_field, base_url)
    except ParseError:
        raise
    except Exception as exc:  # a bug or a parser crash must stay one feed's problem
        detail = one_line(f"{type(exc).__name__}: {exc}", MAX_WARNING)
        raise ParseError(FailureReason.PARSER_ERROR, detail) from None


def _parse(
    body: bytes,
    headers: Mapping[str, str],
    fetched_at: datetime,
    max_entries: int,
    max_field: int,
    base_url: str | None,
) -> ParsedFeed:
    if fetched_at.tzinfo is None:
        fetched_at = fetched_at.replace(tzinfo=UTC)
    fetched_at = fetched_at.astimezone(UTC)
    headers = {str(k).lower(): str(v) for k, v in headers.items()}
    if not body or not body.strip():
        raise ParseError(FailureReason.NOT_A_FEED, "empty body")
    text, warning = decode_body(body, headers)
    # Whitespace before "<?xml" is common and makes expat give up on the whole document.
    text = _XML_CONTROL.sub("", text).lstrip("\ufeff \t\r\n")
    if text.startswith(("{", "[")):
        title, link, ttl, raws, version_warning = read_json_feed(text)
    else:
        text = fix_char_refs(text)
        _refuse_entities(text)  # after every rewrite: the check sees what the parser gets
        title, link, ttl, raws, version_warning = _read_with_feedparser(text, headers, base_url)
    warnings = [w for w in (warning, version_warning) if w]
    entries: list[EntryData] = []
    seen: set[str] = set()
    for raw in raws:
        entry = _build_entry(raw, fetched_at, max_field)
        if entry.key in seen:
            continue  # the first copy wins: feeds list newest first
        seen.add(entry.key)
        entries.append(entry)
        if len(entries) >= max_entries:
            if len(raws) > max_entries:
                warnings.append(f"truncated: kept the first {max_entries} entries")
            break
    return ParsedFeed(
        title=title,
        link=link,
        ttl=ttl,
        entries=tuple(entries),
        warning="; ".join(warnings)[:MAX_WARNING] or None,
    )


# --- feedparser ------------------------------------------------------------------------


def _read_with_feedparser(
    text: str, headers: Mapping[str, str], base_url: str | None, *, fast: bool = True
) -> RawFeed:
    """Read an XML feed; `fast` first tries fastfeed, which yields what feedparser would or nothing."""
    media_type = headers.get("content-type", "").split(";")[0].strip() or "application/xml"
    response_headers = {"content-type": f"{media_type}; charset=utf-8"}
    location = headers.get("content-location") or base_url
    if location:
        response_headers["content-location"] = location
    if headers.get("content-language"):
        response_headers["content-language"] = headers["content-language"]
    # The text is UTF-8 now: say so in the XML declaration too, or feedparser would
    # re-decode with the old label for non-XML content types.
    text = _XML_DECL_ENCODING_TEXT.sub(r'\1"utf-8"', text, count=1)
    data = text.encode("utf-8", errors="replace")
    read = fastfeed.read(data, response_headers) if fast and fastfeed is not None else None
    if read is not None:
        version, channel, found, problem = read
    else:
        # Sanitising and resolving relative links inside HTML are done by our sanitiser (with
        # the `base` feedparser reports per field): feedparser's passes triple the parse time.
        result = feedparser.parse(
            io.BytesIO(data),
            response_headers=response_headers,
            sanitize_html=False,
            resolve_relative_uris=False,
        )
        version = result.get("version") or ""
        found = result.get("entries") or []
        problem = result.get("bozo_exception") if result.get("bozo") else None
        channel = result.get("feed") or {}
    if not version and not found:
        detail = f"no feed version and no entries (content-type {media_type})"
        if problem is not None:
            detail += f"; {type(problem).__name__}: {problem}"
        raise ParseError(FailureReason.NOT_A_FEED, one_line(detail, MAX_WARNING))
    warning = one_line(f"{type(problem).__name__}: {problem}", MAX_WARNING) if problem is not None else None
    title = _fp_title(channel) or None
    return RawFeed(
        title,
        canonical_url(channel.get("link")),
        _ttl(channel.get("ttl")),
        [_fp_entry(e) for e in found],
        warning,
    )


def _fp_title(node: Mapping[str, Any]) -> str:
    detail = node.get("title_detail") or {}
    return title_text(node.get("title") or "", detail.get("type") in _HTML_TYPES, MAX_TITLE)


def _as_html(value: str, media_type: str | None) -> str:
    return value if media_type in _HTML_TYPES else text_to_html(value)


def _fp_entry(entry: dict[str, Any]) -> RawEntry:  # a FeedParserDict
    summary_type = (entry.get("summary_detail") or {}).get("type", "text/html")
    contents = [c for c in entry.get("content") or [] if c.get("value")]
    html_contents = [c for c in contents if c.get("type") in _HTML_TYPES]
    chosen = max(html_contents or contents, key=lambda c: len(c["value"])) if contents else {}
    content = _as_html(chosen.get("value", ""), chosen.get("type"))
    summary_detail = entry.get("summary_detail") or {}
    return RawEntry(
        id=entry.get("id") or None,
        link=entry.get("link") or None,
        title=entry.get("title") or "",
        title_is_html=(entry.get("title_detail") or {}).get("type") in _HTML_TYPES,
        summary_html=_as_html(entry.get("summary") or "", summary_type),
        content_html=content,
        author=entry.get("author") or None,
        published=_fp_date(entry, "published"),
        updated=_fp_date(entry, "updated"),
        base=chosen.get("base") or summary_detail.get("base") or None,
    )


def _fp_date(entry: dict[str, Any], name: str) -> datetime | None:
    # dict.get: FeedParserDict.get maps "published" to "updated" with a DeprecationWarning.
    raw = dict.get(entry, name)
    if not isinstance(raw, str) or not raw.strip():
        return None
    if raw.strip().isdigit() and len(raw.strip()) > 8:
        return None  # feedparser reads epoch seconds as a nonsense date; not a date format
    parsed = dict.get(entry, f"{name}_parsed")
    if isinstance(parsed, time.struct_time):
        try:
            return datetime(*parsed[:6], tzinfo=UTC)
        except (ValueError, OverflowError):
            return None
    return parse_date(raw)


def _ttl(value: Any) -> int | None:
    """RSS <ttl> in minutes, if it is a sane positive integer (at most a week)."""
    try:
        minutes = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return minutes if 0 < minutes <= 7 * 24 * 60 else None


# --- entries ---------------------------------------------------------------------------


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", errors="replace")).hexdigest()


def _build_entry(raw: RawEntry, fetched_at: datetime, max_field: int) -> EntryData:
    link = canonical_url(raw.link)
    title = title_text(raw.title, raw.title_is_html, MAX_TITLE)
    content_html, text = sanitize_html_with_text(raw.content_html, max_field, raw.base)
    if raw.summary_html == raw.content_html:  # feedparser copies content:encoded into summary
        summary_html, summary_text = content_html, text
    else:
        summary_html, summary_text = sanitize_html_with_text(raw.summary_html, max_field, raw.base)
    text = text or summary_text
    given_id = one_line(raw.id or "", MAX_ID)
    key = given_id or link or "hash:" + _digest(title, summary_html)
    author = raw.author
    if author and ("<" in author or "&" in author):
        author = html_to_text(author)
    latest = fetched_at + FUTURE_SLACK
    published = raw.published or raw.updated
    if published is None or published > latest:
        published = fetched_at
    updated = raw.updated if raw.updated is not None and raw.updated <= latest else None
    return EntryData(
        key=key,
        guid=given_id or link or key,
        link=link,
        title=title,
        summary_html=summary_html,
        content_html=content_html,
        text=clean_text(text),
        author=one_line(author or "", MAX_AUTHOR) or None,
        published=published,
        updated=updated,
        content_hash=_digest(title, link or "", summary_html, content_html),
    )
