"""The lead of a digest item: one or two sentences, from a report's text, that say what happened.

Pure: text in, text out; monitor.digests.outbox reads the reports and the feed's other entries.

A lead comes from the report that best represents its cluster: the member the other members
matched most often (the event's most typical report, as the cluster's headline is ranked), ties
to the earliest; when its text yields none, the next best report that does. From that text the
first sentences that read as prose are kept, at most MAX_LEAD characters, cut at a sentence end
(else at a word, with "…").

The stored text is already plain text (monitor.feeds.normalize cleaned it), but feeds put more
than the story in it. Left out, by shape and never by outlet or word lists of one corpus:
- markup and entities that survived as text (a feed that escaped its HTML twice), code, CSS;
- the feed's furniture: a sentence the same feed carries under other titles ("Share this:",
  a captcha prompt, a standing credit line), learnt from the feed's latest entries;
- the title repeated as the first sentence;
- sentences with fewer than MIN_WORDS words that start in lower case (bylines, datelines alone on
  a line, "Photo: Jane Roe/Wire", "Posted 3 hours ago", URL-only lines), scripts without case
  excepted (they need MIN_UNCASED letters);
- generic boilerplate: copyright and "all rights reserved", subscribe / sign up / click here /
  share / read more, photo captions, "posted/updated at", a form's prompt to the reader;
- a teaser's mark and what follows it ("Continue reading…", "[…]").
A report whose text is none of the above gives no lead.
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Container, Iterable, Iterator, Sequence

from monitor.feeds.normalize import html_to_text, one_line

MAX_LEAD = 300  # characters: two wire-style sentences, short enough to scan a digest of fifty items
SOURCE_CHARS = 3000  # only the start of a text is read: a lead is in its first sentences
RECENT_ENTRIES = 50  # a feed's furniture is learnt from this many of its latest entries
FURNITURE_TITLES = 2  # a sentence the feed carries under this many other titles is its furniture
MIN_WORDS = 3  # prose has this many words that start in lower case; credits and datelines do not
MIN_UNCASED = 8  # or this many letters of a script without case (Chinese, Arabic, Hebrew, ...)
MAX_TRIES = 10  # reports tried per cluster, best first, before its item goes without a lead

# -- which report -----------------------------------------------------------------------------------


def best_first(members: Sequence[int], matched: Iterable[int | None]) -> list[int]:
    """Member entry ids (given in published order) with the most representative first.

    `matched` holds each member's best match (memberships.matched_entry_id). The member matched
    most often comes first (clusters.refresh ranks the headline's candidates so too); ties keep
    published order, so the earliest report wins them."""
    hub = Counter(m for m in matched if m is not None)
    return sorted(members, key=lambda e: -hub.get(e, 0))  # sorted() is stable


# -- from text to sentences -------------------------------------------------------------------------

# Markup or an entity that survived as text: a tag's start, or a named/numeric reference.
_MARKUP = re.compile(r"<[A-Za-z/!?]|&(?:#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_LEFTOVER = re.compile(r"<[^<>]{0,300}>|&#?[A-Za-z0-9]{1,32};")
_TEASER = re.compile(
    r"\[\s*(?:…|\.{2,})\s*\]"  # "[…]", "[...]": an excerpt's end
    r"|\(\s*(?:more|read more)?\s*(?:…|\.{2,})\s*\)"  # "(more…)"
    # "Read more", "Continue reading…", "Read the full story at …": a link's text ending the excerpt,
    # at a line's or sentence's start and with at most a short tail after it
    r"|(?:^|(?<=[.!?…:\"”’)\]])[^\S\n]+)"
    r"(?:read more|continue reading|keep reading|full story"
    r"|read the (?:full|whole|rest of the) (?:story|article|report|post)"
    r"|more\s*(?=…|\.{3}|»|\u203a|→|>>))(?=[^\n]{0,60}$)",
    re.IGNORECASE | re.MULTILINE)
_WIDE_STOPS = "\u3002\uff01\uff1f"  # the CJK full stop, exclamation and question marks
_END = ".!?…\u061f\u0964" + _WIDE_STOPS  # and the Arabic question mark, the Devanagari danda
_CLOSERS = "\"'”’»)]」』"
# A sentence's end: terminal punctuation, closing quotes or brackets, then space (none after CJK stops).
_BOUNDARY = re.compile(rf"[.!?…\u061f\u0964]+[{re.escape(_CLOSERS)}]*\s+"
                       rf"|[\u3002\uff01\uff1f]+[{re.escape(_CLOSERS)}]*\s*")
# Words after which a full stop does not end the sentence (English titles, months, company forms).
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st mt ft gen gov sen rep lt col sgt capt cmdr adm maj jr sr inc corp co ltd bros vs "
    "approx dept jan feb mar apr jun jul aug sep sept oct nov dec".split())  # not "no": "she said no."
_NOTE = re.compile(r"^\([^()]{1,120}\)\s*")  # "(Adds details)", "(CNN)": an editor's note or credit
_LEAD_IN = re.compile(r"^[\s\-–—•·*|>:;,]+")  # bullets and dashes left at a sentence's start
_URL = re.compile(r"(?:https?://|www\.)\S+|\S+@\S+\.\w+", re.IGNORECASE)


def _plain(text: str) -> str:
    """The first SOURCE_CHARS of `text` with markup and entities that survived as text removed."""
    if len(text) > SOURCE_CHARS:  # a cut sentence is marked as one
        text = (text[:SOURCE_CHARS].rsplit(None, 1) or [""])[0] + "…"
    for _ in range(3):  # a feed that escaped twice (&amp;lt;p&amp;gt;) needs two rounds
        if not _MARKUP.search(text):
            break
        text = html_to_text(text)
    return _LEFTOVER.sub(" ", text)


def _cut_teaser(text: str) -> str:
    """The text before its first teaser mark; a sentence the mark cut short ends with "…".

    A mark counts after some prose only: a "Read more: …" link above the story is furniture
    (left out as such), not the end of an excerpt."""
    mark = next((m for m in _TEASER.finditer(text) if _is_prose(text[:m.start()])), None)
    if mark is None:
        return text
    text = text[:mark.start()].rstrip()
    if text and text[-1] not in _END + _CLOSERS:
        text = text.rstrip(" ,;:–—-") + "…"
    return text


def _ends_sentence(line: str, end: int) -> bool:
    """Whether the stop before `end` ends a sentence: not before a word in lower case, and not
    after an abbreviation or an initial ("Nov. 8", "J. Smith", "U.S.")."""
    if end < len(line) and line[end].islower():
        return False
    stop = line[:end].rstrip().rstrip(_CLOSERS)
    if not stop.endswith(".") or stop.endswith(".."):
        return True
    words = stop[:-1].split()
    word = words[-1].lstrip("(\"'“\u2018") if words else ""
    return not (len(word) == 1 or "." in word or word.casefold() in _ABBREVIATIONS)


def _split(line: str) -> list[str]:
    pieces, start = [], 0
    for m in _BOUNDARY.finditer(line):
        if _ends_sentence(line, m.end()):
            pieces.append(line[start:m.end()])
            start = m.end()
    pieces.append(line[start:])
    return pieces


def _tidy(sentence: str) -> str:
    sentence = one_line(sentence)
    for _ in range(2):  # "(Adds details) (CNN) — ..."
        sentence = _LEAD_IN.sub("", _NOTE.sub("", sentence))
    return sentence


def _sentences(text: str) -> Iterator[str]:
    """The sentences of plain text, line by line (a line break always ends one), tidied; read as
    far as the caller asks (a lead needs the first few)."""
    for line in text.split("\n"):
        yield from (s for s in (_tidy(p) for p in _split(line)) if s)


_DIGITS = re.compile(r"\d+")
_NOT_WORD = re.compile(r"[\W_]+")


def sentence_key(sentence: str) -> str:
    """What two sentences share when one repeats the other: case, digits, punctuation and spacing
    ignored ("Posted 3 hours ago" is "Posted 5 hours ago")."""
    text = unicodedata.normalize("NFKC", sentence).casefold()
    return " ".join(_NOT_WORD.sub(" ", _DIGITS.sub("0", text)).split())


# Where a text is cut into sentences for FeedFurniture: at every stop and line break.
_ROUGH_END = re.compile(rf"[.!?…\u061f\u0964]+[{re.escape(_CLOSERS)}]*(?:\s+|$)"
                        rf"|[\u3002\uff01\uff1f]+[{re.escape(_CLOSERS)}]*\s*|\n")
_NOT_WORD_OR_BREAK = re.compile(r"[^\w\n]+|_+")
_BREAKS = re.compile(r" *\n\s*")


def _keyed_lines(text: str) -> str:
    """`text` as the keys (sentence_key) of its sentences, one a line, with a line break at each end."""
    text = _ROUGH_END.sub("\n", unicodedata.normalize("NFKC", text).casefold())
    return "\n" + _BREAKS.sub("\n", _NOT_WORD_OR_BREAK.sub(" ", _DIGITS.sub("0", text))).strip() + "\n"


# -- what is not a lead -----------------------------------------------------------------------------

# Boilerplate a page puts around any story, wherever it stands in a sentence.
_BOILERPLATE = re.compile(
    r"©|\(c\)\s*\d{4}|\bcopyright\s*(?:©|\(c\))?\s*\d{4}|\ball rights reserved\b"
    r"|\b(?:click|tap) here\b|\bappeared first on\b"
    r"|\b(?:sign up|subscribe|register)\b[^.!?]{0,40}\b(?:newsletter|alerts|updates|podcast)\b"
    r"|\b(?:we use|this (?:site|website) uses) cookies\b"
    r"|\benable javascript\b|\bjavascript is (?:disabled|required)\b",
    re.IGNORECASE)
# Boilerplate that is recognised by how the sentence starts (a sentence that is only "Advertisement").
_BOILERPLATE_START = re.compile(
    r"(?:share(?:\s+(?:this|on|via|with)\b|\s*[:|!]|\s*$)"
    r"|(?:subscribe|sign up|sign in|log in|follow us|read more|continue reading)\b"
    r"|related(?: stories| articles| coverage)?\s*:|(?:advertisement|sponsored(?: content)?)\s*$"
    r"|(?:file )?(?:photo|image|picture|video|audio|caption|credit|source)s?\s*(?:\([^)]*\))?\s*[:|/]"
    r"|(?:you must|please|kindly) (?:enter|enable|log in|sign in|register|be logged|turn on|update your)"
    r"|leave a (?:comment|reply)|comments? (?:are|is) closed|\d+ comments?\b)",
    re.IGNORECASE)
# A time stamp: "Posted 3 hours ago", "Updated at 10:30 on 21 Nov". Only in a short sentence: a
# long one starting "Published in 2015, the report found ..." is prose.
_STAMP = re.compile(r"(?:posted|updated|published|last updated|first published)\b[^.!?]{0,50}?"
                    r"(?:\bago\b|\d{1,2}[:.]\d{2}|\b(?:on|at)\b)", re.IGNORECASE)
_SHORT_STAMP = 80
# Code and style sheets that reached the text: braces, operators, declarations.
_CODE = re.compile(
    r"[{}]|=>|&&|\|\||</?[A-Za-z]|/>|\bfunction\s*\(|\b(?:var|let|const)\s+[\w$]+\s*="
    r"|\b(?:window|document)\.\w|(?:[\w-]+\s*:\s*[^;:\s][^;:]{0,40};\s*){2,}")


def _is_prose(sentence: str) -> bool:
    """MIN_WORDS words starting in lower case (URLs and addresses do not count), or MIN_UNCASED
    letters of a script without case."""
    text = _URL.sub(" ", sentence)
    lower = 0
    for word in text.split():
        first = next((c for c in word if c.isalpha()), "")
        lower += first.islower()
    if lower >= MIN_WORDS:
        return True
    return sum(1 for c in text if c.isalpha() and not c.islower() and not c.isupper()) >= MIN_UNCASED


def _is_boilerplate(sentence: str) -> bool:
    return bool(_BOILERPLATE.search(sentence) or _CODE.search(sentence) or _BOILERPLATE_START.match(sentence)
                or (len(sentence) <= _SHORT_STAMP and _STAMP.match(sentence)))


def _without_title(sentence: str, titles: Sequence[str]) -> str:
    """The sentence without a title it starts with ("Iran blocks Telegram TEHRAN - Police said …"):
    a title of four words or more, followed by a break and a word not in lower case."""
    for title in titles:
        title = one_line(title)
        if len(title.split()) < 4 or sentence[:len(title)].casefold() != title.casefold():
            continue
        rest = re.match(r"[\s\-–—:|.]*\s", sentence[len(title):] + " ")
        tail = sentence[len(title):][rest.end():] if rest else ""
        if rest and tail and not tail[0].islower():
            return _tidy(tail)
    return sentence


def _cut(sentence: str, limit: int) -> str:
    """A sentence longer than `limit`, cut at a word boundary with "…" (at a character in scripts
    without spaces)."""
    cut = sentence[:limit - 1]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:–—-") + "…"


# -- the lead ---------------------------------------------------------------------------------------


class FeedFurniture:
    """The sentences a feed repeats around its stories, asked one at a time (`key in furniture`).

    A sentence is furniture when the feed's latest entries carry it under at least `min_titles`
    different titles. `entries` are (title, text) of those entries outside the cluster whose lead
    is wanted: a story's own updates share its sentences, and they are not furniture.

    Asking is cheap, as digests ask about a few sentences of one report per item: a text is
    keyed (cut roughly into sentences, every stop ending one) only when it holds the sentence's
    longest word, and counting stops at `min_titles`."""

    def __init__(self, entries: Iterable[tuple[str, str]], min_titles: int = FURNITURE_TITLES) -> None:
        self._entries = [(sentence_key(title), text) for title, text in entries]
        self._min_titles = min_titles
        self._folded: dict[int, str] = {}
        self._keyed: dict[int, str] = {}
        self._known: dict[str, bool] = {}

    def _text(self, i: int, keyed: bool) -> str:
        """Entry i's text keyed (_keyed_lines), or only folded to look for a word: cheap, and as
        stored (a word that markup cuts in two is rare; such a text is then passed over)."""
        cache = self._keyed if keyed else self._folded
        if i not in cache:
            text = self._entries[i][1]
            cache[i] = _keyed_lines(_plain(text)) if keyed else unicodedata.normalize("NFKC", text).casefold()
        return cache[i]

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str) or not key:
            return False
        if key not in self._known:
            line = f"\n{key}\n"
            word = max((w for w in key.split() if "0" not in w), key=len, default="")  # digits are keyed "0"
            titles: set[str] = set()
            for i, (title, _) in enumerate(self._entries):
                if title in titles or word not in self._text(i, keyed=False) \
                        or line not in self._text(i, keyed=True):
                    continue
                titles.add(title)
                if len(titles) >= self._min_titles:
                    break
            self._known[key] = len(titles) >= self._min_titles
        return self._known[key]


def candidates(text: str, titles: Sequence[str] = ()) -> Iterator[str]:
    """The sentences of `text` that could be its lead, in order, as far as the caller reads:
    markup, teasers, the title and boilerplate left out, and only prose. Whether the feed
    repeats one is `compose`'s to ask.

    `titles` are the report's title and the cluster's headline."""
    title_keys = {sentence_key(t) for t in titles}
    for s in _sentences(_cut_teaser(_plain(text))):
        s = _without_title(s, titles)
        key = sentence_key(s)
        if key and key not in title_keys and not _is_boilerplate(s) and _is_prose(s):
            yield s


def compose(sentences: Iterable[str], furniture: Container[str] = frozenset(),
            limit: int = MAX_LEAD) -> str | None:
    """The lead from candidate sentences: the first two that are not the feed's `furniture` (sentence
    keys) when both fit in `limit` characters, else the first, cut at a word with "…" if it is longer;
    None when there is none."""
    kept: list[str] = []
    for s in sentences:
        if sentence_key(s) not in furniture:
            kept.append(s)
            if len(kept) == 2:
                break
    if not kept:
        return None
    first = kept[0]
    if len(first) > limit:
        return _cut(first, limit)
    space = "" if first[-1] in _WIDE_STOPS else " "  # no space after a full-width stop
    if len(kept) == 2 and len(first) + len(space) + len(kept[1]) <= limit:
        return f"{first}{space}{kept[1]}"
    return first


def make_lead(text: str, titles: Sequence[str] = (), furniture: Container[str] = frozenset(),
              limit: int = MAX_LEAD) -> str | None:
    """One or two sentences of `text` that say what happened, at most `limit` characters; None
    when the text holds none. `titles`: see `candidates`; `furniture`: a FeedFurniture."""
    return compose(candidates(text, titles), furniture, limit)
