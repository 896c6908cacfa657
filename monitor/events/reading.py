"""Reading an entry's text for clustering: everything that depends on the entry alone.

Folding, cutting out the outlet's name and wire slugs, splitting sentences, tokenising,
mapping tokens to terms, sentence keys, names and compound names depend on nothing but
the entry, so they can be done ahead of time and in another process (see weighpool).
What the stream has taught so far (a feed's boilerplate, document frequencies, name
spellings in the window) is applied afterwards, in order, by `similarity.features`.

A Reading holds each sentence twice where that can matter: as a lead sentence (tokens
as written, for names) and as a tail sentence (tokens of the lower-cased text). Which
one counts is decided later, because a sentence's place in the lead depends on how many
words before it survive boilerplate removal. For ASCII text the two are the same and
are stored once.

Sentence keys are a stable hash (BLAKE2b), not hash(): string hashes differ between
processes, and a key made in a worker must equal the key made here.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from hashlib import blake2b
from itertools import compress, takewhile
from operator import itemgetter
from typing import NamedTuple

from . import textfeatures as tf

# Characters of the text folded and split at first. Feed texts are mostly shorter; a long
# article's first MAX_WORDS words (see similarity) almost always fit, else the whole text is read.
BODY_CHARS = 3500
TITLE_WEIGHT = 2  # the title counts twice (similarity explains the weights)

_WIRE_SLUG = re.compile(r"^\s*[A-Z][A-Z0-9&]*(?: \d+)?-(?=\S)")  # "UPDATE 3-", "OIL-", "DEALS-"
_CUT = re.compile(r"[ \t\n\r]")
_first = itemgetter(0)


class Sentence(NamedTuple):
    """One sentence, read as a lead sentence and (when different) as a tail sentence.

    Terms are the term cache's own string objects (textfeatures.term_of), so counting
    and looking them up later finds the same objects and never hashes or compares text.
    """

    text: str
    key: int | None  # sentence_key of the lead reading
    words: int  # number of tokens
    low: str  # lower-cased tokens as written, space-joined
    terms: tuple[str, ...]  # their index terms (stopwords and noise left out)
    day_words: tuple[str, ...]  # tokens that name a weekday, a relative day or a month
    names: tuple[str, ...]  # terms of capitalised tokens after the first
    compounds: tuple[str, ...]  # stems of hyphen/particle compound names
    # (key, words, low, terms), lower-cased text
    tail: tuple[int | None, int, str, tuple[str, ...]] | None = None
    pairs: tuple[str, ...] = ()  # name pairs: "t1 t2" for two adjacent capitalised words (see name_pairs)
    lower: tuple[str, ...] = ()  # terms of the tokens written in lower case


# A Sentence's fields, in its order: what a reading passed to another process holds (see plain).
SentenceFields = tuple[str, int | None, int, str, tuple[str, ...], tuple[str, ...], tuple[str, ...],
                       tuple[str, ...], tuple[int | None, int, str, tuple[str, ...]] | None, tuple[str, ...],
                       tuple[str, ...]]


class Reading(NamedTuple):
    """An entry's title and first sentences, read without any knowledge of the stream."""

    title: str  # folded, without wire slug and outlet name
    title_words: int  # number of title tokens
    title_terms: tuple[str, ...]  # index terms of the title
    title_day_words: tuple[str, ...]
    title_names: tuple[str, ...]  # name terms of the title (none for a headline in title case)
    title_pairs: tuple[str, ...]  # name pairs of the title (none for a headline in title case)
    headline: frozenset[str]  # content terms of the title
    sentences: tuple[SentenceFields, ...]  # Sentence each, or its fields only (see plain)
    complete: bool  # False: the text goes on past BODY_CHARS


def plain(r: Reading) -> tuple:
    """A reading as plain tuples, to pass to another process (`unplain` makes it a Reading again).

    Unpickling a named tuple costs a Python call, and a long page has dozens of sentences:
    their fields cost half as much to pass. Readings are read by position, so the sentences
    stay plain tuples on the other side.
    """
    return (*r[:-2], tuple(map(tuple, r.sentences)), r.complete)


def unplain(fields: tuple) -> Reading:
    """The reading that `plain` made `fields` of."""
    return Reading._make(fields)


# An outlet's name: its last word in lower case, the expression that finds the name in a text,
# and its words that are ASCII, in lower case.
Outlet = tuple[str, re.Pattern, tuple[str, ...]]


@lru_cache(maxsize=4096)
def outlet_pattern(outlet: str) -> Outlet | None:
    """The outlet's own name as it appears in its datelines, title suffixes and footers."""
    words = re.findall(r"[^\W_]+", tf.fold(outlet))
    if not words:
        return None
    pattern = re.compile(r"\b" + r"[\s\W]{1,3}".join(map(re.escape, words)) + r"\b", re.IGNORECASE)
    return words[-1].lower(), pattern, tuple(w.lower() for w in words if w.isascii())


def without_outlet(text: str, outlet: Outlet | None) -> str:
    """The text without the outlet's own name (cheap tests first: most texts do not name it).

    The expression runs only where the text has the name's last word in lower case (as ever),
    and, when the text is ASCII, each of its ASCII words: there the expression's case-blind
    match is exactly a match in lower case, so a text without one of them cannot name it. Half
    the texts that have the last word ("news", "times") lack another."""
    if outlet is None:
        return text
    low = text.lower()
    if outlet[0] not in low or (text.isascii() and not all(w in low for w in outlet[2])):
        return text
    return outlet[1].sub(" ", text)


def sentence_key(tokens: Sequence[str], title_words: frozenset[str]) -> int | None:
    """A stable hash of a sentence without numbers and without the entry's own title words.

    Dropping the title makes "The post <title> appeared first on X" one sentence in every
    entry of a feed; dropping numbers does the same for "Posted 3 hours ago". Sentences with
    fewer than two words left are too short to tell boilerplate from text.
    """
    return _key(_kept(tokens, title_words))


def _kept(tokens: Iterable[str], title_words: frozenset[str]) -> str | None:
    """The tokens a sentence key is made of, joined by U+001F; None when fewer than two."""
    kept = [t for t in tokens if t > "9" and t not in title_words]  # "9" sorts after every number
    return "\x1f".join(kept) if len(kept) > 1 else None


def _key(kept: str | None) -> int | None:
    """sentence_key of a sentence's kept tokens joined by U+001F (None: fewer than two)."""
    if kept is None:
        return None
    digest = blake2b(kept.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def read(title: str, text: str, outlet: str, whole: bool = False) -> Reading:
    """Read an entry's title and the sentences of its text's start (`whole`: of all its text).

    `outlet` is the feed's name, which is left out of the title and text.
    """
    pattern = outlet_pattern(outlet)
    title = without_outlet(_WIRE_SLUG.sub("", tf.fold(title)), pattern)
    title_raw = tf.raw_tokens(title)
    title_low = [t.lower() for t in title_raw]
    title_words = frozenset(title_low)
    term_of = tf.term_of
    title_terms = tuple(filter(None, map(term_of, title_low)))
    if whole:
        sents, complete = tf.sentences(without_outlet(tf.fold(text), pattern)), True
    else:
        sents, complete = _body_sentences(text, pattern)
    title_case = tf.is_title_case(title)
    names = [] if title_case else [t.lower() for t in title_raw[1:] if t[0].isupper()]
    return Reading(
        title=title,
        title_words=len(title_low),
        title_terms=title_terms,
        title_day_words=_day_words(title_words),
        title_names=tuple(filter(None, map(term_of, names))),
        title_pairs=() if title_case else name_pairs(title_raw),
        headline=frozenset(title_terms),
        sentences=sentence_fields(sents, tf.TOKENS, title_words, _DAY_OR_MONTH, _compounds, _sentence,
                                  Sentence),
        complete=complete,
    )


_DAY_OR_MONTH = tf.DAY_WORDS | tf.MONTH_WORDS


def _day_words(tokens: Iterable[str], words: frozenset[str] = _DAY_OR_MONTH) -> tuple[str, ...]:
    found = words.intersection(tokens)
    return tuple(sorted(found)) if found else ()


_NO_TOKENS: tuple[tuple, ...] = ((), (), (), ())

# What a sentence's tokens say: (lower-cased tokens, the same joined by spaces, their terms,
# name terms, terms of lower-case tokens, name pairs, day words, the tokens sentence_key keeps
# joined by U+001F or None)
Parts = tuple[tuple[str, ...], str, tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...],
              tuple[str, ...], str | None]


def sentence_parts_py(raw: list[str], tokens: dict[str, tf.TokenInfo], title_words: frozenset[str],
                      day_or_month: frozenset[str]) -> Parts:
    """Everything of a sentence that comes from its tokens (`raw`, as written), through the
    token cache `tokens` (tf.TOKENS): one look-up per token, then filters over the results."""
    # lower-cased tokens, their terms (None for stopwords and noise), whether they start
    # with a capital and with a lower-case letter
    low, terms, capital, lower_case = zip(*map(tokens.__getitem__, raw), strict=True) if raw else _NO_TOKENS
    names = tuple(filter(None, compress(terms[1:], capital[1:])))
    return (low, " ".join(low), tuple(filter(None, terms)), names,
            tuple(filter(None, compress(terms, lower_case))), name_pairs(raw, capital, terms),
            _day_words(low, day_or_month), _kept(low, title_words))


def sentence_fields_py(sents: list[str], tokens: dict[str, tf.TokenInfo], title_words: frozenset[str],
                       day_or_month: frozenset[str], compounds: Callable[[str], tuple[str, ...]],
                       sentence: Callable[[str, frozenset[str]], Sentence],
                       kind: type[Sentence]) -> tuple[Sentence, ...]:
    """Each sentence read (`sentence`). The compiled twin reads an ASCII sentence itself, as
    `sentence` would with these `tokens`, `day_or_month`, `compounds` and `kind` of tuple."""
    return tuple(sentence(s, title_words) for s in sents)


sentence_parts = sentence_parts_py
sentence_fields = sentence_fields_py
try:
    from ._reading import sentence_fields, sentence_parts
except ImportError:  # built without a C compiler: the same results, slower
    COMPILED = False
else:
    COMPILED = True


def _compounds(sent: str) -> tuple[str, ...]:
    return tuple(map(tf.stem, tf.compound_names(sent)))


def _sentence(sent: str, title_words: frozenset[str]) -> Sentence:
    raw = tf.raw_tokens(sent)
    low, text, terms, names, lower, pairs, day_words, kept = sentence_parts(raw, tf.TOKENS, title_words,
                                                                            _DAY_OR_MONTH)
    compounds = _compounds(sent) if "-" in sent else ()
    tail = None
    if not sent.isascii():  # lower-casing can change tokens only outside ASCII
        tail_low = tf.raw_tokens(sent.lower())
        if tuple(tail_low) != low:
            tail = (sentence_key(tail_low, title_words), len(tail_low), " ".join(tail_low),
                    tuple(filter(None, map(tf.term_of, tail_low))))
    return Sentence(sent, _key(kept), len(low), text, terms, day_words, names, compounds, tail, pairs, lower)


def name_pairs(raw: list[str], capital: Sequence[bool] | None = None,
               terms: Sequence[str | None] | None = None) -> tuple[str, ...]:
    """Runs of two or more adjacent words written with a capital, as "term term ...": a
    person's first and last name, a town, a street, a business. Words in capitals (acronyms,
    datelines) and the names of days and months end a run, and so does a word without a
    term. Whether the words are names or ordinary words that happen to be capitalised
    (sentence starts, "Police", "Email") the stream decides later (see weighing).
    """
    if capital is None:
        capital = list(map(str.isupper, map(_first, raw)))
    caps = list(compress(range(len(raw)), capital))  # most tokens are not
    if len(caps) < 2:
        return ()
    term_of = tf.term_of
    out: list[str] = []
    run: list[str] = []
    last = -2  # index of the run's last word
    for i in caps:
        tok = raw[i]
        term = None
        if not (len(tok) > 1 and tok.isupper()):
            low = tok.lower()
            if low not in _DAY_OR_MONTH:
                term = terms[i] if terms is not None else term_of(low)
        if term is not None and i == last + 1:
            run.append(term)
        else:
            if len(run) > 1:
                out.append(" ".join(run))
            run = [term] if term is not None else []
        last = i if term is not None else -2
    if len(run) > 1:
        out.append(" ".join(run))
    return tuple(out)


def _body_sentences(text: str, outlet: Outlet | None) -> tuple[list[str], bool]:
    """The text's first sentences, folded and without the outlet's name, and whether they are all of them.

    Only the first words are read, so a long text is folded and split from its start
    only. The start is cut before an ASCII white-space character, where folding cannot
    join two characters, and only sentences whose end (separator included) lies before
    any place where removing the outlet's name or splitting could differ from the whole
    text's are returned: they are exactly the whole text's first sentences.
    """
    if len(text) <= BODY_CHARS:
        return tf.sentences(without_outlet(tf.fold(text), outlet)), True
    m = _CUT.search(text, BODY_CHARS)
    if m is None:
        return tf.sentences(without_outlet(tf.fold(text), outlet)), True
    folded = tf.fold(text[: m.start()])
    reach = 1  # longest outlet match: a match reaching further than this from the cut may differ
    if outlet is not None:
        if outlet[0] not in folded.lower() and not (folded.isascii() and outlet[0].isascii()) \
                and outlet[1].search(folded) is not None:
            # the case-insensitive expression finds the name where lower-casing does not:
            # whether the whole text names the outlet decides, so read all of it
            return tf.sentences(without_outlet(tf.fold(text), outlet)), True
        reach = len(outlet[1].pattern) + 1  # longer than any match of the expression
    start = without_outlet(folded, outlet)
    common = len(start) - reach  # start[:common] equals the whole text's, outlet removed
    # the sentences up to the last separator that ends in common (the character that ends a
    # separator must be in common too): tf.sentences of the text up to that separator's end
    spans = list(takewhile(lambda span: span[1] < common - 1, tf.sentence_ends(start)))
    return tf.sentences_between(start, spans, spans[-1][1] if spans else 0), False
