"""Document features and similarity for event clustering: what one entry says, how alike two are.

Pure logic, no I/O. What the stream itself teaches (document frequencies, per-feed
boilerplate, the spellings of names seen lately) lives in small classes here, so that
the clusterer can add and evict entries as its time window moves.
"""
from __future__ import annotations

import contextlib
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import chain

from rapidfuzz import fuzz, process

from monitor.types import ClusterDoc

from . import scan
from . import textfeatures as tf
from .reading import TITLE_WEIGHT, Reading, read

# --- how an entry is read -----------------------------------------------------------------
# The title and lead carry the event (who, what, where, when); later paragraphs carry
# background that often names other events. The title counts twice (it is the outlet's own
# one-line statement of the event), the first LEAD_WORDS words once, later words a quarter,
# and words past MAX_WORDS not at all: a 3,000-word article and a 60-word feed summary of
# the same story get comparable vectors.
LEAD_WORDS = 80
MAX_WORDS = 400
TAIL_WEIGHT = 0.25
# Terms kept per vector: about the distinct content terms of a title and an 80-word lead,
# so a summary keeps all its terms and a long article's tail can only displace the lead's
# weakest ones. (Measured: 48 and 60 score the same; at 40 rewritten reports start to lose
# the common words they share with their event.)
VECTOR_TERMS = 48
# Document frequencies come from the window only. Until it holds enough entries they are
# noise (the three first reports of a story would make its key words look common), so
# IDF_PRIOR virtual entries that contain no term are added; against thousands of real
# entries in a window the prior is negligible.
IDF_PRIOR = 50
# Latest headlines compared per repeated sentence (enough to find two unrelated ones,
# few enough that a sentence repeated in hundreds of entries costs little).
BOILERPLATE_HEADLINES = 8
# Syndicated copies: bodies this alike (rapidfuzz ratio, 0-100) with enough words to judge.
SYNDICATED_RATIO = 90.0
SYNDICATED_MIN_WORDS = 25
FINGERPRINT_WORDS = 120  # words of the body start compared
# Name spellings: an unseen name term this alike (ratio) to a name term in the window,
# with the same first three letters and at least NAME_MIN_LENGTH letters, is that name.
# Shorter names one letter apart are as often two people (Carlsen, Carlson).
NAME_RATIO = 85.0
NAME_MIN_LENGTH = 8
# A term is a name when the entries that write it in lower case are at most this share of
# those that capitalise it (a name's lower-case uses are typos, e-mail addresses, slugs).
NAME_LOWER_SHARE = 0.1

_SUBLINEAR = (0.0, *(1.0 + math.log(c) for c in range(1, 32)))  # 1 + ln(count)


@dataclass(slots=True)
class DocFeatures:
    """What the clusterer keeps about one entry while it is inside the window."""

    entry_id: int
    feed_id: int
    ts: float  # published, POSIX seconds
    tf: dict[str, float]  # term -> position-weighted sublinear frequency, no boilerplate (emptied by index)
    lead_terms: frozenset[str]  # terms of the title and lead
    name_terms: frozenset[str]  # terms of capitalised words and compound names in the title and lead
    days: frozenset[int]  # days the title and lead name (proleptic ordinals)
    sentence_keys: tuple[int, ...]  # hashes of masked sentences, for the feed's boilerplate stats
    headline: frozenset[str]  # content terms of the title
    content_words: int  # words left after boilerplate removal
    fingerprint: str  # start of the normalised body, for syndicated-copy checks
    vec: dict[str, float] = field(default_factory=dict)  # tf-idf of the top terms, unit length (set by index)
    lead_only: bool = False  # every term of vec is a title/lead term (short entries): lead cosine = cosine
    terms: tuple[str, ...] = ()  # every term of tf, kept for the window's document frequencies
    # Name pairs of all the text kept ("jacob melendez", "peregrin park"), and the terms it writes
    # with a capital (after a sentence's first word) and in lower case: the weigher keeps the
    # pairs whose words the stream uses as names (name_keys) and counts the other two.
    pairs: tuple[str, ...] = ()
    capitalised: tuple[str, ...] = ()
    lower: tuple[str, ...] = ()
    name_keys: tuple[str, ...] = ()  # pairs of names: the evidence follow-ups are linked on
    specific: frozenset[str] = frozenset()  # terms of vec that the entry and the stream write as names

    def index(self, df: DocumentFrequencies) -> None:
        """Count the entry in the document frequencies and make its vector; drop what is no longer needed."""
        self.vec = df.add_and_vectorize(self.tf)
        self.terms = tuple(self.tf)
        self.tf = {}
        self.lead_terms = self.lead_terms.intersection(self.vec)
        self.lead_only = len(self.lead_terms) == len(self.vec)


_NONE: Mapping[int, object] = {}


def uncount(counter: Counter, terms: Iterable[str]) -> None:
    """Take one count of each term out of `counter`, dropping terms that reach zero (a window's
    statistics must not keep every term ever seen)."""
    for t in terms:
        c = counter[t] - 1
        if c:
            counter[t] = c
        else:
            del counter[t]


class FeedBoilerplate:
    """Per-feed record of masked sentences in the window's entries, with their headlines.

    A sentence that one feed repeats under headlines that have no content word in common
    is furniture of that feed (footers, sign-in prompts, "With inputs from agencies",
    stock background lines), not news about either story, and is dropped before the
    entry is compared. A story's own updates repeat sentences under related headlines,
    so they teach nothing here. Learned online per feed id, independent of clustering.
    """

    def __init__(self) -> None:
        # feed -> sentence key -> headline term sets of the entries that have the sentence
        self._seen: dict[int, dict[int, list[frozenset[str]]]] = defaultdict(dict)

    def sentences_of(self, feed_id: int) -> Mapping[int, object]:
        """The feed's sentence keys seen in the window (for a quick first test)."""
        return self._seen.get(feed_id, _NONE)

    def is_boilerplate(self, feed_id: int, key: int, headline: frozenset[str]) -> bool:
        """Whether the feed has this sentence under a headline unrelated to `headline` or to another."""
        heads = self._seen.get(feed_id, {}).get(key)
        if not heads:
            return False
        heads = heads[-BOILERPLATE_HEADLINES:]
        if headline and any(h and headline.isdisjoint(h) for h in heads):
            return True
        return any(a and b and a.isdisjoint(b) for i, a in enumerate(heads) for b in heads[i + 1 :])

    def add(self, feed_id: int, keys: Iterable[int], headline: frozenset[str]) -> None:
        feed = self._seen[feed_id]
        for k in set(keys):
            heads = feed.get(k)
            if heads is None:
                feed[k] = [headline]
            else:
                heads.append(headline)

    def remove(self, feed_id: int, keys: Iterable[int], headline: frozenset[str]) -> None:
        feed = self._seen.get(feed_id)
        if feed is None:
            return
        for k in set(keys):
            heads = feed.get(k)
            if heads is not None and headline in heads:
                heads.remove(headline)
                if not heads:
                    del feed[k]
        if not feed:
            del self._seen[feed_id]


class DocumentFrequencies:
    """Document frequencies of terms over the entries inside the window, learned online."""

    def __init__(self, prior: float = IDF_PRIOR) -> None:
        self.df: Counter = Counter()
        self.n = 0
        self.prior = prior

    def add(self, terms: Iterable[str]) -> None:
        self.df.update(iter(terms))  # an iterator is counted, a mapping would be added
        self.n += 1

    def remove(self, terms: Iterable[str]) -> None:
        uncount(self.df, terms)
        self.n -= 1

    def idf(self, term: str) -> float:
        """BM25's idf with the prior's virtual entries: large for terms few entries share."""
        d = self.df.get(term, 0)
        return math.log(1.0 + (self.n + self.prior - d + 0.5) / (d + 0.5))

    def add_and_vectorize(self, weights: dict[str, float], k: int = VECTOR_TERMS) -> dict[str, float]:
        """`add` the entry's terms, then its tf-idf vector of the top-k terms, scaled to unit
        length (ties broken by term: deterministic)."""
        self.n += 1
        return count_and_vectorize(self.df, weights, self.n + self.prior + 0.5, k)


def count_and_vectorize_py(df: Counter[str], weights: dict[str, float], total: float,
                           k: int) -> dict[str, float]:
    """Count each term of `weights` once more in `df`, then the tf-idf vector of the top-k terms
    (idf as DocumentFrequencies.idf, `total` being its n + prior + 0.5), scaled to unit length.
    More than k terms are ranked by weight, ties by term; k or fewer keep the order of `weights`."""
    log = math.log
    df.update(iter(weights))  # counted in C; the counts are then read back from a table just touched
    scored = [(-w * log(1.0 + (total - d) / (d + 0.5)), t)
              for t, w, d in zip(weights, weights.values(), map(df.__getitem__, weights), strict=True)]
    if len(scored) > k:
        scored.sort()
        del scored[k:]
    norm2 = 0.0
    for s, _ in scored:  # left to right, as the compiled twin adds
        norm2 += s * s
    norm = math.sqrt(norm2) or 1.0
    return {t: -s / norm for s, t in scored}


count_and_vectorize = count_and_vectorize_py
with contextlib.suppress(ImportError):  # built without a C compiler: the same results, slower
    from ._reading import count_and_vectorize


class WrittenCase:
    """How the stream writes each term: the number of entries that write it with a capital
    (after a sentence's first word) and the number that write it in lower case.

    A word that the stream writes in lower case too is an ordinary word, even where a
    headline, a sentence start or a page's furniture capitalises it ("Police", "Email
    Print", "Health Care"); a name is (almost) only ever written with a capital. Learned
    online over the same entries as the document frequencies, in any language that
    capitalises names.
    """

    def __init__(self) -> None:
        self.capitalised: Counter = Counter()
        self.lower: Counter = Counter()

    def is_name(self, term: str) -> bool:
        """Written in lower case by at most NAME_LOWER_SHARE of the entries that capitalise it."""
        return self.lower.get(term, 0) <= NAME_LOWER_SHARE * self.capitalised.get(term, 0)

    def add(self, capitalised: Iterable[str], lower: Iterable[str]) -> None:
        self.capitalised.update(iter(capitalised))
        self.lower.update(iter(lower))

    def remove(self, capitalised: Iterable[str], lower: Iterable[str]) -> None:
        uncount(self.capitalised, capitalised)
        uncount(self.lower, lower)


class NameVariants:
    """Spellings of names in the window, to map a new transliteration onto a known one.

    Farnaqizadeh and Farnaghizadeh, Montazermahdi and Montazeralmahdi are one name to a
    reader and two terms to an index. A name term never seen in the window is compared
    (rapidfuzz ratio) with the window's name terms that share its first three letters and
    have a length that could reach the ratio.
    """

    def __init__(self) -> None:
        self._buckets: dict[tuple[str, int], dict[str, int]] = {}  # (prefix, length) -> term -> entries

    def add(self, terms: Iterable[str]) -> None:
        for t in terms:
            if len(t) >= NAME_MIN_LENGTH:
                bucket = self._buckets.setdefault((t[:3], len(t)), {})
                bucket[t] = bucket.get(t, 0) + 1

    def remove(self, terms: Iterable[str]) -> None:
        for t in terms:
            if len(t) >= NAME_MIN_LENGTH:
                key = (t[:3], len(t))
                bucket = self._buckets[key]
                if bucket[t] == 1:
                    del bucket[t]
                    if not bucket:
                        del self._buckets[key]
                else:
                    bucket[t] -= 1

    def known_spelling(self, term: str) -> str | None:
        """The window's spelling of `term`, when it has a close one (most used wins, then alphabetical)."""
        n = len(term)
        if n < NAME_MIN_LENGTH:
            return None
        # ratio = 1 - distance / (n + m) and distance >= |n - m| bound the lengths worth comparing
        spread = int(n * (100 - NAME_RATIO) / (100 + NAME_RATIO)) + 1
        best = None
        for m in range(n - spread, n + spread + 1):
            bucket = self._buckets.get((term[:3], m))
            if not bucket:
                continue
            for t, score, _ in process.extract(term, list(bucket), scorer=fuzz.ratio, score_cutoff=NAME_RATIO,
                                               limit=None):
                cand = (-score, -bucket[t], t)
                if best is None or cand < best:
                    best = cand
        return best[2] if best else None


def extract(doc: ClusterDoc, boilerplate: FeedBoilerplate, reading: Reading | None = None) -> DocFeatures:
    """Read one entry: lead-weighted terms, name terms and stated days, minus feed boilerplate.

    `reading` is the entry's `reading.read` when it was made ahead of time (see weighpool).
    """
    feats = features(doc, reading or read(doc.title, doc.text, doc.outlet), boilerplate)
    if feats is None:  # the text's start did not hold MAX_WORDS words of text: read all of it
        feats = features(doc, read(doc.title, doc.text, doc.outlet, whole=True), boilerplate)
        assert feats is not None  # a whole reading is complete, so it always has features
    return feats


def features(doc: ClusterDoc, r: Reading, boilerplate: FeedBoilerplate) -> DocFeatures | None:
    """A reading with the feed's boilerplate left out, weighted; None when its sentences
    end before MAX_WORDS words and are not all of the text."""
    feed_id = doc.feed_id
    kept = kept_text(r, boilerplate.sentences_of(feed_id), boilerplate.is_boilerplate, feed_id)
    if kept is None:
        return None
    keys, lead_text, weights, lead, names, day_words, words, body, body_words, pairs, capitalised, lower = \
        kept
    return DocFeatures(
        entry_id=doc.entry_id,
        feed_id=feed_id,
        ts=doc.published.timestamp(),
        tf=weights,
        lead_terms=frozenset(lead),
        name_terms=frozenset(n for n in names if not n[0].isdigit()),
        days=tf.stated_days(". ".join(lead_text), doc.published.date(), day_words),
        sentence_keys=tuple(keys),
        headline=r.headline,
        content_words=words,
        fingerprint=_fingerprint(body, body_words),
        pairs=tuple(dict.fromkeys(pairs)),  # in the order of the text: title and lead first
        capitalised=tuple(sorted(set(capitalised))),  # sorted: the same in every process
        lower=tuple(dict.fromkeys(lower)),  # in the order of the text: the same in every process
    )


# What kept_text returns: sentence keys, lead texts, term weights, lead term counts, name terms,
# day words, words kept, body tokens and their number, name pairs, capitalised and lower-case terms.
Kept = tuple[list[int], list[str], dict[str, float], dict[str, int], set[str], list[str], int, list[str], int,
             list[str], list[str], list[str]]


def kept_text_py(r: Reading, seen: Mapping[int, object],
                 is_boilerplate: Callable[[int, int, frozenset[str]], bool], feed_id: int) -> Kept | None:
    """What `features` keeps of a reading: its sentences up to MAX_WORDS words, but for those
    that the feed's boilerplate (`seen`, `is_boilerplate`) leaves out, and their terms weighted
    by place (title and lead, tail). None when the sentences end before MAX_WORDS words and are
    not all of the text."""
    headline = r.headline
    keys: list[int] = []
    lead_text = [r.title]
    lead_terms = [r.title_terms] * TITLE_WEIGHT
    day_words = list(r.title_day_words)
    tail_terms: list[tuple[str, ...]] = []
    body: list[str] = []  # lower-cased tokens of the sentences kept, for the fingerprint
    body_words = 0
    names = list(r.title_names)
    compounds: list[str] = []
    pairs = list(r.title_pairs)  # name pairs, capitalised and lower-case terms of all the text kept
    capitalised = list(r.title_names)
    lower: list[str] = []
    words = 0
    for text, key, n, low, terms, s_days, s_names, s_compounds, tail_form, s_pairs, s_lower in r.sentences:
        if words >= MAX_WORDS:
            break
        in_lead = words < LEAD_WORDS
        if tail_form is not None and not in_lead:
            key, n, low, terms = tail_form
        if not n:
            continue
        if key is not None:
            keys.append(key)
            if key in seen and is_boilerplate(feed_id, key, headline):
                continue
        pairs += s_pairs
        capitalised += s_names
        lower += s_lower
        if in_lead:  # names are read from the title and lead, where a story introduces them
            lead_text.append(text)
            lead_terms.append(terms)
            day_words += s_days
            names += s_names
            compounds += s_compounds
        else:
            tail_terms.append(terms)
        if body_words < FINGERPRINT_WORDS:
            body.append(low)
            body_words += n
        words += n
    if words < MAX_WORDS and not r.complete:
        return None
    lead = Counter(chain.from_iterable(lead_terms))
    lead.update(compounds)
    tail = Counter(chain.from_iterable(tail_terms))
    name_terms = set(names)
    name_terms.update(compounds)

    # sublinear within each part, so background repeated in the tail cannot outweigh the lead
    weights = {t: _SUBLINEAR[c] if c < 32 else 1.0 + math.log(c) for t, c in lead.items()}
    for t, c in tail.items():
        weights[t] = weights.get(t, 0.0) + TAIL_WEIGHT * (_SUBLINEAR[c] if c < 32 else 1.0 + math.log(c))
    return (keys, lead_text, weights, lead, name_terms, day_words, words, body, body_words, pairs,
            capitalised, lower)


kept_text = kept_text_py
with contextlib.suppress(ImportError):  # built without a C compiler: the same results, slower
    from ._reading import kept_text as _kept_text

    def kept_text(r: Reading, seen: Mapping[int, object],
                  is_boilerplate: Callable[[int, int, frozenset[str]], bool], feed_id: int) -> Kept | None:
        return _kept_text(r, seen, is_boilerplate, feed_id, TITLE_WEIGHT, LEAD_WORDS, MAX_WORDS,
                          FINGERPRINT_WORDS, TAIL_WEIGHT)


def _fingerprint(body: list[str], words: int) -> str:
    """The first FINGERPRINT_WORDS tokens of `body`: sentences of `words` tokens in all, each
    sentence's tokens joined by single spaces. Only the last sentence can go past, so only it is split."""
    if words <= FINGERPRINT_WORDS:
        return " ".join(body)
    last = body[-1].split(" ")
    return " ".join([*body[:-1], *last[: len(last) - (words - FINGERPRINT_WORDS)]])


def respell(feats: DocFeatures, mapping: dict[str, str]) -> None:
    """Rename terms to their known spellings (weights of two spellings in one entry add up)."""
    if not mapping:
        return
    w: dict[str, float] = {}
    for t, x in feats.tf.items():
        t = mapping.get(t, t)
        w[t] = w.get(t, 0.0) + x
    feats.tf = w
    feats.lead_terms = frozenset(mapping.get(t, t) for t in feats.lead_terms)
    feats.name_terms = frozenset(mapping.get(t, t) for t in feats.name_terms)
    feats.pairs = tuple(dict.fromkeys(" ".join(mapping.get(t, t) for t in p.split(" ")) for p in feats.pairs))
    feats.capitalised = tuple(sorted({mapping.get(t, t) for t in feats.capitalised}))


def vectorize(weights: dict[str, float], idf: Callable[[str], float],
              k: int = VECTOR_TERMS) -> dict[str, float]:
    """tf-idf of the top-k terms with any idf, scaled to unit length (ties broken by term).

    DocumentFrequencies.add_and_vectorize is the same with the window's idf inlined, for speed.
    """
    scored = [(w * idf(t), t) for t, w in weights.items()]
    if len(scored) > k:
        scored.sort(key=lambda x: (-x[0], x[1]))
        scored = scored[:k]
    norm = math.sqrt(sum(s * s for s, _ in scored)) or 1.0
    return {t: s / norm for s, t in scored}


def cosine(a: dict[str, float], b: dict[str, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(w * b.get(t, 0.0) for t, w in a.items())


lead_cosine = scan.lead_cosine  # cosine of a's title-and-lead part (renormalised) with all of b


def pair_similarity(a: DocFeatures, b: DocFeatures, full: float | None = None) -> float:
    """How alike two entries are as reports of one event, 0..1.

    The cosine of the whole vectors, but no more than the cosine of either entry's title
    and lead with the other entry: a story whose background paragraph mentions another
    event resembles that event's reports in its tail only, and must not join them.
    For entries shorter than the lead the three numbers are the same.
    """
    if full is None:
        full = cosine(a.vec, b.vec)
    if not full:
        return 0.0
    if not a.lead_only:
        full = min(full, lead_cosine(a.vec, a.lead_terms, b.vec))
    if not b.lead_only:
        full = min(full, lead_cosine(b.vec, b.lead_terms, a.vec))
    return full


def shared_terms(a: dict[str, float], b: dict[str, float], n: int = 8) -> tuple[str, ...]:
    """The terms that contribute most to the similarity of two vectors."""
    common = sorted(((a[t] * b[t], t) for t in a.keys() & b.keys()), key=lambda x: (-x[0], x[1]))
    return tuple(t for _, t in common[:n])


def is_syndicated_copy(a: DocFeatures, b: DocFeatures) -> bool:
    """Near-identical body text: one wire story carried by several outlets."""
    if a.content_words < SYNDICATED_MIN_WORDS or b.content_words < SYNDICATED_MIN_WORDS:
        return False
    # with the cutoff rapidfuzz stops as soon as the bar is out of reach (same score above it)
    return fuzz.ratio(a.fingerprint, b.fingerprint, score_cutoff=SYNDICATED_RATIO) >= SYNDICATED_RATIO
