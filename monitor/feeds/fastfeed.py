"""A fast reader for well-formed RSS 2.0, RSS 1.0 and Atom 1.0 documents that yields what feedparser yields.

feedparser's strict parser is expat driving SAX handlers written in Python, and those
handlers are most of a poll cycle's parse time. This reader parses the same bytes with the
C ElementTree (the same expat, so the same well-formedness verdict) and replays, in
document order, what feedparser's handlers do to the fields parse.py reads: channel title,
link and ttl; entry id, link, title, summary, content, author, dates and base URL. It
replays feedparser's quirks, not the specs, so that nothing changes when a feed moves
between the paths: the first non-empty title wins, a deeper element never overrides a
shallower one, a second description becomes content, permalink guids and Atom ids fill a
missing link, `xml:base` leaks to later siblings when there is no base URL, RSS text that
looks like HTML becomes HTML. Input preparation, URL joining, dates and the HTML guess
are feedparser's own functions.

Accepted: an `<rss>` root (version 2.0, 0.91 or 0.92) holding one `<channel>`, an Atom 1.0
`<feed>`, or an RSS 1.0 `<rdf:RDF>` root that declares the RSS 1.0 namespace (and before it
neither Atom's nor RSS 0.90's: the first one declared is feedparser's version) holding at
most one `<channel>` and, beside it, items, image, textinput and elements without handlers.
Their elements are replayed here (core RSS and Atom, content:encoded, dc:creator/date/
title/description, media:title/description, itunes:author/summary/owner, an item's
rdf:about as its id) or kept away from those fields by feedparser (category, enclosure,
media:*, itunes:*, slash:*, wfw:*, RSS 1.0's items list, unknown namespaces). RSS 1.0 has
quirks of its own: feedparser has no handler for `rdf:RDF`, so items beside the channel are
read outside the feed, and an image or textinput there stores nothing but still moves the
title depth (its title can hide a later channel title, as an item's title does). `read`
returns None, and parse.py runs feedparser, on anything else: a parse error, a DOCTYPE,
another root (Atom 0.3, RSS 0.90) or RSS version, xhtml, base64 or other content types,
markup inside a text element, image or textinput in an entry, source, geo and Creative
Commons elements, prefixes that make feedparser rename elements, ambiguous attributes,
elements with handlers beside an RSS 1.0 channel. Falling back is always safe; guessing is
not.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, cast

import feedparser
from feedparser.api import StrictFeedParser
from feedparser.datetimes import _parse_date
from feedparser.encodings import convert_to_utf8
from feedparser.html import _cp1252
from feedparser.mixin import _FeedParserMixin
from feedparser.urls import _urljoin, make_safe_absolute_uri
from feedparser.util import FeedParserDict

# The replayed handlers are feedparser 6.0.14's; another release disables this reader until
# tests/feeds/test_fastfeed.py has compared the two again.
VERIFIED_FEEDPARSER = ("6.0.14",)
ENABLED = feedparser.__version__ in VERIFIED_FEEDPARSER
ATOM_NS = "http://www.w3.org/2005/Atom"
ROOTS = ("rss", "feed", "rdf_rdf")  # handler names: RSS 0.9x/2.0, Atom, RSS 1.0 (RDF)
RSS_VERSIONS = {"2.0": "rss20", "0.91": "rss091u", "0.92": "rss092"}

_MATCH = {uri.lower(): name for uri, name in _FeedParserMixin.namespaces.items()}
_MAPPED = {name.lower() for name in _MATCH.values() if name}
_HANDLERS = {n[7:] for n in dir(StrictFeedParser) if n.startswith("_start_")}
_HANDLERS |= {n[5:] for n in dir(StrictFeedParser) if n.startswith("_end_")}
# Namespaces for which feedparser adds attributes of its own (xmlns, xmlns:xlink).
_REFUSED_NS = {
    "http://www.w3.org/1999/xlink", "http://www.w3.org/1998/math/mathml", "http://www.w3.org/2000/svg"
}
_RELATIVE = _FeedParserMixin.can_be_relative_uri
_looks_like_html = _FeedParserMixin.looks_like_html
_map_type = _FeedParserMixin.map_content_type
_AMP_REF = re.compile("&([A-Za-z0-9_]+);")
_C1 = re.compile(f"[{chr(min(_cp1252))}-{chr(max(_cp1252))}]")  # what _cp1252 can change
_PROLOG_ITEM = re.compile(rb"\s*(?:<\?.*?\?>|<!--.*?-->)", re.DOTALL)
_DECLARATION = re.compile(rb"<!(?!--)")
_ROOT_START = re.compile(rb"\s*<\w")
_TEXTINPUT_KEEP = ("title", "link", "description", "name")
_IMAGE_KEEP = ("title", "link", "description", "url", "href", "width", "height")
# An element without a handler is stored under its own name (through FeedParserDict.keymap):
# one named like a key feedparser reads back could change the fields.
_PROTECTED = set(FeedParserDict.keymap) | {
    "id", "link", "links", "title", "title_detail", "summary", "summary_detail", "content", "content_detail",
    "author", "authors", "author_detail", "contributors", "publisher", "publisher_detail", "publishers",
    "published", "published_parsed", "updated", "updated_parsed", "image", "textinput", "tags", "href",
    "guidislink", "subtitle", "subtitle_detail", "rights", "rights_detail", "generator_detail", "language",
}


class FastFeed(NamedTuple):
    """The parts of feedparser's result that parse.py reads."""

    version: str
    feed: dict[str, Any]
    entries: list[dict[str, Any]]
    problem: Exception | None  # bozo_exception of feedparser's input preparation (NonXMLContentType)


class _Unsupported(Exception):
    """The document needs a feedparser behaviour that is not replayed here."""


def read(data: bytes, response_headers: dict[str, str]) -> FastFeed | None:
    """Read `data` as feedparser.parse(BytesIO(data), response_headers=...) would, or return None."""
    if not ENABLED:
        return None
    info: dict[str, Any] = {}
    try:
        data = convert_to_utf8(dict(response_headers), data, info)
        if not info.get("encoding"):
            return None
        root, decls, root_decls = _tree(data)
        reader = _Reader(decls, root_decls, response_headers.get("content-location", ""))
        if reader.name(root.tag)[0] not in ROOTS:
            return None
        reader.element(root)
    except Exception:  # _Unsupported, ParseError, RecursionError, or an input nobody foresaw
        return None
    return FastFeed(reader.version, reader.feed, reader.entries, info.get("bozo_exception"))


def _tree(data: bytes) -> tuple[ET.Element, list[tuple[str, str]], int]:
    """The root, every namespace declaration in document order, and how many are on the root.

    Only comments, processing instructions and whitespace may precede the root: with them
    feedparser's DOCTYPE rewriting leaves the bytes as they are.
    """
    pos = 0
    while match := _PROLOG_ITEM.match(data, pos):
        pos = match.end()
    if _DECLARATION.search(data, 0, pos) or not _ROOT_START.match(data, pos):
        raise _Unsupported("DOCTYPE or another declaration before the root")
    parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("start-ns", "start"))
    parser.feed(data)
    parser.close()
    decls: list[tuple[str, str]] = []
    root: ET.Element | None = None
    root_decls = 0
    for event, value in cast("Iterator[tuple[str, Any]]", parser.read_events()):
        if event == "start-ns":
            decls.append(value)  # (prefix, uri)
        elif root is None:
            root, root_decls = value, len(decls)
    if root is None:
        raise _Unsupported("no root element")
    return root, decls, root_decls


def _known(uri: str) -> str | None:
    """feedparser's short name for a namespace ('' for RSS and Atom themselves), None if unknown."""
    low = uri.lower()
    return "" if "backend.userland.com/rss" in low else _MATCH.get(low)


def _namespaces(decls: list[tuple[str, str]]) -> dict[str, str]:
    """Unknown namespace -> the prefix feedparser names its elements with; refuse ambiguous ones.

    feedparser finds an unknown namespace's prefix by searching a prefix -> URI table, and
    renames prefixes through a table keyed by document prefix: an unknown namespace without
    one prefix of its own, or a prefix spelling another namespace's short name ("dc"), could
    send an element to another handler.
    """
    uris: dict[str, set[str]] = {}
    for prefix, uri in decls:
        if uri:  # xmlns="" undeclares; feedparser ignores it
            if any(c.isspace() for c in uri) or "}" in uri or uri.lower() in _REFUSED_NS:
                raise _Unsupported("namespace URI")
            uris.setdefault(prefix, set()).add(uri)
    in_use = {known for us in uris.values() for u in us if (known := _known(u))}
    known_prefixes = {p for p, us in uris.items() if p and any(_known(u) is not None for u in us)}
    unknown: dict[str, str] = {}
    for prefix, us in uris.items():
        for uri in us:
            if _known(uri) is None:
                if not prefix or len(us) > 1 or uri in unknown or prefix in in_use:
                    raise _Unsupported("unknown namespace without a prefix of its own")
                if prefix.lower() in known_prefixes or prefix.lower() in {m.lower() for m in in_use}:
                    raise _Unsupported("unknown namespace prefix")
                unknown[uri] = prefix.lower()
    for prefix in known_prefixes:
        spelled = prefix in _MAPPED or prefix in unknown.values()
        if spelled and any(_known(u) != prefix for u in uris[prefix]):
            raise _Unsupported("prefix renames another namespace")
    return unknown


def _attrs(attrib: dict[str, str]) -> dict[str, str]:
    """Attributes as feedparser's strict parser keys them: "prefix:local" and "local", lower case."""
    out: dict[str, str] = {}
    seen: set[str] = set()
    for key, value in attrib.items():
        local = key.rsplit("}", 1)[-1].lower()
        if local in seen:
            raise _Unsupported("two attributes with one local name")
        seen.add(local)
        prefix = _MATCH.get(key[1:].split("}", 1)[0].lower(), "") if key[0] == "{" else ""
        out[f"{prefix}:{local}".lower() if prefix else local] = value
        out[local] = value
    for key in ("rel", "type"):
        if key in out:
            out[key] = out[key].lower()
    return out


def _leaf(el: ET.Element) -> str:
    """The text of an element that must hold no markup (feedparser would turn it into xhtml)."""
    if len(el):
        raise _Unsupported(f"markup inside {el.tag}")
    return el.text or ""


class _Reader:
    """feedparser's handler state for the replayed handlers, fed one element subtree at a time."""

    def __init__(self, decls: list[tuple[str, str]], root_decls: int, location: str) -> None:
        self.version = ""
        self.feed: dict[str, Any] = {}
        self.feeddata, self.insource = self.feed, 0  # as feedparser's _get_context reads them
        self.entries: list[dict[str, Any]] = []
        self.depths: dict[str, int] = {}  # property_depth_map of the current entry
        self.depth = self.item_depth = self.has_content = 0
        self.infeed = self.inentry = self.inimage = self.intextinput = 0
        self.inauthor = 0
        self.rdf = False  # an RSS 1.0 root: items, image and textinput may stand beside the channel
        self.title_depth = -1
        self.guidislink = False
        self.base = location
        self.basestack: list[str] = []
        self.base_cache: dict[tuple[str, str], str] = {}
        self.names: dict[str, tuple[str, bool]] = {}
        self.unknown = _namespaces(decls)
        for prefix, uri in decls[:root_decls]:  # track_namespace, before the root's handler
            low = uri.lower()
            if uri and not self.version:
                if not prefix and low == "http://my.netscape.com/rdf/simple/0.9/":
                    self.version = "rss090"
                elif low in ("http://purl.org/rss/1.0/", ATOM_NS.lower()):
                    self.version = "rss10" if low.startswith("http://purl") else "atom10"

    def name(self, tag: str) -> tuple[str, bool]:
        """The handler suffix feedparser uses for a tag ("title", "dc_creator"), and whether it is core."""
        cached = self.names.get(tag)
        if cached is None:
            uri, _, local = tag[1:].rpartition("}") if tag[0] == "{" else ("", "", tag)
            mapped = _known(uri) if uri else ""
            if mapped == "":
                cached = (local.lower(), True)
            else:
                cached = (f"{self.unknown[uri] if mapped is None else mapped.lower()}_{local.lower()}", False)
            self.names[tag] = cached
        return cached

    def element(self, el: ET.Element) -> None:
        """unknown_starttag, the handlers, unknown_endtag."""
        name, core = self.name(el.tag)
        attrs = _attrs(el.attrib) if el.attrib else {}
        self.depth += 1
        given = attrs.get("xml:base", attrs.get("base")) or self.base
        base = self.base_cache.get((self.base, given))
        if base is None:
            if self.base:
                base = make_safe_absolute_uri(self.base, given) or self.base
            else:
                base = _urljoin("", given)
            self.base_cache[(self.base, given)] = base
        self.base = base
        self.basestack.append(base)
        if core:  # feedparser's hack for image and textinput elements left open
            self.intextinput = self.intextinput if name in _TEXTINPUT_KEEP else 0
            self.inimage = self.inimage if name in _IMAGE_KEEP else 0
        handler = _DISPATCH.get(name)
        if handler is not None:
            handler(self, el, attrs)
        elif name == "rdf_rdf":
            self._rdf(el)
        elif name == "items" and self.rdf and self.infeed and not self.inentry:
            # RSS 1.0's list of item URIs: no handler, so feedparser files it as the feed's
            # "items", which FeedParserDict spells "entries", inside the feed dict: never read
            self._children(el)
        elif name in _HANDLERS or name in _PROTECTED:
            raise _Unsupported(name)
        elif name == "ttl" and self.infeed and not self.inentry and not attrs:
            self._context()["ttl"] = self._pop("ttl", _leaf(el))
        else:  # no handler: stored under its own name, children dispatched as usual
            if name == "ttl" and self.infeed and not self.inentry:
                self._context()["ttl"] = attrs
            self._children(el)
        self.basestack.pop()
        if self.basestack and self.basestack[-1]:  # an empty parent base keeps the child's
            self.base = self.basestack[-1]
        self.depth -= 1

    def _children(
        self, el: ET.Element, allowed: tuple[str, ...] | None = None, core_only: bool = False
    ) -> None:
        for child in el:
            if allowed is not None:
                name, core = self.name(child.tag)
                if name not in allowed or (core_only and not core):
                    raise _Unsupported(f"{name} inside {el.tag}")
            self.element(child)

    # feedparser's own: where a value goes, and the author bookkeeping (detail dicts shared)
    _context = _get_context = _FeedParserMixin._get_context
    _save_author = _FeedParserMixin._save_author
    _sync_author = _sync_author_detail = _FeedParserMixin._sync_author_detail

    def _params(self, attrs: dict[str, str], default: str) -> dict[str, Any]:
        """push_content's contentparams, for the two content types whose handling is replayed."""
        ctype = _map_type(attrs.get("type", default))
        if attrs.get("mode") == "base64" or ctype not in ("text/plain", "text/html"):
            raise _Unsupported(f"content type {ctype}")
        return {"type": ctype, "base": self.base}

    def _pop(self, element: str, raw: str, params: dict[str, Any] | None = None) -> str:
        """pop(): the text as feedparser finishes it, before storing."""
        if not (self.infeed or self.inentry):
            raise _Unsupported("text outside the feed")
        output = raw.strip()
        if element in _RELATIVE and output and (element != "id" or self.guidislink):
            output = _urljoin(self.base or "", output)
        if (params is not None and params["type"] == "text/plain" and not self.version.startswith("atom")
                and _looks_like_html(output)):
            params["type"] = "text/html"
        if not output.isascii():
            try:  # noqa: SIM105 (runs for every non-ASCII text field; suppress() costs a context manager)
                output = output.encode("iso-8859-1").decode("utf-8")
            except UnicodeError:
                pass
            if _C1.search(output):  # translate() is slow on long text, and rarely needed
                output = output.translate(_cp1252)
        return output

    def _store(self, element: str, output: str, params: dict[str, Any] | None = None) -> None:
        """pop()'s storing half: entries by depth, the feed (or image, textinput) by assignment."""
        if element == "title" and -1 < self.title_depth <= self.depth:
            return
        detail = None if params is None else {**params, "value": output}
        if self.inentry:
            entry = self.entries[-1]
            if element == "content":
                entry.setdefault("content", []).append(detail)
            elif element == "link":
                if not self.inimage:
                    entry["link"] = _AMP_REF.sub(r"&\g<1>", output.replace("&amp;", "&"))
            else:
                key = "summary" if element == "description" else element
                if self.depths.get(key, self.depth) >= self.depth:
                    self.depths[key] = self.depth
                    entry[key] = output
                if detail is not None:
                    entry[key + "_detail"] = detail
        elif self.infeed:
            context = self._context()
            key = "subtitle" if element == "description" else element
            context[key] = _AMP_REF.sub(r"&\g<1>", output) if key == "link" else output
            if key != "link" and detail is not None:
                context[key + "_detail"] = detail

    # --- handlers: each is feedparser's _start_X, the children, then its _end_X

    def _rdf(self, el: ET.Element) -> None:
        """RSS 1.0's root: no handler of feedparser's, so only its namespace declarations count.

        Its children are read one after the other with the state the previous ones left:
        the channel (infeed only inside it), items (entries, inside or beside the channel),
        image and textinput. Anything else beside the channel must hold no element with a
        handler: outside the feed and the entries feedparser would read it in ways not
        replayed here.
        """
        if self.depth != 1 or self.version != "rss10":
            raise _Unsupported("RDF root without the RSS 1.0 namespace as the version")
        self.rdf, self.item_depth = True, 3
        channels = 0
        for child in el:
            name = self.name(child.tag)[0]
            if name == "channel":
                channels += 1
                if channels > 1:
                    raise _Unsupported("a second RSS 1.0 channel")
            elif name not in ("item", "image", "textinput") and not self._inert(child):
                raise _Unsupported(f"{name} beside the RSS 1.0 channel")
            self.element(child)

    def _inert(self, el: ET.Element) -> bool:
        """Whether no element of this subtree has a handler, a replayed name or a protected key."""
        for node in el.iter():
            name = self.name(node.tag)[0]
            if name in _DISPATCH or name in _HANDLERS or name in _PROTECTED or name in ROOTS or name == "ttl":
                return False
        return True

    def _root(self, el: ET.Element, attrs: dict[str, str]) -> None:
        if el.tag == "rss" and self.depth == 1:
            version = RSS_VERSIONS.get(attrs.get("version", ""))
            if version is None or len(el) != 1 or el[0].tag != "channel":
                raise _Unsupported("rss layout")
            self.version = self.version if self.version.startswith("rss") else version
            self.item_depth = 3
        elif el.tag == f"{{{ATOM_NS}}}feed" and self.depth == 1:
            self.version = self.version or "atom"  # the Atom namespace was declared on the root
            self.infeed, self.item_depth = 1, 2
        elif self.depth == 2 and (
            self.name(el.tag)[0] == "channel" if self.rdf else (el.tag == "channel" and self.item_depth == 3)
        ):
            if "lastmod" in attrs or "href" in attrs:  # feedparser reads these as dates and links
                raise _Unsupported("channel attributes")
            self.infeed = 1
        else:
            raise _Unsupported(f"{el.tag} as root or channel")
        self._children(el)
        self.infeed = 0

    def _item(self, el: ET.Element, attrs: dict[str, str]) -> None:
        in_channel = self.infeed and self.depth == self.item_depth
        beside_channel = self.rdf and self.depth == 2  # RSS 1.0's place: read with infeed 0
        if self.inentry or not (in_channel or beside_channel):
            raise _Unsupported("entry layout")
        if {"lastmod", "href"} & set(attrs):  # feedparser reads these as dates and links
            raise _Unsupported("entry attributes")
        self.entries.append({})
        self.depths = {}
        self.inentry, self.guidislink, self.title_depth = 1, False, -1
        about = attrs.get("rdf:about")
        if about:  # the attribute as written: no depth bookkeeping, so a later guid or id replaces it
            self.entries[-1]["id"] = about
        self._children(el)
        self.inentry = self.has_content = 0

    def _title(self, el: ET.Element, attrs: dict[str, str]) -> None:
        params = self._params(attrs, "text/plain")
        value = self._pop("title", _leaf(el), params)
        self._store("title", value, params)
        if value:
            self.title_depth = self.depth

    def _media_title(self, el: ET.Element, attrs: dict[str, str]) -> None:
        saved = self.title_depth
        self._title(el, attrs)
        self.title_depth = saved

    def _link(self, el: ET.Element, attrs: dict[str, str]) -> None:
        text = _leaf(el)
        attrs = dict(attrs)
        attrs.setdefault("rel", "alternate")
        attrs.setdefault("type", "application/atom+xml" if attrs["rel"] == "self" else "text/html")
        context = self._context()
        href = attrs.get("url", attrs.get("uri", attrs.get("href")))
        if href:
            attrs["href"] = href
        if "href" not in attrs:
            self._store("link", self._pop("link", text))
        elif attrs["rel"] == "alternate" and _map_type(attrs["type"]) in _FeedParserMixin.html_types:
            context["link"] = _urljoin(self.base or "", attrs["href"])

    def _guid(self, el: ET.Element, attrs: dict[str, str]) -> None:
        self.guidislink = attrs.get("ispermalink", "true") == "true"
        value = self._pop("id", _leaf(el))
        self._store("id", value)
        if self.guidislink:
            self._context().setdefault("link", value)

    def _description(self, el: ET.Element, attrs: dict[str, str], element: str = "description") -> None:
        """description, and summary (text/plain by default): a second one is read as content."""
        if "summary" in self._context() and not self.has_content:
            self._content(el, attrs)
        else:
            params = self._params(attrs, "text/html" if element == "description" else "text/plain")
            self._store(element, self._pop(element, _leaf(el), params), params)

    def _content(self, el: ET.Element, attrs: dict[str, str], default: str = "text/plain") -> None:
        self.has_content = 1
        params = self._params(attrs, default)
        value = self._pop("content", _leaf(el), params)
        self._store("content", value, params)
        self._context().setdefault("summary", value)  # both replayed types are copied

    def _date(self, el: ET.Element, element: str) -> None:
        value = self._pop(element, _leaf(el))
        self._store(element, value)
        self._context()[element + "_parsed"] = _parse_date(value)

    def _author(self, el: ET.Element, attrs: dict[str, str]) -> None:
        self.inauthor = 1
        self._context().setdefault("authors", []).append({})
        self._children(el, ("name", "email", "url", "uri", "homepage", "itunes_name", "itunes_email"))
        text = (el.text or "") + "".join(child.tail or "" for child in el)
        self._store("author", self._pop("author", text))
        self.inauthor = 0
        self._sync_author()

    def _person_part(self, el: ET.Element, attrs: dict[str, str], key: str = "name") -> None:
        value = _leaf(el).strip()
        if self.inauthor:
            self._save_author(key, value)

    def _person_url(self, el: ET.Element, attrs: dict[str, str]) -> None:
        value = self._pop("href", _leaf(el))
        if self.inauthor:
            self._save_author("href", value)

    def _image(self, el: ET.Element, attrs: dict[str, str], keep: tuple[str, ...] = _IMAGE_KEEP) -> None:
        """image, and textinput (with its own children): at feed level, or beside an RSS 1.0 channel."""
        kind = "image" if keep is _IMAGE_KEEP else "textinput"
        if not self.inentry and not self.infeed and self.rdf and self.depth == 2:
            self._outside_image(el, keep)
            return
        if self.inentry or not self.infeed:
            raise _Unsupported(f"{el.tag} inside an entry")
        self._context().setdefault(kind, {})
        setattr(self, "in" + kind, 1)
        self.title_depth = -1
        self._children(el, tuple(k for k in keep if k != "href"), core_only=True)
        setattr(self, "in" + kind, 0)

    def _outside_image(self, el: ET.Element, keep: tuple[str, ...]) -> None:
        """An RSS 1.0 image or textinput beside the channel: its children expect no text.

        Outside the feed and the entries feedparser stores none of their values (the url's,
        pushed as expecting text, lands nowhere either); the title alone has an effect: a
        non-empty one sets the title depth, which hides a later channel title at that depth
        until an item, image or textinput resets it. Children are plain text elements of the
        kind's own, without attributes; anything else falls back.
        """
        self.title_depth = -1
        for child in el:
            name, core = self.name(child.tag)
            if not core or name not in keep or name == "href" or child.attrib:
                raise _Unsupported(f"{name} inside an RSS 1.0 {el.tag}")
            if _leaf(child).strip() and name == "title":
                self.title_depth = self.depth + 1

    def _owner(self, el: ET.Element, attrs: dict[str, str]) -> None:
        """itunes:owner files its name and email as an author's: harmless at feed level only."""
        if self.inentry:
            raise _Unsupported("itunes:owner inside an entry")
        self._children(el, ("name", "email", "itunes_name", "itunes_email"))

    def _chapters(self, el: ET.Element, attrs: dict[str, str]) -> None:
        if any(self.name(child.tag)[0] != "psc_chapter" or "start" not in child.attrib for child in el):
            raise _Unsupported("psc:chapter")  # feedparser crashes on a chapter without start
        self._children(el)


_Handler = Callable[[_Reader, ET.Element, dict[str, str]], object]  # what it returns is ignored
_TABLE: list[tuple[str, _Handler]] = [
    ("rss channel feed", _Reader._root),
    ("item entry", _Reader._item),
    ("title dc_title", _Reader._title),
    ("media_title", _Reader._media_title),
    ("link", _Reader._link),
    ("guid id", _Reader._guid),
    ("description dc_description media_description", _Reader._description),
    ("summary itunes_summary", lambda r, el, attrs: r._description(el, attrs, "summary")),
    ("content", _Reader._content),
    ("content_encoded", lambda r, el, attrs: r._content(el, attrs, "text/html")),
    ("published pubdate issued dcterms_issued", lambda r, el, attrs: r._date(el, "published")),
    ("updated modified lastbuilddate dc_date dcterms_modified", lambda r, el, attrs: r._date(el, "updated")),
    ("author managingeditor dc_author dc_creator itunes_author", _Reader._author),
    ("itunes_owner", _Reader._owner),
    ("name itunes_name", _Reader._person_part),
    ("email itunes_email", lambda r, el, attrs: r._person_part(el, attrs, "email")),
    ("url uri homepage", _Reader._person_url),
    ("image", _Reader._image),
    ("textinput", lambda r, el, attrs: r._image(el, attrs, _TEXTINPUT_KEEP)),
    ("itunes_category", lambda r, el, attrs: r._children(el, ("itunes_category",))),
    ("psc_chapters", _Reader._chapters),
    # handlers without effect on the fields; feedparser still dispatches the children
    # contributor: its name, email and uri only change author fields inside an author element
    ("contributor enclosure media_content media_group media_thumbnail", lambda r, el, attrs: r._children(el)),
    # handlers that only write keys nobody reads here: their elements must hold text only
    (
        (
            "category keywords dc_subject media_category tags language dc_language generator created"
            " dcterms_created expirationdate dcterms_valid newlocation width height rights copyright"
            " dc_rights subtitle tagline itunes_subtitle info feedburner_browserfriendly media_credit"
            " media_rating media_restriction media_license media_player media_keywords itunes_keywords"
            " itunes_block itunes_explicit itunes_image itunes_link dc_contributor cloud psc_chapter"
            " webmaster dc_publisher"
        ),
        lambda r, el, attrs: _leaf(el),
    ),
]
_DISPATCH: dict[str, _Handler] = {name: handler for names, handler in _TABLE for name in names.split()}
