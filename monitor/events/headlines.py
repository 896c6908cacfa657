"""Headlines for people: a feed's title furniture, cut headlines, a cluster's headline, and the
words behind stored terms.

Pure: titles and texts in, strings out (storage reads a feed's recent titles and names, the
members of a cluster and their texts). Nothing here changes what the clusterer decides.

- *Furniture is learned per feed*: what a feed repeats before or after a separator around
  headlines that differ ("... - KHBR 9 - Portvale, ST News On Your Side", "... :: KHBR.com",
  "KHBR 9 - ...") is its own furniture, whatever words it uses; a segment that starts with the
  feed's own name (its title, channel title or site) is too. Generic shapes (wire slugs, a
  trailing "| Outlet") are `monitor.feeds.normalize.clean_headline`'s, which runs first.
- *Cut headlines*: feeds cut long titles to a length, mid-word ("... Lakeside Park shooti") or
  with an ellipsis. A cluster's headline is a complete one when a member has one.
- *Words, not stems*: the clusterer stores terms ("activ", "polic", "almahdi"); explanations
  show the word as the text writes it ("active", "police", "al-Mahdi").
"""
from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from monitor.events import textfeatures as tf

# What outlets put between a headline and their furniture. ": " too ("Portvale News: ..."), but only
# text repeated across a feed's titles is stripped at one, so "Police: 4 shot" keeps its label.
SEPARATORS = (" :: ", " - ", " – ", " — ", " | ", " \uff5c ", " · ", " • ", " « ", " » ", ": ")
_SEPARATOR = re.compile("|".join(map(re.escape, SEPARATORS)))
RECENT_TITLES = 50  # a feed's titles that its furniture is learned from (its latest)
MIN_REPEATS = 3  # an affix is learned when at least this many distinct titles carry it...
MAJORITY = 0.6  # ...and at least this share of them: furniture is on nearly every title
MIN_CUT_FURNITURE = 10  # a trailing segment this long that starts a learned suffix is a cut copy of it
MIN_NAME_KEY = 4  # a feed name shorter than this ("khb") must match a segment whole, not its start
ELLIPSIS = "…"

_WORD_CHARS = r"[^\W\d_]"
_HAS_WORD = re.compile(r"[^\W_]")
# an ellipsis at the end, or before furniture left on ("PRESS NOTICE 12 June... - Portvale Police")
_CUT_BY_ELLIPSIS = re.compile(r"(?:…|\.\.\.)\s*(?:$|" + _SEPARATOR.pattern + ")")
_LAST_WORD = re.compile(rf"(?<!\w)({_WORD_CHARS}+)$")
_LINE_END = re.compile(r"[ \t]*(?:\n|$)")
# Endings that make another form of a complete word, not the rest of a cut one: a headline
# ending "... in shooting" or "... accident" next to a text that only writes "shootings" or
# "accidental" is not cut.
_INFLECTIONS = frozenset({"s", "es", "ed", "ing", "er", "ers", "al", "ally", "ly"})

# Tokens as the clusterer cuts them (textfeatures._TOKEN), with typographic apostrophes too:
# the clusterer sees the text folded, where "’" has become "'".
_SURFACE_TOKEN = re.compile(r"\d+(?:[.,:]\d+)*|[^\W\d_]+(?:['’][^\W\d_]+)*")
_POSSESSIVE = re.compile(r"['’]s$")
# textfeatures._COMPOUNDS over unfolded text: letters of any script, and the dashes fold() turns into "-"
_DASH = "[-\u2010\u2011\u2013\u2014\u2212]"
_PARTICLES = "al|el|ul|ad|ash|as|bin|ibn|abu|abd"
_SURFACE_COMPOUNDS = (
    re.compile(rf"(?<!\w)({_WORD_CHARS}{{3,}}){_DASH}({_WORD_CHARS}{{3,}})(?!\w)"),
    re.compile(rf"(?<!\w)({_WORD_CHARS}{{3,}}) ({_PARTICLES}){_DASH}({_WORD_CHARS}{{3,}})(?!\w)"),
    re.compile(rf"(?<!\w)([Aa]l|[Ee]l){_DASH}({_WORD_CHARS}{{3,}})(?!\w)"),
)


@dataclass(frozen=True)
class Affixes:
    """A feed's title furniture: learned prefixes and suffixes (without their separator), and the
    keys of the feed's own names (`name_key`)."""

    prefixes: frozenset[str] = frozenset()
    suffixes: frozenset[str] = frozenset()
    names: tuple[str, ...] = ()


_WWW = re.compile(r"^(?:www\d?|m)\.")
_TLD = re.compile(r"\.(?:com|net|org|info|news|co\.uk|com\.au|co)$")
_THE = re.compile(r"^the\s+")
_NON_WORD = re.compile(r"[\W_]+")


@lru_cache(maxsize=4096)  # a feed's furniture repeats: its segments are keyed again and again
def name_key(name: str) -> str:
    """An outlet name reduced to what its spellings share: "KHBR.com", "www.khbr.com" and "KHBR" -> "khbr".

    A URL gives its host. Lower case, no diacritics, no "www.", no final ".com"-style domain, no
    leading "the", no spaces or punctuation."""
    name = name.strip()
    if "://" in name:
        try:
            name = urlsplit(name).hostname or ""
        except ValueError:
            return ""
    name = tf.fold(name).lower()
    name = _WWW.sub("", name)
    name = _TLD.sub("", name)
    name = _THE.sub("", name)
    return _NON_WORD.sub("", name)


def learn_affixes(titles: Iterable[str], names: Iterable[str | None] = ()) -> Affixes:
    """A feed's furniture, from its recent titles (`RECENT_TITLES`) and its names (feed title,
    channel title, site URL).

    An affix is the text before the first or after the last of some separator that at least
    MIN_REPEATS distinct titles and a MAJORITY of them share. Titles are counted once each,
    so a feed whose titles are all one ("News", "Update - Gulf Ledger") learns nothing from
    them: furniture is what stays while the headline changes. A feed with one or two titles
    learns nothing either.
    """
    distinct = list(dict.fromkeys(" ".join(t.split()) for t in titles))
    distinct = [t for t in distinct if t]
    prefixes: Counter[str] = Counter()
    suffixes: Counter[str] = Counter()
    for title in distinct:
        heads, tails = set(), set()
        for m in _SEPARATOR.finditer(title):
            head, tail = title[: m.start()].strip(), title[m.end():].strip()
            if _HAS_WORD.search(head) and _HAS_WORD.search(tail):
                heads.add(head)
                tails.add(tail)
        prefixes.update(heads)
        suffixes.update(tails)
    need = max(MIN_REPEATS, math.ceil(MAJORITY * len(distinct)))
    keys = tuple(dict.fromkeys(k for k in (name_key(n) for n in names if n) if len(k) >= 2))
    return Affixes(prefixes=frozenset(p for p, n in prefixes.items() if n >= need),
                   suffixes=frozenset(s for s, n in suffixes.items() if n >= need), names=keys)


def _names_segment(segment: str, names: tuple[str, ...], whole: bool) -> bool:
    """Whether `segment` is the feed's own name (`whole`), or starts with it
    ("KHBR.com - Portvale, ST" for khbr.com)."""
    if not names:
        return False
    key = name_key(segment)
    if not key:
        return False
    return any(key == n or (not whole and len(n) >= MIN_NAME_KEY and key.startswith(n)) for n in names)


def strip_affixes(title: str, affixes: Affixes) -> str:
    """`title` without the feed's furniture (`learn_affixes`); a title that is nothing but
    furniture ("Portvale Star", "KHBR 9 - Portvale Star") is returned as it is, never emptied.

    Trailing: the longest tail (after a separator) that is a learned suffix, the start of one
    at least MIN_CUT_FURNITURE characters long (a feed that cuts its titles to a length cuts
    its furniture too), or a segment starting with the feed's name. Leading: the longest head
    that is a learned prefix or the feed's name itself.
    """
    original = title
    title = whole = " ".join(title.split())
    for m in _SEPARATOR.finditer(title):  # left to right: the first match strips the most
        tail = title[m.end():].strip()
        # after ": " only learned furniture goes: "Sheriff: KHBR crew shot at" is a headline
        loose = m.group() != ": "
        furniture = tail in affixes.suffixes or (loose and (
            (len(tail) >= MIN_CUT_FURNITURE and any(s.startswith(tail) for s in affixes.suffixes))
            or _names_segment(tail, affixes.names, whole=False)))
        if furniture:
            head = title[: m.start()].rstrip()
            if _HAS_WORD.search(head):
                title = head
                break
    cut = None
    for m in _SEPARATOR.finditer(title):  # the last match strips the most
        head = title[: m.start()].strip()
        if head in affixes.prefixes or _names_segment(head, affixes.names, whole=True):
            cut = m.end()
    if cut is not None and _HAS_WORD.search(title[cut:]):
        title = title[cut:].lstrip()
    only_furniture = (title in affixes.prefixes or title in affixes.suffixes
                      or _names_segment(title, affixes.names, whole=True))
    return original if title == whole or only_furniture or not _HAS_WORD.search(title) else title


def cut_word(title: str, context: Iterable[str]) -> str | None:
    """The title's last word when the title was cut in it: a word of `context` (the entry's
    own text, the members' titles one a line) starts with it, and it is no word of `context`
    itself, but for one that ends a line: other titles are cut too, and the title itself
    may be among them.
    None otherwise: also when the title ends with anything but a letter, or with an
    abbreviation, or when the longer words are only its inflections (`_INFLECTIONS`)."""
    m = _LAST_WORD.search(title.rstrip())
    if m is None:
        return None
    word = m.group(1)
    if len(word) > 1 and word.isupper():
        return None  # an abbreviation is written whole: "ST" is not a cut "State"
    low_word = word.lower()
    longer = False
    # str.find rather than a regular expression: one compiled per title costs more than the search
    for text in context:
        low = text.lower()
        at = low.find(low_word)
        while at >= 0:
            if at == 0 or not _is_word_char(low[at - 1]):
                start = end = at + len(low_word)
                while end < len(low) and low[end].isalpha():
                    end += 1
                ending = low[start:end]
                if not ending:
                    if not _LINE_END.match(low, start):
                        return None  # the word itself: written as a whole word, it is not a cut
                    # else a title ending in it (one a line) may be cut there too ("... shooting tha")
                elif ending not in _INFLECTIONS:
                    longer = True
            at = low.find(low_word, at + 1)
    return word if longer else None


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


def is_incomplete(title: str, context: Iterable[str]) -> bool:
    """Whether a (cleaned) title is cut: by an ellipsis (at its end, or before a separator), or
    in a word (`cut_word`)."""
    return _CUT_BY_ELLIPSIS.search(title) is not None or cut_word(title, context) is not None


def choose_headline(matched: Sequence[int], complete: Callable[[int], bool]) -> int:
    """The index of a cluster's headline among its members (in published order): a complete
    title first, then the member others matched most often (`matched[i]`: the event's most
    typical report), then the earliest. `complete(i)` is asked lazily, best candidates
    first, so a caller reads a member's text only when it is needed; when no title is
    complete the best of them is chosen."""
    ranked = sorted(range(len(matched)), key=lambda i: (-matched[i], i))
    return next((i for i in ranked if complete(i)), ranked[0])


def shown_headline(title: str, context: Iterable[str]) -> str:
    """A chosen title as shown: a title cut in a word ends with an ellipsis, saying so."""
    return title + ELLIPSIS if cut_word(title, context) is not None else title


def _surface(token: str) -> str:
    return _POSSESSIVE.sub("", token)


def surface_words(terms: Iterable[str], texts: Iterable[str]) -> dict[str, str]:
    """Each term (`textfeatures.term_of` of a token, or the stem of a compound name) -> the word
    as `texts` write it; terms not found are left out.

    The first form written in lower case wins, else the first form: "police" rather than a
    headline's "Police", "Mahdi" for a name. A name term of several words ("yahya jammeh")
    is looked up word by word (`shared_words`)."""
    wanted = set(terms)
    found: dict[str, str] = {}
    settled: set[str] = set()  # found in lower case: nothing better to look for
    for raw in texts:
        if wanted <= settled:
            break
        text = unicodedata.normalize("NFC", raw)
        for m in _SURFACE_TOKEN.finditer(text):
            token = m.group()
            folded = tf.fold(token).lower()
            term = tf.term_of(folded) if folded else None
            if term is None or term not in wanted or term in settled:
                continue
            if term not in found:
                found[term] = _surface(token)
            if token[0].islower():
                found[term] = _surface(token)
                settled.add(term)
        if "-" in text or not text.isascii():
            for rx in _SURFACE_COMPOUNDS:
                for m in rx.finditer(text):
                    term = tf.stem(tf.fold("".join(m.groups())).lower())
                    if term in wanted and term not in found:
                        found[term] = m.group()
                        settled.add(term)
    return found


def shared_words(terms: Sequence[str], texts: Sequence[str]) -> tuple[str, ...]:
    """Stored terms as words of `texts` (`surface_words`), word by word for a name of several
    words; a term no text writes stays as stored."""
    words = surface_words({w for t in terms for w in t.split()}, texts)
    return tuple(" ".join(words.get(w, w) for w in t.split()) for t in terms)
