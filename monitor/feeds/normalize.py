"""Text and URL normalisation for feed content: pure functions, no I/O.

Feed text is hostile and messy: markup where plain text belongs, control characters,
lone surrogates, tracking parameters, `javascript:` links dressed up with entities.
Everything that leaves `parse` passes through here so the rest of the pipeline can trust
it: titles are plain single-line text, HTML is an allow-listed subset with only http(s)
links, links are canonical, and no field exceeds its cap.
"""
from __future__ import annotations

import functools
import html
import re
from html.parser import HTMLParser
from urllib.parse import quote, unquote_plus, urljoin, urlsplit

# C0 controls except \t and \n, DEL, C1 controls, and the two non-characters that break
# XML and some JSON consumers. \r is handled separately (CRLF -> LF first).
_CONTROL_CHARS = "\x00-\x08\x0b-\x1f\x7f-\x9f\ufffe\uffff"
_SURROGATE_CHARS = "\ud800-\udfff"
_CONTROL = re.compile(f"[{_CONTROL_CHARS}]")
_SURROGATE = re.compile(f"[{_SURROGATE_CHARS}]")
# Any character clean_text changes (CR is inside _CONTROL): most text has none, and one scan
# for them costs a third of the two substitutions and two replaces that would change nothing.
_UNCLEAN_CHARS = _CONTROL_CHARS + _SURROGATE_CHARS
_ZERO_WIDTH_CHARS = "\u200b-\u200d\u2060\ufeff"
_UNCLEAN = re.compile(f"[{_UNCLEAN_CHARS}]")
_ZERO_WIDTH = re.compile(f"[{_ZERO_WIDTH_CHARS}]")
_UNCLEAN_OR_ZERO_WIDTH = re.compile(f"[{_UNCLEAN_CHARS}{_ZERO_WIDTH_CHARS}]")


def clean_text(value: str, max_len: int | None = None) -> str:
    """Make `value` safe to store: valid UTF-8 (surrogates -> U+FFFD), no NUL or other controls.

    Tab and newline survive (they carry structure in plain text); CR and CRLF become LF.
    """
    if not value:
        return ""
    if _UNCLEAN.search(value) is not None:
        value = _SURROGATE.sub("\ufffd", value)
        value = value.replace("\r\n", "\n").replace("\r", "\n")
        value = _CONTROL.sub("", value)
    if max_len is not None and len(value) > max_len:
        value = value[:max_len]
    return value


def one_line(value: str, max_len: int | None = None) -> str:
    """Clean text and collapse every whitespace run (CR/LF included) to one space."""
    # str.split() splits at exactly the characters re's \s matches: r"\s+" -> " " then strip().
    value = " ".join(clean_text(value).split())
    if max_len is not None and len(value) > max_len:
        value = value[:max_len].rstrip()
    return value


# --- HTML -> plain text and sanitised HTML ----------------------------------------------

# Elements whose content is never readable text (or never safe to show).
_DROP_CONTENT = frozenset(
    "script style iframe frame frameset object embed applet noscript noembed noframes template "
    "svg math head title textarea select xmp plaintext".split()
)
_BLOCK = frozenset(
    "address article aside blockquote caption dd details div dl dt fieldset figcaption figure footer "
    "form h1 h2 h3 h4 h5 h6 header hr li main nav ol p pre section summary table tbody tfoot thead tr ul "
    "br".split()
)
_CELL = frozenset(("td", "th"))


def html_to_text(value: str, max_len: int | None = None) -> str:
    """Plain text of an HTML fragment, for matching and clustering.

    Block elements become line breaks and table cells spaces, so words from adjacent blocks
    never fuse; entities are decoded; script/style and similar content is dropped;
    whitespace is collapsed (runs within a line to one space, line breaks to one newline).
    """
    if not value:
        return ""
    parser = _Sanitizer(None, None, keep_html=False)
    _run(parser, value)
    return _finish_text(parser, max_len)


_MAX_RESTARTS = 16


def _run(parser: _Sanitizer, value: str) -> None:
    """Feed `value` to `parser` in linear time, whatever the markup.

    html.parser (before Python 3.12.11 / 3.13.4) goes quadratic in close() on an unfinished
    construct: `<!--` * 50 000 takes seconds, `<b a=` * 30 000 minutes. feed() alone stops
    at the first unfinished construct and keeps the rest in `rawdata`; we treat its `<` as
    text and go on, a bounded number of times, then take the remainder as text.

    It also notes what the cleaned input holds (`refs`: "&"; `zero_width`), so that the text
    steps skip the scans that could change nothing.
    """
    if _UNCLEAN_OR_ZERO_WIDTH.search(value) is None:  # the common case: one scan decides
        data, zero_width = value, False
    else:
        data, zero_width = clean_text(value), True
    parser.refs = "&" in data
    parser.zero_width = zero_width or parser.refs  # a reference can decode to one (&#8203;)
    if not parser.refs and "<" not in data:
        # Plain text (most full-text news pages): feed() would make exactly this one call,
        # after a pass of its own that counts the lines.
        parser.handle_data(data)
        return
    done = _tokenize_simple(parser, data)
    if done == len(data) and _between_tokens(parser):
        return
    data = data[done:]
    rest = ""
    for _ in range(_MAX_RESTARTS):
        parser.feed(data)
        rest, parser.rawdata = parser.rawdata, ""
        if not rest.startswith("<") or rest.find(">", 1) < 0:
            break  # held-back text, or a tag that can never close: all the rest is text
        parser.handle_data("<")
        data, rest = rest[1:], ""
    if rest:
        parser.handle_data(html.unescape(rest))
    parser.close()


# Markup html.parser reads the same way in every release: start tags with letters-and-digits
# names and quoted (or no) attribute values, end tags with such names. There is one match per
# "<"; a match of "<" alone is markup outside that (a comment, a declaration, an unquoted
# value, a stray "<"), which is left to html.parser.
_SIMPLE_TAG = re.compile(
    r"""<(?:([a-zA-Z][a-zA-Z0-9]*)"""  # a start tag's name
    r"""((?:[ \t\n\r\f]+[a-zA-Z_:][-a-zA-Z0-9_:.]*(?:[ \t\n\r\f]*=[ \t\n\r\f]*(?:"[^"]*"|'[^']*'))?)*)"""
    r"""[ \t\n\r\f]*(/?)>"""
    r"""|/([a-zA-Z][a-zA-Z0-9]*)[ \t\n\r\f]*>)?"""  # or an end tag's name
)
_SIMPLE_ATTR = re.compile(
    r"""[ \t\n\r\f]+([a-zA-Z_:][-a-zA-Z0-9_:.]*)(?:[ \t\n\r\f]*=[ \t\n\r\f]*(?:"([^"]*)"|'([^']*)'))?"""
)
# Elements whose content html.parser reads as raw text in some release (3.11: script and style;
# later ones more of these). Each, up to its end tag, is read by html.parser itself.
_RAW_TEXT = frozenset("script style xmp iframe noembed noframes noscript plaintext textarea title".split())


def _tokenize_simple(parser: HTMLParser, data: str) -> int:
    """Call the parser's handlers exactly as HTMLParser.feed(data) would, as far as the markup
    is simple (_SIMPLE_TAG); return where that ends (len(data): all of it). The parser is
    then as a fresh one would be after feeding that much: the rest is for html.parser.

    Most of a sanitising pass went to html.parser's general tokenizer (a regular-expression
    match per attribute, bookkeeping per token); simple markup, most of what feeds send,
    takes one match a tag here. An element in _RAW_TEXT is fed to html.parser, through its
    end tag, and the simple reading goes on after it if html.parser ended there too.
    """
    i = 0
    search = _SIMPLE_TAG.search
    while (m := search(data, i)) is not None:
        j = m.start()
        name, attrs, slash, end = m.groups()
        if name is None and end is None:  # not simple markup
            break
        if (name or end).lower() in _RAW_TEXT:
            closing = _end_tag(data, (name or end).lower(), m.end())
            if closing < 0:
                break
            if i < j:
                parser.handle_data(html.unescape(data[i:j]))
            parser.feed(data[j:closing])
            i = closing
            if not _between_tokens(parser):
                return i  # html.parser is inside something: it reads the rest
            continue
        if i < j:
            parser.handle_data(html.unescape(data[i:j]))
        if name is None:
            parser.handle_endtag(end.lower())
        else:
            pairs = [_attribute(a) for a in _SIMPLE_ATTR.finditer(attrs)] if attrs else []
            if slash:
                parser.handle_startendtag(name.lower(), pairs)
            else:
                parser.handle_starttag(name.lower(), pairs)
        i = m.end()
    else:
        if i < len(data):
            parser.handle_data(html.unescape(data[i:]))
        return len(data)
    if i < j:
        parser.handle_data(html.unescape(data[i:j]))
    return j


def _between_tokens(parser: HTMLParser) -> bool:
    """Whether html.parser holds nothing back and reads markup as markup: as a fresh one."""
    return not parser.rawdata and getattr(parser, "cdata_elem", True) is None


_END_TAGS = {name: re.compile(f"</{name}", re.IGNORECASE) for name in _RAW_TEXT}


def _end_tag(data: str, name: str, start: int) -> int:
    """Where the first "</name ...>" (name in _RAW_TEXT) from `start` ends (after its ">"), or -1."""
    found = _END_TAGS[name].search(data, start)
    if found is None:
        return -1
    close = data.find(">", found.end())
    return -1 if close < 0 else close + 1


def _attribute(m: re.Match[str]) -> tuple[str, str | None]:
    """(name, value) as html.parser gives them: the name lower-cased; the value unquoted and
    its references decoded; None for a name without a value."""
    name, double, single = m.groups()
    value = double if double is not None else single
    return name.lower(), html.unescape(value) if value else value


def _finish_text(parser: _Sanitizer, max_len: int | None) -> str:
    """Join the parser's clean text pieces; drop zero-width characters; collapse white space."""
    text = "".join(parser.text)
    if parser.zero_width and not text.isascii():  # isascii() is O(1); they all lie outside ASCII
        text = _ZERO_WIDTH.sub("", text)
    text = collapse_space(text)
    if max_len is not None and len(text) > max_len:
        text = text[:max_len].rstrip()
    return text


def collapse_space_py(text: str) -> str:
    r"""Each white-space run to one newline if it holds one, else to one space; no space at the ends.

    The result of r"[^\S\n]+" -> " ", then r" ?\n\s*" -> "\n", then strip(), at 40% of
    their cost: str.split() splits at exactly the characters re's \s matches, and splitting at
    newlines first leaves only short lines to split at words. The compiled twin (monitor/feeds/
    _text.c) copies the characters instead of making a str of every word: a tenth of a poll's
    parsing, here.
    """
    return "\n".join([line for line in (" ".join(row.split()) for row in text.split("\n")) if line])


collapse_space = collapse_space_py
try:
    from ._text import collapse_space
except ImportError:  # built without a C compiler: the same text, slower
    COMPILED = False
else:
    COMPILED = True


def title_text(value: str, is_html: bool = False, max_len: int = 1000) -> str:
    """A title as plain single-line text: markup becomes its text, entities are decoded."""
    if is_html:
        value = html_to_text(value)
    return one_line(value, max_len)


_ALLOWED_TAGS = frozenset(
    "a abbr b blockquote br caption cite code dd del div dl dt em figcaption figure h1 h2 h3 h4 h5 h6 "
    "hr i img ins kbd li mark ol p pre q s small span strong sub sup table tbody td tfoot th thead time "
    "tr u ul".split()
)
_VOID = frozenset(("br", "hr", "img"))
_URL_ATTRS = frozenset(("href", "src", "cite"))
_ALLOWED_ATTRS = {
    "a": frozenset(("href", "title")),
    "abbr": frozenset(("title",)),
    "blockquote": frozenset(("cite",)),
    "q": frozenset(("cite",)),
    "img": frozenset(("src", "alt", "title", "width", "height")),
    "td": frozenset(("colspan", "rowspan")),
    "th": frozenset(("colspan", "rowspan")),
    "time": frozenset(("datetime",)),
}
_NUMERIC_ATTRS = frozenset(("width", "height", "colspan", "rowspan"))
_MAX_DEPTH = 64  # deeper tags are dropped (their text kept): no display needs more
_URL_EDGE = re.compile(r"^[\x00-\x20]+|[\x00-\x20]+$")  # browsers strip these around a URL
_URL_JUNK = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # and tab/newline (we: every control) inside
_CSS_SIZE = re.compile(r"(?:^|;)\s*(width|height)\s*:\s*(\d+(?:\.\d+)?)\s*px", re.I)


def safe_url(value: str | None, base: str | None = None) -> str | None:
    """`value` if it is an absolute http(s) URL once browser-ignored characters are removed.

    Browsers drop tabs, newlines and control characters inside a URL, so
    `jav&#x09;ascript:` (already entity-decoded by the HTML parser) is `javascript:`; the
    check runs on what a browser would see. A relative URL is resolved against `base` when
    that is an http(s) URL; protocol-relative `//host/x` becomes https without one.
    """
    if not value:
        return None
    url = _as_browsers_read(value)
    if _PLAIN_URL.fullmatch(url) is not None and (not base or _joins_plainly(base)):
        return url  # what _resolved would give back
    return _resolved(url, base)


def _as_browsers_read(value: str) -> str:
    """Without the characters browsers ignore in a URL; spaces escaped."""
    return _URL_JUNK.sub("", _URL_EDGE.sub("", value)).replace(" ", "%20")


def _resolved(url: str, base: str | None) -> str | None:
    """`url` joined to `base` (when that is http(s)), if the result is an absolute http(s) URL."""
    if base and url and _is_http(base):
        try:
            url = urljoin(base, url)
        except ValueError:
            return None
    if url.startswith("//"):
        url = "https:" + url
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url


# An absolute http(s) URL that urljoin() against an http(s) base of either scheme gives back
# as it is, and urlsplit() splits into its scheme and a host: a lower-case scheme, a plain
# host (and port), no user, parameters, fragment or empty query, only ASCII.
_PLAIN_URL = re.compile(
    r"https?://[A-Za-z0-9.-]+(?::[0-9]+)?(?:/[-A-Za-z0-9._~!$&'()*+,=:@%/]*)?(?:\?[-A-Za-z0-9._~!$&'()*+,=:@%/?]+)?"
)


@functools.lru_cache(maxsize=64)
def _joins_plainly(base: str) -> bool:
    """Whether urljoin() can read `base` (it raises ValueError on some), or `base` is not http(s):
    either way a plain URL joined to it is itself."""
    if not _is_http(base):
        return True
    try:
        urlsplit(base)
    except ValueError:
        return False
    return True


def _is_http(url: str) -> bool:
    return url[:7].lower() == "http://" or url[:8].lower() == "https://"


def _pixel_size(value: str | None) -> float | None:
    if value is None:
        return None
    match = re.match(r"\s*(\d+(?:\.\d+)?)", value)
    return float(match.group(1)) if match else None


def _is_tracking_pixel(attrs: dict[str, str | None]) -> bool:
    """1x1 (or 0x0) images exist only to report that the entry was opened."""
    sizes = [_pixel_size(attrs.get("width")), _pixel_size(attrs.get("height"))]
    for _name, number in _CSS_SIZE.findall(attrs.get("style") or ""):
        sizes.append(float(number))
    return any(size is not None and size <= 1 for size in sizes)


class _Sanitizer(HTMLParser):
    """Re-serialises only allow-listed tags and attributes; everything else becomes text or nothing.

    Output is built from parsed tokens (text escaped, attributes quoted), so whatever the
    input's markup tricks, the only tags in the output are ones written here. The same pass
    collects the plain text (as html_to_text would), saving a second parse per field.
    """

    def __init__(self, max_len: int | None, base: str | None, keep_html: bool = True) -> None:
        super().__init__(convert_charrefs=True)
        self.base = base
        self.text: list[str] = []
        self.out: list[str] = []
        self.open: list[str] = []
        self.closing = 0  # length of the end tags that `open` will need
        self.skip = 0  # depth inside elements whose content is dropped
        self.budget = max_len if max_len is not None else -1
        self.full = not keep_html  # no more HTML output: budget spent, or text only
        # Whether the (cleaned) input holds "&". Without one, every piece of data is a slice of
        # clean input and needs no second clean_text; the text pieces stay clean either way.
        self.refs = True
        self.zero_width = True  # whether the text may hold zero-width characters (set by _run)

    def _emit(self, piece: str, closing: int = 0) -> bool:
        if self.budget >= 0:
            # Keep room to close every open tag so truncated output stays balanced.
            if len(piece) + self.closing + closing > self.budget:
                self.full = True
                return False
            self.budget -= len(piece)
        self.out.append(piece)
        return True

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROP_CONTENT:
            self.skip += 1
            return
        if self.skip:
            return
        if tag in _BLOCK:
            self.text.append("\n")
        elif tag in _CELL:
            self.text.append(" ")
        if self.full or tag not in _ALLOWED_TAGS or len(self.open) >= _MAX_DEPTH:
            return
        given = {name.lower(): value for name, value in attrs}
        if tag == "img" and (_is_tracking_pixel(given) or not safe_url(given.get("src"), self.base)):
            return
        kept = []
        for name in sorted(_ALLOWED_ATTRS.get(tag, ())):
            value = given.get(name)
            if value is None:
                continue
            if name in _URL_ATTRS:
                value = safe_url(value, self.base)
            elif name in _NUMERIC_ATTRS:
                value = value.strip() if value.strip().isdigit() else None
            if value is not None:
                kept.append(f' {name}="{html.escape(clean_text(value, 2048), quote=True)}"')
        closing = 0 if tag in _VOID else len(tag) + 3
        if self._emit(f"<{tag}{''.join(kept)}>", closing) and tag not in _VOID:
            self.open.append(tag)
            self.closing += closing

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROP_CONTENT:
            return
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROP_CONTENT:
            self.skip = max(0, self.skip - 1)
            return
        if self.skip:
            return
        if tag in _BLOCK:
            self.text.append("\n")
        elif tag in _CELL:
            self.text.append(" ")
        if tag not in self.open:
            return
        while self.open:
            top = self.open.pop()
            self.out.append(f"</{top}>")  # room was reserved in _emit
            self.closing -= len(top) + 3
            if self.budget >= 0:
                self.budget -= len(top) + 3
            if top == tag:
                break

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if self.refs:  # a character reference can decode to CR or a control character
            data = clean_text(data)
        self.text.append(data)
        if self.full:
            return
        text = html.escape(data, quote=False)
        if not self._emit(text) and self.budget > 0:
            room = self.budget - self.closing
            if room > 0:
                cut = text[:room]
                amp = cut.rfind("&")
                if amp != -1 and ";" not in cut[amp:]:
                    cut = cut[:amp]  # never leave half an entity
                self.out.append(cut)
                self.budget -= len(cut)

    def result(self) -> str:
        self.out.extend(f"</{tag}>" for tag in reversed(self.open))
        self.open = []
        return "".join(self.out)


def sanitize_html(value: str, max_len: int | None = None, base: str | None = None) -> str:
    """HTML safe to show in a digest: an allow-list of tags and attributes, http(s) links only.

    This is the only sanitiser feed HTML goes through (feedparser's keeps `javascript:`
    URLs, costs more than the rest of parsing, and never sees JSON Feed). Event handlers,
    styles, scripts, forms and embeds go; tracking pixels go; text is re-escaped; relative
    links are resolved against `base` (the document or xml:base URL) or dropped.
    """
    return sanitize_html_with_text(value, max_len, base)[0]


def sanitize_html_with_text(value: str, max_len: int | None = None,
                            base: str | None = None) -> tuple[str, str]:
    """sanitize_html() and html_to_text() of `value` in one parse: (html, text)."""
    if not value:
        return "", ""
    parser = _Sanitizer(max_len, base)
    _run(parser, value)
    return parser.result().strip(), _finish_text(parser, max_len)


def text_to_html(value: str) -> str:
    """Plain text as display HTML: escaped, line breaks kept."""
    return html.escape(clean_text(value), quote=False).replace("\n", "<br>")


# --- canonical links -------------------------------------------------------------------

_TRACKING_PARAMS = frozenset(
    """fbclid gclid gclsrc dclid msclkid yclid twclid igshid mc_cid mc_eid ref_src ref_url _hsenc _hsmi
    __hstc __hssc __hsfp hsctatracking mkt_tok oly_anon_id oly_enc_id vero_id vero_conv wt.mc_id _ga _gl
    s_cid ncid ocid at_medium at_campaign cmpid sr_share""".split()
)
_TRACKING_PREFIXES = ("utm_",)
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Characters left as they are when re-quoting a path or query: reserved ones keep their
# meaning and existing %XX escapes are not double-encoded.
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = "/%:@!$'()*+,;=-._~?="


def _is_tracking(piece: str) -> bool:
    name = unquote_plus(piece.split("=", 1)[0]).strip().lower()
    return name in _TRACKING_PARAMS or name.startswith(_TRACKING_PREFIXES)


def _unwrap_redirect(url: str) -> str:
    """The target of a Google redirect link (Google Alerts, Google News), else `url`."""
    parts = urlsplit(url)
    if parts.hostname in ("www.google.com", "google.com") and parts.path == "/url":
        for piece in parts.query.split("&"):
            name, _, target = piece.partition("=")
            target_url = safe_url(unquote_plus(target)) if name in ("url", "q") else None
            if target_url:
                return target_url
    return url


def canonical_url(value: str | None) -> str | None:
    """The link we store and compare: http(s) only, else None.

    Lower-case scheme and host, no default port, no credentials, no fragment, tracking
    parameters (`utm_*`, `fbclid`, ...) removed while the other parameters keep their order
    and spelling; a Google redirect (`google.com/url?url=...`) becomes its target, so an
    alert's link matches the publisher's. Path and query are not otherwise rewritten
    (beyond percent-encoding what must be): servers may treat case and escapes as significant.
    """
    url = safe_url(value.strip() if value else value)
    if url is None:
        return None
    try:
        parts = urlsplit(_unwrap_redirect(url))
        port = parts.port
        host = parts.hostname
    except ValueError:
        return None
    if not host:
        return None
    scheme = parts.scheme.lower()
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    path = quote(parts.path, safe=_PATH_SAFE) or "/"
    pieces = [p for p in parts.query.split("&") if p and not _is_tracking(p)]
    query = "&".join(quote(p, safe=_QUERY_SAFE) for p in pieces)
    return f"{scheme}://{netloc}{path}" + (f"?{query}" if query else "")


# --- headlines for display -------------------------------------------------------------

_WIRE_WORDS = (
    r"UPDATE(?:\s+\d+)?|WRAPUP(?:\s+\d+)?|RPT|REFILE|CORRECTED|CORRECTION|EXCLUSIVE|ANALYSIS|INSIGHT|"
    r"FEATURE|FACTBOX|EXPLAINER|TIMELINE|INSTANT\s+VIEW|BREAKINGVIEWS|COLUMN|POLL|PREVIEW|BRIEF|BUZZ|"
    r"HIGHLIGHTS|SPECIAL\s+REPORT|DEALS|OIL|GOLD|METALS|PRECIOUS|GRAINS|SOFTS|FOREX|TREASURIES|NATGAS|"
    r"(?:[A-Z]{2,}\s+)?(?:STOCKS|MARKETS|BONDS)"
)
# Reuters-style upper-case slugs glued to the headline with a hyphen: "UPDATE 2-Iran ...".
_WIRE_PREFIX = re.compile(rf"^(?:(?:{_WIRE_WORDS})\s*-\s*)+(?=\S)")
_LABEL_PREFIX = re.compile(
    r"^(?:LIVE(?:\s+UPDATES|\s+BLOG)?|BREAKING(?:\s+NEWS)?|JUST\s+IN|WATCH|VIDEO|PHOTOS?|GALLERY|LISTEN|"
    r"PODCAST|UPDATED?(?:\s+\d+)?|EXCLUSIVE|OPINION|ANALYSIS|EDITORIAL|EXPLAINER|FACT\s+CHECK|REVIEW)"
    r"\s*(?::|\s\|)\s+",
    re.I,
)
_BRACKET_PREFIX = re.compile(
    r"^(?:\[(?:VIDEO|PHOTOS?|LIVE|UPDATED?|BREAKING)\]|\((?:LEAD|URGENT|\d*(?:st|nd|rd|th)?\s*LD|"
    r"UPDATE\s*\d*)\))\s*",
    re.I,
)
_SEPARATORS = (" - ", " – ", " — ", " | ", " :: ", " · ", " • ")
_OUTLET_WORDS = re.compile(
    r"\b(?:news|times|post|herald|journal|ledger|tribune|gazette|daily|online|tv|radio|agency|press|"
    r"wire|telegraph|guardian|observer|monitor|express|mirror|chronicle|reuters|bloomberg|afp|bbc|cnn|"
    r"dispatch|courier|standard|review|report|magazine|insider|network)\b",
    re.I,
)
_DOMAIN = re.compile(r"^[\w-]+(?:\.[\w-]+)*\.[a-z]{2,}$", re.I)


_WWW = re.compile(r"^(?:www\.)")
_TLD = re.compile(r"\.(?:com|net|org|co\.uk|co|info|news)$")
_THE = re.compile(r"^the\s+")
_NON_WORD = re.compile(r"\W+")


@functools.lru_cache(maxsize=4096)  # an outlet's name and its titles' segments come again and again
def _outlet_key(name: str) -> str:
    name = name.strip().lower()
    name = _WWW.sub("", name)
    name = _TLD.sub("", name)
    name = _THE.sub("", name)
    return _NON_WORD.sub("", name)


def _looks_like_outlet(segment: str, separator: str) -> bool:
    """Without the outlet's name, only a short, name-shaped trailing segment counts."""
    words = segment.split()
    if not words or len(words) > 5 or len(segment) > 40 or segment[-1] in "?!.":
        return False
    if _DOMAIN.match(segment):
        return True
    if separator.strip() == "|":
        return True
    capitalised = all(w[0].isupper() or w[0].isdigit() or w.lower() in ("of", "the", "and", "&")
                      for w in words)
    return capitalised and bool(_OUTLET_WORDS.search(segment))


@functools.lru_cache(maxsize=16384)  # a cluster's refresh cleans its members' and its feeds' latest titles
def clean_headline(title: str, outlet: str | None = None) -> str:
    """A headline for display without wire slugs and outlet branding.

    Strips "UPDATE 2-", "OIL-", "LIVE:", "(LEAD)" style prefixes and an outlet suffix or
    prefix ("Title - Gulf Ledger", "Title | Outlet", "Outlet: Title"). A segment naming
    `outlet` always goes; otherwise only a trailing segment shaped like an outlet name
    (a domain, "| Short Name", "- Something News/Times/Ledger...") goes, so copies of wire
    stories keep clean headlines too. Never returns an empty string for a non-empty title.
    """
    original = one_line(title)
    headline = original
    key = _outlet_key(outlet) if outlet else ""
    for _ in range(3):  # prefixes can stack: "LIVE: UPDATE 1-..."
        before = headline
        if not headline.isupper():
            headline = _WIRE_PREFIX.sub("", headline)
        headline = _LABEL_PREFIX.sub("", headline)
        headline = _BRACKET_PREFIX.sub("", headline)
        if key:
            for sep in (*_SEPARATORS, ": "):
                head, found, rest = headline.partition(sep)
                if found and rest and _outlet_key(head) == key:
                    headline = rest
                    break
        if headline == before:
            break
    for sep in _SEPARATORS:
        head, found, tail = headline.rpartition(sep)
        if not found or not head.strip():
            continue
        if (key and _outlet_key(tail) == key) or _looks_like_outlet(tail.strip(), sep):
            headline = head
            break
    headline = headline.strip(" -–—|:")
    return headline or original
