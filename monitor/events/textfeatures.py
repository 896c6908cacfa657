"""Text features of one entry for event clustering: terms, names and stated days.

Pure functions over plain text. Everything here is generic English text processing
(folding, tokenising, a light stemmer, a stopword list, capitalised-name and date
heuristics); nothing is tuned to one corpus, outlet or topic.
"""
from __future__ import annotations

import contextlib
import re
import sys
import unicodedata
from collections.abc import Iterable
from datetime import date
from functools import lru_cache
from typing import NamedTuple

# Generic English function words plus reporting verbs and calendar words. Calendar words
# are left out of the term vector because time is modelled separately (published time
# and stated days); reporting verbs ("said", "told") occur in nearly every news item.
STOPWORDS = frozenset(
    """
    a about above after again against ago all almost along already also although always am among an and
    another any anyone anything are around as at away back be became because become been before being below
    between both but by can cannot could did do does doing done down during each early earlier either else
    enough even ever every few first for from further get gets got had has have having he her here hers
    herself him himself his how however i if in including into is it its itself just last late later least
    less like made make many may me might more most much must my myself near nearly new next no nor not now
    of off often on once one only onto or other others otherwise our ours ourselves out over own per rather
    s same say says said saying she should since so some still such than that the their theirs them
    themselves then there these they this those though through thus to too toward towards under until up
    upon us very via was we well were what whatever when where whether which while who whom whose why will
    with within without would yet you your yours yourself yourselves t don doesn didn isn wasn aren weren
    won wouldn couldn shouldn hasn haven hadn ll re ve d m o told tell tells according reported reports
    week weeks day days month months year years today yesterday tomorrow tonight morning afternoon evening
    night time times monday tuesday wednesday thursday friday saturday sunday january february march april
    june july august september october november december jan feb mar apr jun jul aug sep sept oct nov dec
    am pm gmt utc mr mrs ms dr
    """.split()
)

WEEKDAYS = {name: i for i, name in enumerate(
    ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))}
MONTHS = {
    "jan": 1, "january": 1, "feb": 2, "february": 2, "mar": 3, "march": 3, "apr": 4, "april": 4,
    "may": 5, "jun": 6, "june": 6, "jul": 7, "july": 7, "aug": 8, "august": 8, "sep": 9, "sept": 9,
    "september": 9, "oct": 10, "october": 10, "nov": 11, "november": 11, "dec": 12, "december": 12,
}
NUMBER_WORDS = {
    "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8",
    "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "dozen": "12", "twenty": "20",
    "thirty": "30", "forty": "40", "fifty": "50", "hundred": "100", "thousand": "1000",
    "million": "million", "billion": "billion", "mln": "million", "bln": "billion", "bn": "billion",
    "pct": "percent", "cent": "percent",
}

_QUOTES = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "`": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2013": "-", "\u2014": "-", "\u2010": "-",
    "\u2011": "-", "\u2212": "-", "\u00a0": " ",
})
_TOKEN = re.compile(r"\d+(?:[.,:]\d+)*|[^\W\d_]+(?:'[^\W\d_]+)*")
_WORD = re.compile(r"[^\W\d_]+")
_PUNCTUATION = bytes.maketrans(b'!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~', b" " * 31)
_OUTSIDE_TOKENS = bytes.maketrans(b'!"#$%&()*+-/;<=>?@[\\]^_`{|}~', b" " * 28)  # not . , : '
_DIGITS = b"0123456789"
_SENTENCE_END = re.compile(r"[.!?]['\")\]]*\s+|\n\s*")
# A name in two parts joined by a hyphen or an Arabic/Persian particle:
# "Farnaghi-Zadeh", "Montazer-Mahdi", "Montazer al-Mahdi", "al-Abadi".
_COMPOUNDS = (
    re.compile(r"\b([A-Z][a-z]{2,})-([A-Z][a-z]{2,})\b"),
    re.compile(r"\b([A-Z][a-z]{2,}) (al|el|ul|ad|ash|as|bin|ibn|abu|abd)-([A-Z][a-z]{2,})\b"),
    re.compile(r"\b([Aa]l|[Ee]l)-([A-Z][a-z]{2,})\b"),
)
_COMPOUND_JOIN = re.compile(r"-[A-Z]")  # in every match of each of them: most hyphens have none
# "Oct 26", "October 26", "26 October", "Nov. 8"
_DATE_MD = re.compile(r"\b([A-Za-z]{3,9})\.? (\d{1,2})(?:st|nd|rd|th)?\b")
_DATE_DM = re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)? (?:of )?([A-Za-z]{3,9})\b")
_RELATIVE_DAYS = {"today": 0, "tonight": 0, "yesterday": -1, "tomorrow": 1}


_QUOTE_CHARS = re.compile("[" + "".join(chr(c) for c in _QUOTES if c != ord("`")) + "`]")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_combining_marks: re.Pattern | None = None


def _combining() -> re.Pattern:
    """Runs of Basic Multilingual Plane characters with a non-zero canonical combining class.

    Built on first use. Only the Basic Multilingual Plane: a character class within it is
    one table look-up per character, one with wider ranges a walk through them.
    """
    global _combining_marks
    if _combining_marks is None:
        ranges: list[list[int]] = []
        for cp in range(0x300, 0x10000):
            if unicodedata.combining(chr(cp)):
                if ranges and ranges[-1][1] == cp - 1:
                    ranges[-1][1] = cp
                else:
                    ranges.append([cp, cp])
        _combining_marks = re.compile(
            "[" + "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges) + "]+")
    return _combining_marks


def _quote(m: re.Match[str]) -> str:
    return _QUOTES[ord(m.group())]


def fold(text: str) -> str:
    """Unicode-normalise: compatibility forms, no diacritics, ASCII quotes and dashes.

    Only combining marks are dropped: letters of every script are kept. (The same as
    translating _QUOTES, then NFKD and dropping every character with a combining class,
    without a per-character pass in Python: str.translate with a mapping is one for any
    text that is not ASCII.)
    """
    if text.isascii():
        return text.replace("`", "'") if "`" in text else text
    if _QUOTE_CHARS.search(text) is not None:
        text = _QUOTE_CHARS.sub(_quote, text)
        if text.isascii():
            return text
    decomposed = unicodedata.normalize("NFKD", text)
    if decomposed.isascii():
        return decomposed
    if _ASTRAL.search(decomposed) is None:
        return _combining().sub("", decomposed)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@lru_cache(maxsize=100_000)
def stem(word: str) -> str:
    """A light, conservative English stemmer (plural, -ed, -ing, British -ise/-our/-tre).

    Light on purpose: it joins inflections of one word ("arrests", "arrested") without
    the over-merging of aggressive stemmers, and maps British to US spelling so that
    "criminalises" and "criminalizes" meet.
    """
    w = word
    if len(w) <= 3 or not w.isalpha():
        return w
    if w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("sses"):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is", "ys")):
        w = w[:-1]
    if w.endswith("ied") and len(w) > 5:
        w = w[:-3] + "y"
    elif w.endswith("ed") and len(w) > 5:
        w = _undouble(w[:-2])
    elif w.endswith("ing") and len(w) > 6:
        w = _undouble(w[:-3])
    if len(w) > 6:
        if w.endswith("isation"):
            w = w[:-7] + "ization"
        elif w.endswith("is") or w.endswith("ise"):
            w = w[:-2] + "iz" if w.endswith("is") else w[:-3] + "iz"
        elif w.endswith("ize"):
            w = w[:-1]
    if len(w) > 5 and w.endswith("our"):
        w = w[:-3] + "or"
    elif len(w) > 5 and w.endswith("tre"):
        w = w[:-3] + "ter"
    if len(w) > 4 and w.endswith("e"):
        w = w[:-1]
    return w


def _undouble(w: str) -> str:
    if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "lsz":
        return w[:-1]
    return w


def normalise_number(tok: str) -> str:
    """'5,000' -> '5000'; '85.4' stays; '7:40' stays."""
    if "," in tok and re.fullmatch(r"\d{1,3}(?:,\d{3})+", tok):
        return tok.replace(",", "")
    return tok.rstrip(".,")


def word_tokens(text: str) -> list[str]:
    """Lower-cased word and number tokens, possessive 's removed."""
    out = []
    for t in _TOKEN.findall(text.lower()):
        out.append(t[:-2] if t.endswith("'s") else t)
    return out


def raw_tokens(text: str) -> list[str]:
    """Word and number tokens as written (case kept).

    ASCII text without digits (most sentences) is split on punctuation and spaces
    (ascii_words), which gives the same tokens as the tokenising expression several times
    faster, but for two or more apostrophes in a row inside a word: "rock''n" stays one
    token where the expression makes two (no sentence of either corpus has one). Other
    ASCII text gets exactly the expression's tokens, found without it (ascii_tokens); the
    rest goes through the expression.
    """
    words = ascii_words(text)
    if words is not None:
        return words
    tokens = ascii_tokens(text)
    return _TOKEN.findall(text) if tokens is None else tokens


def ascii_words_py(text: str) -> list[str] | None:
    """raw_tokens of ASCII text without digits (most sentences): it is split on punctuation
    and spaces, and apostrophes are taken off the ends of words. None for other text."""
    if not text.isascii():
        return None
    data = text.encode()
    if len(data.translate(None, _DIGITS)) != len(data):  # a digit (cheaper than a search)
        return None
    words = data.translate(_PUNCTUATION).decode().split()
    if "'" not in text:
        return words
    return [t for t in (w.strip("'") for w in words) if t]


def ascii_tokens_py(text: str) -> list[str] | None:
    """The tokenising expression's tokens of ASCII text (None for other text): it is split
    where no token goes on (white space, punctuation other than . , : and '), and only the
    pieces that are not plain words are tokenised."""
    if not text.isascii():
        return None
    tokens: list[str] = []
    for piece in text.encode().translate(_OUTSIDE_TOKENS).decode().split():
        if piece.isalpha():
            tokens.append(piece)
        else:
            tokens += _TOKEN.findall(piece)
    return tokens


ascii_words = ascii_words_py
ascii_tokens = ascii_tokens_py
with contextlib.suppress(ImportError):  # built without a C compiler: the same tokens, slower
    from ._reading import ascii_tokens, ascii_words


def _term_of(token: str) -> str | None:
    """The index term for one lower-case token, or None for stopwords and noise."""
    if token[0].isdigit():
        return None if ":" in token else normalise_number(token)  # clock times say nothing
    if "'" in token:
        if token.endswith("'s"):
            token = token[:-2]
        token = token.replace("'", "")
        if not token:
            return None
    if token in NUMBER_WORDS:
        return NUMBER_WORDS[token]
    if token in STOPWORDS or len(token) < 2:
        return None
    return stem(token)


class _Terms(dict):
    """token -> term, filled on demand. A hit is one dict look-up in C (called for every
    token of every entry, it costs half what lru_cache's bookkeeping does); emptied when
    it reaches TERM_CACHE tokens, which a day of news does not."""

    def __missing__(self, token: str) -> str | None:
        if len(self) >= TERM_CACHE:
            self.clear()
        term = _term_of(token)
        if term is not None:
            term = sys.intern(term)  # one object per term, whichever token it came from
        self[token] = term
        return term


TERM_CACHE = 100_000
term_of = _Terms().__getitem__  # the index term for one lower-case token, or None for stopwords and noise


class TokenInfo(NamedTuple):
    """What reading needs of one token as written (see token_info)."""

    low: str  # the token lower-cased
    term: str | None  # term_of(low)
    capital: bool  # its first character is a capital letter
    lower: bool  # its first character is a lower-case letter


class _Tokens(dict):
    """token as written -> TokenInfo, filled on demand and emptied like _Terms. One look-up
    per token of a sentence instead of lower-casing it (a new string, hashed again to find
    its term) and testing its first character twice: most tokens are words seen before."""

    def __missing__(self, token: str) -> TokenInfo:
        if len(self) >= TERM_CACHE:
            self.clear()
        low = token.lower()
        first = token[0]
        info = TokenInfo(low, term_of(low), first.isupper(), first.islower())
        self[token] = info
        return info


TOKENS = _Tokens()  # token as written -> TokenInfo (monitor.events.reading reads it in C too)
token_info = TOKENS.__getitem__  # TokenInfo of one token as written (raw_tokens)


def sentences(text: str) -> list[str]:
    """Sentences, and lines: plain text made from HTML keeps each block element on a line."""
    spans = sentence_spans(text)
    if spans is None:  # not ASCII: the expression splits it in one pass
        return [s for s in _SENTENCE_END.split(text) if s.strip()]
    return sentences_between(text, spans, len(text))


def sentence_ends(text: str) -> list[tuple[int, int]]:
    """Each match of _SENTENCE_END in the text, as (start, end), in order (compiled for ASCII)."""
    spans = sentence_spans(text)
    return [m.span() for m in _SENTENCE_END.finditer(text)] if spans is None else spans


def sentences_between(text: str, spans: list[tuple[int, int]], end: int) -> list[str]:
    """The sentences of text[:end] whose separators are `spans` (all of them, all ending by
    `end`): what _SENTENCE_END.split gives of it, less the empty and blank pieces."""
    out = []
    at = 0
    for start, stop in spans:
        piece = text[at:start]
        if piece.strip():
            out.append(piece)
        at = stop
    if text[at:end].strip():
        out.append(text[at:end])
    return out


def sentence_spans_py(text: str) -> list[tuple[int, int]] | None:
    """Where the sentences of ASCII text end: each match of _SENTENCE_END, as (start, end), in order.
    None for other text, which the expression reads (the compiled twin reads ASCII only)."""
    if not text.isascii():
        return None
    return [m.span() for m in _SENTENCE_END.finditer(text)]


sentence_spans = sentence_spans_py
with contextlib.suppress(ImportError):  # built without a C compiler: the same spans, slower
    from ._reading import sentence_spans


def compound_names(sentence: str) -> list[str]:
    """Names written as hyphen or particle compounds, joined: "Montazer al-Mahdi" -> "montazeralmahdi".

    Outlets transliterate such names as one word, two words or a hyphenated pair; the
    joined form meets the one-word spelling exactly and the others up to a small edit
    distance (see NameVariants).
    """
    if _COMPOUND_JOIN.search(sentence) is None:  # one scan instead of three ("28-year-old")
        return []
    return ["".join(m.groups()).lower() for rx in _COMPOUNDS for m in rx.finditer(sentence)]


def is_title_case(title: str) -> bool:
    """Headline style in which every word is capitalised, so capitals say nothing about names."""
    words = [w for w in _WORD.findall(title) if w.lower() not in STOPWORDS]
    if len(words) < 3:
        return False
    caps = sum(1 for w in words if w[0].isupper())
    return caps >= 0.8 * len(words)


DAY_WORDS: frozenset[str] = frozenset(WEEKDAYS) | frozenset(_RELATIVE_DAYS)
MONTH_WORDS: frozenset[str] = frozenset(MONTHS)


def stated_days(text: str, published: date, tokens: Iterable[str] | None = None) -> frozenset[int]:
    """Days (proleptic ordinals) that the text names: weekdays, today/yesterday, month-day dates.

    A weekday is resolved to the date in [published - 5 days, published + 1 day] that has
    that weekday: news mostly refers to the last few days, and the extra day covers time
    zones and "on the eve of Thursday's vote". Month-day dates take the year that puts
    them nearest the published date; dates after the day after publication are schedules
    ("the transfer window opens on Jan. 1"), not the day something happened, and are left
    out. A weekday next to a full date of that weekday ("Friday, June 21st") is that date.
    `tokens`, the text's lower-case tokens, saves a pass.
    """
    words = set(word_tokens(text) if tokens is None else tokens)
    base = published.toordinal()
    dates: set[int] = set()
    if not words.isdisjoint(MONTH_WORDS):
        for rx, mi, di in ((_DATE_MD, 1, 2), (_DATE_DM, 2, 1)):
            for m in rx.finditer(text):
                name = m.group(mi)
                month = MONTHS.get(name.lower())
                if month is None or name == "may":  # "may 5" is a verb, "May 5" a date
                    continue
                day = int(m.group(di))
                best = None
                for year in (published.year - 1, published.year, published.year + 1):
                    try:
                        d = date(year, month, day).toordinal()
                    except ValueError:
                        continue
                    if best is None or abs(d - base) < abs(best - base):
                        best = d
                if best is not None and best <= base + 1:  # a later date is a schedule, not a happening
                    dates.add(best)
    days = set(dates)
    # ordinal 1 (0001-01-01) is a Monday, so an ordinal's weekday is (ordinal - 1) % 7
    dated_weekdays = {(d - 1) % 7 for d in dates}
    for w in words & DAY_WORDS:
        if w in WEEKDAYS:
            if WEEKDAYS[w] in dated_weekdays:
                continue  # "Friday, June 21st": the weekday names a date given in full
            offset = (WEEKDAYS[w] - (base - 1) % 7) % 7  # days forward to that weekday
            days.add(base + offset if offset <= 1 else base + offset - 7)
        else:
            days.add(base + _RELATIVE_DAYS[w])
    return frozenset(days)


def day_distance(a: frozenset[int], b: frozenset[int]) -> int | None:
    """Smallest distance in days between two stated-day sets; None when either is empty."""
    if not a or not b:
        return None
    return min(abs(x - y) for x in a for y in b)


