"""Document features and similarity for event clustering: what one entry says, how alike two are.

Pure logic, no I/O. What the stream itself teaches (document frequencies, per-feed
boilerplate, the spellings of names seen lately) lives in small classes here, so that
the clusterer can add and evict entries as its time window moves.
"""
from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import lru_cache
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
# Name spellings: an unseen name term this alike (ratio) to a name term in the window,
# with the same first three letters and at least NAME_MIN_LENGTH letters, is that name.
# Shorter names one letter apart are as often two people (Carlsen, Carlson).
NAME_RATIO = 85.0
NAME_MIN_LENGTH = 8

_SUBLINEAR = (0.0,) + tuple(1.0 + math.log(c) for c in range(1, 32))  # 1 + ln(count)
_WIRE_SLUG = re.compile(r"^\s*[A-Z][A-Z0-9&]*(?: \d+)?-(?=\S)")  # "UPDATE 3-", "OIL-", "DEALS-"


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
    vec: dict[str, float] | None = None  # tf-idf of the top terms, unit length (set on insertion)
    lead_only: bool = False  # every term of vec is a title/lead term (short entries): lead cosine = cosine
    terms: tuple[str, ...] = ()  # every term of tf, kept for the window's document frequencies

    def index(self, df: DocumentFrequencies) -> None:
        """Count the entry in the document frequencies and make its vector; drop what is no longer needed."""
        df.add(self.tf)
        self.vec = df.vectorize(self.tf)
        self.terms = tuple(self.tf)
        self.tf = {}
        self.lead_terms = self.lead_terms.intersection(self.vec)
        self.lead_only = len(self.lead_terms) == len(self.vec)


@lru_cache(maxsize=4096)
def _outlet_pattern(outlet: str) -> tuple[str, re.Pattern] | None:
    """The outlet's own name as it appears in its datelines, title suffixes and footers."""
    words = re.findall(r"[^\W_]+", tf.fold(outlet))
    if not words:
        return None
    pattern = re.compile(r"\b" + r"[\s\W]{1,3}".join(map(re.escape, words)) + r"\b", re.IGNORECASE)
    return words[-1].lower(), pattern


def _without_outlet(text: str, outlet: tuple[str, re.Pattern] | None) -> str:
    """The text without the outlet's own name (a cheap test first: most texts do not name it)."""
    if outlet is None or outlet[0] not in text.lower():
        return text
    return outlet[1].sub(" ", text)


def sentence_key(tokens: list[str], title_words: frozenset[str]) -> int | None:
    """A hash of a sentence without numbers and without the entry's own title words.

    Dropping the title makes "The post <title> appeared first on X" one sentence in every
    entry of a feed; dropping numbers does the same for "Posted 3 hours ago". Sentences with
    fewer than two words left are too short to tell boilerplate from text.
    """
    kept = [t for t in tokens if t > "9" and t not in title_words]  # "9" sorts after every number
    if len(kept) < 2:
        return None
    return hash(tuple(kept))


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

    def vectorize(self, weights: dict[str, float], k: int = VECTOR_TERMS) -> dict[str, float]:
        """tf-idf of the top-k terms, scaled to unit length (ties broken by term: deterministic)."""
        get = self.df.get
        total = self.n + self.prior + 0.5
        log = math.log
        scored = [(-w * log(1.0 + (total - d) / (d + 0.5)), t)
                  for t, w in weights.items() for d in (get(t, 0),)]
        if len(scored) > k:
            scored.sort()
            del scored[k:]
        norm = math.sqrt(sum(s * s for s, _ in scored)) or 1.0
        return {t: -s / norm for s, t in scored}


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


def extract(doc: ClusterDoc, boilerplate: FeedBoilerplate) -> DocFeatures:
    """Read one entry: lead-weighted terms, name terms and stated days, minus feed boilerplate."""
    outlet = _outlet_pattern(doc.outlet)
    title = _without_outlet(_WIRE_SLUG.sub("", tf.fold(doc.title)), outlet)
    title_raw = tf.raw_tokens(title)
    title_low = [t.lower() for t in title_raw]
    title_words = frozenset(title_low)
    term_of = tf.term_of
    headline = frozenset(filter(None, map(term_of, title_low)))
    sents, complete = _body_sentences(doc.text, outlet)
    feats = _read_body(doc, title, title_raw, title_low, title_words, headline, sents, complete,
                       boilerplate)
    if feats is None and not complete:  # the text's start did not hold MAX_WORDS words: read all of it
        sents = tf.sentences(_without_outlet(tf.fold(doc.text), outlet))
        feats = _read_body(doc, title, title_raw, title_low, title_words, headline, sents, True, boilerplate)
    return feats


# Characters of the text folded and split at first. Feed texts are mostly shorter; a long
# article's first MAX_WORDS words almost always fit, else the whole text is read.
BODY_CHARS = 3500
_CUT = re.compile(r"[ \t\n\r]")


def _body_sentences(text: str, outlet: tuple[str, re.Pattern] | None) -> tuple[list[str], bool]:
    """The text's first sentences, folded and without the outlet's name, and whether they are all of them.

    Only the first MAX_WORDS words are read, so a long text is folded and split from its
    start only. The start is cut before an ASCII white-space character, where folding
    cannot join two characters, and only sentences whose end (separator included) lies
    before any place where removing the outlet's name or splitting could differ from the
    whole text's are returned: they are exactly the whole text's first sentences.
    """
    if len(text) <= BODY_CHARS:
        return tf.sentences(_without_outlet(tf.fold(text), outlet)), True
    m = _CUT.search(text, BODY_CHARS)
    if m is None:
        return tf.sentences(_without_outlet(tf.fold(text), outlet)), True
    folded = tf.fold(text[: m.start()])
    reach = 1  # longest outlet match: a match reaching further than this from the cut may differ
    if outlet is not None:
        if outlet[0] not in folded.lower() and not (folded.isascii() and outlet[0].isascii()) \
                and outlet[1].search(folded) is not None:
            # the case-insensitive expression finds the name where lower-casing does not:
            # whether the whole text names the outlet decides, so read all of it
            return tf.sentences(_without_outlet(tf.fold(text), outlet)), True
        reach = len(outlet[1].pattern) + 1  # longer than any match of the expression
    start = _without_outlet(folded, outlet)
    common = len(start) - reach  # start[:common] equals the whole text's, outlet removed
    end = 0
    for sep in tf._SENTENCE_END.finditer(start):
        if sep.end() >= common - 1:  # the character that ends the separator must be in common too
            break
        end = sep.end()
    return tf.sentences(start[:end]), False


def _read_body(doc: ClusterDoc, title: str, title_raw: list[str], title_low: list[str],
               title_words: frozenset[str], headline: frozenset[str], sents: list[str], complete: bool,
               boilerplate: FeedBoilerplate) -> DocFeatures | None:
    """extract's reading of the body sentences; None when they end before MAX_WORDS words and are not all."""
    term_of = tf.term_of
    is_boilerplate = boilerplate.is_boilerplate
    feed_id = doc.feed_id
    keys: list[int] = []
    lead_text = [title]
    lead_words = list(title_low) * TITLE_WEIGHT
    tail_words: list[str] = []
    names = [t.lower() for t in title_raw[1:] if t[0].isupper()] if not tf.is_title_case(title) else []
    compounds: list[str] = []
    words = 0
    for sent in sents:
        if words >= MAX_WORDS:
            break
        in_lead = words < LEAD_WORDS
        raw = tf.raw_tokens(sent if in_lead else sent.lower())
        if not raw:
            continue
        low = list(map(str.lower, raw)) if in_lead else raw
        key = sentence_key(low, title_words)
        if key is not None:
            keys.append(key)
            if is_boilerplate(feed_id, key, headline):
                continue
        if in_lead:  # names are read from the title and lead, where a story introduces them
            lead_text.append(sent)
            lead_words += low
            names += [low[i] for i in range(1, len(raw)) if raw[i][0].isupper()]
            if "-" in sent:
                compounds += tf.compound_names(sent)
        else:
            tail_words += low
        words += len(low)
    if words < MAX_WORDS and not complete:
        return None
    lead = Counter(map(term_of, lead_words))
    lead.update(map(tf.stem, compounds))
    tail = Counter(map(term_of, tail_words))
    lead.pop(None, None)
    tail.pop(None, None)
    name_terms = set(map(term_of, names))
    name_terms.update(map(tf.stem, compounds))
    name_terms.discard(None)
    body_words = lead_words[len(title_low) * TITLE_WEIGHT :] + tail_words

    # sublinear within each part, so background repeated in the tail cannot outweigh the lead
    weights = {t: _SUBLINEAR[c] if c < 32 else 1.0 + math.log(c) for t, c in lead.items()}
    for t, c in tail.items():
        weights[t] = weights.get(t, 0.0) + TAIL_WEIGHT * (_SUBLINEAR[c] if c < 32 else 1.0 + math.log(c))
    return DocFeatures(
        entry_id=doc.entry_id,
        feed_id=doc.feed_id,
        ts=doc.published.timestamp(),
        tf=weights,
        lead_terms=frozenset(lead),
        name_terms=frozenset(n for n in name_terms if not n[0].isdigit()),
        days=tf.stated_days(". ".join(lead_text), doc.published.date(), lead_words),
        sentence_keys=tuple(keys),
        headline=headline,
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


def vectorize(weights: dict[str, float], idf: Callable[[str], float],
              k: int = VECTOR_TERMS) -> dict[str, float]:
    """tf-idf of the top-k terms with any idf, scaled to unit length (ties broken by term).

    DocumentFrequencies.vectorize is the same with the window's idf inlined, for speed.
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
    return fuzz.ratio(a.fingerprint, b.fingerprint) >= SYNDICATED_RATIO
