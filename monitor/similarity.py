"""Document features and similarity for event clustering: what one entry says, how alike two are.

Pure logic, no I/O. What the stream itself teaches (document frequencies, per-feed
boilerplate, the spellings of names seen lately) lives in small classes here, so that
the clusterer can add and evict entries as its time window moves.
"""
from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Iterable

from rapidfuzz import fuzz, process

from . import textfeatures as tf
from .types import ClusterDoc

# --- how an entry is read -----------------------------------------------------------------
# The title and lead carry the event (who, what, where, when); later paragraphs carry
# background that often names other events. The title counts twice (it is the outlet's own
# one-line statement of the event), the first LEAD_WORDS words once, later words a quarter,
# and words past MAX_WORDS not at all: a 3,000-word article and a 60-word feed summary of
# the same story get comparable vectors.
LEAD_WORDS = 80
MAX_WORDS = 400
TAIL_WEIGHT = 0.25
TITLE_WEIGHT = 2
# Terms kept per vector: a lead and its facts fit; a long article's background does not.
VECTOR_TERMS = 60
# Document frequencies come from the window only. Until it holds enough entries they are
# noise (the three first reports of a story would make its key words look common), so
# IDF_PRIOR virtual entries that contain no term are added; against thousands of real
# entries in a window the prior is negligible.
IDF_PRIOR = 50
# A feed sentence is boilerplate once it recurs in this many of the feed's entries in the
# window, spread over at least two clusters (a story's own wire updates repeat sentences).
BOILERPLATE_MIN_ENTRIES = 3
# Syndicated copies: bodies this alike (rapidfuzz ratio, 0-100) with enough words to judge.
SYNDICATED_RATIO = 90.0
SYNDICATED_MIN_WORDS = 25
# Name spellings: an unseen name term this alike (ratio) to a name term in the window,
# with the same first three letters and at least NAME_MIN_LENGTH letters, is that name.
NAME_RATIO = 85.0
NAME_MIN_LENGTH = 7

_WIRE_SLUG = re.compile(r"^\s*[A-Z][A-Z0-9&]*(?: \d+)?-(?=\S)")  # "UPDATE 3-", "OIL-", "DEALS-"


@dataclass(slots=True)
class DocFeatures:
    """What the clusterer keeps about one entry while it is inside the window."""

    entry_id: int
    feed_id: int
    ts: float  # published, POSIX seconds
    tf: dict[str, float]  # term -> position-weighted sublinear frequency (boilerplate removed)
    lead_terms: frozenset[str]  # terms of the title and lead
    name_terms: frozenset[str]  # terms from capitalised words and compound names
    days: frozenset[int]  # days the text names (proleptic ordinals)
    sentence_keys: tuple[int, ...]  # hashes of masked sentences, for the feed's boilerplate stats
    content_words: int  # words left after boilerplate removal
    fingerprint: str  # start of the normalised body, for syndicated-copy checks
    vec: dict[str, float] | None = None  # tf-idf of the top terms, unit length (set on insertion)


def _outlet_tokens(outlet: str) -> tuple[str, ...]:
    return tuple(t for t in tf.word_tokens(tf.fold(outlet)) if len(t) > 1)


def _drop_sequence(tokens: list, seq: tuple[str, ...], key=lambda t: t) -> list:
    """Drop every occurrence of the token sequence `seq` (the outlet's own name)."""
    n = len(seq)
    if not n or n > len(tokens):
        return tokens
    out = []
    i = 0
    while i < len(tokens):
        if key(tokens[i]) == seq[0] and tuple(key(t) for t in tokens[i : i + n]) == seq:
            i += n
            continue
        out.append(tokens[i])
        i += 1
    return out


def sentence_key(tokens: Iterable[str], title_words: frozenset[str]) -> int | None:
    """A hash of a sentence with digits and the entry's own title words masked.

    Masking the title makes "The post <title> appeared first on X" one sentence in every
    entry of a feed; masking digits does the same for "Posted 3 hours ago". Sentences with
    fewer than two words left are too short to tell boilerplate from text.
    """
    kept = [("#" if t[0].isdigit() else t) for t in tokens if t not in title_words]
    if sum(1 for t in kept if t != "#") < 2:
        return None
    return hash(" ".join(kept))


class FeedBoilerplate:
    """Per-feed counts of masked sentences over the window's entries, by cluster.

    A sentence that recurs in several entries of one feed, in different clusters, is
    furniture of that feed (footers, sign-in prompts, "With inputs from agencies"), not
    news, and is dropped before the entry is compared. Learned online per feed id.
    """

    def __init__(self, min_entries: int = BOILERPLATE_MIN_ENTRIES) -> None:
        self.min_entries = min_entries
        self._counts: dict[int, dict[int, dict[int, int]]] = defaultdict(dict)  # feed -> key -> cluster -> n

    def is_boilerplate(self, feed_id: int, key: int) -> bool:
        by_cluster = self._counts.get(feed_id, {}).get(key)
        return bool(by_cluster) and len(by_cluster) >= 2 and sum(by_cluster.values()) >= self.min_entries

    def add(self, feed_id: int, keys: Iterable[int], cluster_id: int) -> None:
        feed = self._counts[feed_id]
        for k in set(keys):
            by_cluster = feed.setdefault(k, {})
            by_cluster[cluster_id] = by_cluster.get(cluster_id, 0) + 1

    def remove(self, feed_id: int, keys: Iterable[int], cluster_id: int) -> None:
        feed = self._counts.get(feed_id)
        if feed is None:
            return
        for k in set(keys):
            by_cluster = feed.get(k)
            if not by_cluster or cluster_id not in by_cluster:
                continue
            by_cluster[cluster_id] -= 1
            if not by_cluster[cluster_id]:
                del by_cluster[cluster_id]
                if not by_cluster:
                    del feed[k]
        if not feed:
            del self._counts[feed_id]

    def relabel(self, feed_id: int, keys: Iterable[int], old: int, new: int) -> None:
        """Move one entry's sentences from cluster `old` to `new` (after a merge)."""
        self.remove(feed_id, keys, old)
        self.add(feed_id, keys, new)


class DocumentFrequencies:
    """Document frequencies of terms over the entries inside the window, learned online."""

    def __init__(self, prior: float = IDF_PRIOR) -> None:
        self.df: dict[str, int] = {}
        self.n = 0
        self.prior = prior

    def add(self, terms: Iterable[str]) -> None:
        df = self.df
        for t in terms:
            df[t] = df.get(t, 0) + 1
        self.n += 1

    def remove(self, terms: Iterable[str]) -> None:
        df = self.df
        for t in terms:
            c = df[t] - 1
            if c:
                df[t] = c
            else:
                del df[t]
        self.n -= 1

    def idf(self, term: str) -> float:
        """BM25's idf with the prior's virtual entries: large for terms few entries share."""
        d = self.df.get(term, 0)
        return math.log(1.0 + (self.n + self.prior - d + 0.5) / (d + 0.5))


class NameVariants:
    """Spellings of names in the window, to map a new transliteration onto a known one.

    Farnaqizadeh and Farnaghizadeh, Montazermahdi and Montazeralmahdi are one name to a
    reader and two terms to an index. A name term never seen in the window is compared
    (rapidfuzz ratio) with the window's name terms that share its first three letters.
    """

    def __init__(self) -> None:
        self._by_prefix: dict[str, dict[str, int]] = defaultdict(dict)

    def add(self, terms: Iterable[str]) -> None:
        for t in terms:
            if len(t) >= NAME_MIN_LENGTH:
                bucket = self._by_prefix[t[:3]]
                bucket[t] = bucket.get(t, 0) + 1

    def remove(self, terms: Iterable[str]) -> None:
        for t in terms:
            if len(t) >= NAME_MIN_LENGTH:
                bucket = self._by_prefix[t[:3]]
                if bucket[t] == 1:
                    del bucket[t]
                    if not bucket:
                        del self._by_prefix[t[:3]]
                else:
                    bucket[t] -= 1

    def known_spelling(self, term: str) -> str | None:
        """The window's spelling of `term`, when it has a close one (most used wins, then alphabetical)."""
        if len(term) < NAME_MIN_LENGTH:
            return None
        bucket = self._by_prefix.get(term[:3])
        if not bucket:
            return None
        found = process.extract(term, list(bucket), scorer=fuzz.ratio, score_cutoff=NAME_RATIO, limit=None)
        if not found:
            return None
        return min(found, key=lambda f: (-f[1], -bucket[f[0]], f[0]))[0]


def extract(doc: ClusterDoc, boilerplate: FeedBoilerplate) -> DocFeatures:
    """Read one entry: lead-weighted terms, name terms and stated days, minus feed boilerplate."""
    outlet = _outlet_tokens(doc.outlet)
    title = _WIRE_SLUG.sub("", tf.fold(doc.title))
    title_raw = _drop_sequence(tf.raw_tokens(title), outlet, key=str.lower)
    title_low = [t.lower() for t in title_raw]
    title_words = frozenset(title_low)
    term_of = tf.term_of

    lead: dict[str, int] = {}
    tail: dict[str, int] = {}
    names: set[str] = set()
    keys: list[int] = []
    lead_text = [title]
    body_words: list[str] = []
    words = 0
    for t in title_low:
        term = term_of(t)
        if term:
            lead[term] = lead.get(term, 0) + TITLE_WEIGHT
    if not tf.is_title_case(title):
        names.update(filter(None, (term_of(t.lower()) for t in title_raw[1:] if t[0].isupper())))
    for sent in tf.sentences(tf.fold(doc.text)):
        if words >= MAX_WORDS:
            break
        raw = _drop_sequence(tf.raw_tokens(sent), outlet, key=str.lower)
        if not raw:
            continue
        low = [t.lower() for t in raw]
        key = sentence_key(low, title_words)
        if key is not None:
            keys.append(key)
            if boilerplate.is_boilerplate(doc.feed_id, key):
                continue
        in_lead = words < LEAD_WORDS
        part = lead if in_lead else tail
        if in_lead:
            lead_text.append(sent)
        if "-" in sent:
            for c in tf.compound_names(sent):
                c = tf.stem(c)
                names.add(c)
                part[c] = part.get(c, 0) + 1
        for i, t in enumerate(low):
            term = term_of(t)
            if term:
                part[term] = part.get(term, 0) + 1
                if i and raw[i][0].isupper():
                    names.add(term)
        words += len(low)
        body_words.extend(low)

    # sublinear within each part, so background repeated in the tail cannot outweigh the lead
    weights = {t: 1.0 + math.log(c) for t, c in lead.items()}
    for t, c in tail.items():
        weights[t] = weights.get(t, 0.0) + TAIL_WEIGHT * (1.0 + math.log(c))
    return DocFeatures(
        entry_id=doc.entry_id,
        feed_id=doc.feed_id,
        ts=doc.published.timestamp(),
        tf=weights,
        lead_terms=frozenset(lead),
        name_terms=frozenset(n for n in names if n in weights and not n[0].isdigit()),
        days=tf.stated_days(". ".join(lead_text), doc.published.date()),
        sentence_keys=tuple(keys),
        content_words=words,
        fingerprint=" ".join(body_words[:120]),
    )


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


def vectorize(weights: dict[str, float], idf: Callable[[str], float], k: int = VECTOR_TERMS) -> dict[str, float]:
    """tf-idf of the top-k terms, scaled to unit length. Ties are broken by term for determinism."""
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


def lead_cosine(a: dict[str, float], a_lead: frozenset[str], b: dict[str, float]) -> float:
    """Cosine of the title-and-lead part of `a` (renormalised) with all of `b`."""
    num = n2 = 0.0
    for t, w in a.items():
        if t in a_lead:
            n2 += w * w
            num += w * b.get(t, 0.0)
    return num / math.sqrt(n2) if n2 else 0.0


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
    return min(full, lead_cosine(a.vec, a.lead_terms, b.vec), lead_cosine(b.vec, b.lead_terms, a.vec))


def shared_terms(a: dict[str, float], b: dict[str, float], n: int = 8) -> tuple[str, ...]:
    """The terms that contribute most to the similarity of two vectors."""
    common = sorted(((a[t] * b[t], t) for t in a.keys() & b.keys()), key=lambda x: (-x[0], x[1]))
    return tuple(t for _, t in common[:n])


def is_syndicated_copy(a: DocFeatures, b: DocFeatures) -> bool:
    """Near-identical body text: one wire story carried by several outlets."""
    if a.content_words < SYNDICATED_MIN_WORDS or b.content_words < SYNDICATED_MIN_WORDS:
        return False
    return fuzz.ratio(a.fingerprint, b.fingerprint) >= SYNDICATED_RATIO
