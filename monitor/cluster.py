"""Event clustering: put each new entry into the cluster of the real-world event it reports.

Pure and incremental: `Clusterer.assign` takes one entry (in published order), decides
(join, start, or join and merge), updates its in-memory window and returns an
`Assignment` that says why. `Clusterer.warm` rebuilds the same state from stored entries
after a restart without deciding again. No I/O, no clock.

How an entry is placed (thresholds are explained where they are defined):
1. Read it (similarity.extract): lead-weighted terms minus the feed's learned boilerplate,
   name spellings mapped to the ones already in the window, days the text names.
2. Candidates: entries of the window that share its rarer terms (inverted index).
3. Each candidate entry is scored by `pair_similarity` (tf-idf cosine, capped by the
   lead-to-whole cosines) times a Gaussian decay of the published-time gap.
4. A cluster is joined through its best-scoring member when that score reaches `join`,
   the two entries share at least MIN_SHARED_TERMS terms, and the entry does not name
   only days far from the days the cluster names. A syndicated copy always joins.
5. Other clusters that the entry also reaches, through the same words, are merged in.
"""
from __future__ import annotations

import heapq
import math
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import timedelta

from . import similarity as sim
from .types import ClusterDoc

# Two shared words are what unrelated headlines share by chance ("fake news", "police
# detain"); three or more shared terms are needed to join, whatever the cosine says.
MIN_SHARED_TERMS = 3
# An entry merges a second cluster into the one it joins only when it clearly bridges them:
# it is nearly as close to the second (MERGE_RELATIVE of its best score) and the words
# tying it to both are largely the same words (cosine of the two term-wise products,
# MERGE_AGREEMENT). A round-up that covers two events ties to each through different
# words; a follow-up story that only names the same people is much closer to its own event.
MERGE_RELATIVE = 0.75
MERGE_AGREEMENT = 0.5
# A report published a day or more after a cluster's last member, naming only days two or
# more days away from any day the cluster names, is about another occurrence (another quake
# in the same region, another price move).
DAY_CONFLICT_DAYS = 2
DAY_CONFLICT_GAP = 86400.0
# Cost bound: terms in more than this share of the window's entries (and more than
# COMMON_TERM_MIN entries) do not open candidates; at most RESCORE_CANDIDATES entries
# that could reach the bar are scored exactly.
COMMON_TERM_SHARE = 0.02
COMMON_TERM_MIN = 200
RESCORE_CANDIDATES = 64
# Cosine above which two entries are checked for being one text (syndicated copies).
SYNDICATED_COSINE = 0.5


@dataclass(frozen=True)
class ClusterConfig:
    """Clustering settings; defaults measured on the labelled dev corpus (see README)."""

    window: timedelta = timedelta(days=7)  # nothing older than this is compared or kept
    time_scale: timedelta = timedelta(hours=72)  # similarity x exp(-gap^2 / 2 scale^2)
    join: float = 0.3  # decayed similarity to a member needed to join its cluster


@dataclass(frozen=True)
class Assignment:
    """The decision for one entry, with what it rests on."""

    entry_id: int
    cluster_id: int
    is_new: bool  # True: the entry starts a new cluster
    matched_entry_id: int | None  # the member it resembles most (None for a new cluster)
    score: float  # the decayed similarity that decided (0.0 for a new cluster)
    shared_terms: tuple[str, ...]  # terms (names included) it shares with matched_entry_id
    time_gap: timedelta | None  # published-time distance to matched_entry_id
    merged: tuple[int, ...] = ()  # cluster ids absorbed into cluster_id by this entry
    reason: str = "new"  # "new", "similar" or "syndicated"


@dataclass
class _Cluster:
    id: int
    members: list[int] = field(default_factory=list)  # entry ids inside the window
    centroid: dict[str, int] = field(default_factory=dict)  # sum of member vectors, fixed point
    days: Counter = field(default_factory=Counter)  # stated days of the members
    absorbed: list[int] = field(default_factory=list)  # ids merged into this one
    last_ts: float = -math.inf


@dataclass
class _Match:
    """Evidence that an entry belongs to one candidate cluster."""

    cluster_id: int
    score: float = 0.0  # best time-decayed similarity to one member
    member: int = 0  # that member
    raw: float = 0.0  # its similarity before decay
    syndicated: int | None = None  # a member whose text this entry repeats


_SCALE = 1 << 24  # fixed-point scale of centroid sums: exact, order-independent arithmetic


class Clusterer:
    """Incremental event clustering over a sliding time window."""

    def __init__(self, config: ClusterConfig | None = None, next_cluster_id: int = 1) -> None:
        self.config = config or ClusterConfig()
        self.next_cluster_id = next_cluster_id
        self._window = self.config.window.total_seconds()
        self._scale = self.config.time_scale.total_seconds()
        self._docs: dict[int, tuple[sim.DocFeatures, int]] = {}  # entry id -> (features, cluster id)
        self._expiry: list[tuple[float, int]] = []  # heap of (published ts, entry id)
        self._postings: dict[str, dict[int, float]] = {}  # term -> entry id -> weight
        self._clusters: dict[int, _Cluster] = {}
        self._alias: dict[int, int] = {}  # absorbed cluster id -> surviving id
        self._df = sim.DocumentFrequencies()
        self._boilerplate = sim.FeedBoilerplate()
        self._names = sim.NameVariants()
        self._now = -math.inf

    # --- public API -------------------------------------------------------------------
    def warm(self, doc: ClusterDoc, cluster_id: int) -> None:
        """Add a stored entry with its stored cluster id (after a restart), without deciding.

        Feed the entries of the last `warm_span` in published order. With `window` of
        history the state is the same except for the statistics that the oldest entries
        were read with; with `warm_span` (two windows) it is the same, bit for bit.
        """
        self._advance(doc.published.timestamp())
        feats = self._read(doc)
        cid = self.resolve(cluster_id)
        self.next_cluster_id = max(self.next_cluster_id, cid + 1)
        self._insert(feats, cid)

    def assign(self, doc: ClusterDoc) -> Assignment:
        """Decide the cluster of a new entry and remember it."""
        self._advance(doc.published.timestamp())
        feats = self._read(doc)
        decision = self._decide(feats)
        self._insert(feats, decision.cluster_id)
        return decision

    def resolve(self, cluster_id: int) -> int:
        """The id a cluster is known by now (after merges seen in the window)."""
        while cluster_id in self._alias:
            cluster_id = self._alias[cluster_id]
        return cluster_id

    @property
    def warm_span(self) -> timedelta:
        """How much stored history `warm` needs for a restart that changes nothing."""
        return 2 * self.config.window

    @property
    def window_entries(self) -> int:
        return len(self._docs)

    @property
    def window_clusters(self) -> int:
        return len(self._clusters)

    # --- window state -----------------------------------------------------------------
    def _advance(self, ts: float) -> None:
        self._now = max(self._now, ts)
        horizon = self._now - self._window
        while self._expiry and self._expiry[0][0] < horizon:
            self._evict(heapq.heappop(self._expiry)[1])

    def _read(self, doc: ClusterDoc) -> sim.DocFeatures:
        feats = sim.extract(doc, self._boilerplate)
        df = self._df.df
        mapping = {}
        for t in feats.name_terms:
            if t not in df:
                known = self._names.known_spelling(t)
                if known is not None:
                    mapping[t] = known
        sim.respell(feats, mapping)
        self._df.add(feats.tf)
        feats.vec = sim.vectorize(feats.tf, self._df.idf)
        return feats

    def _insert(self, feats: sim.DocFeatures, cid: int) -> None:
        eid = feats.entry_id
        self._docs[eid] = (feats, cid)
        heapq.heappush(self._expiry, (feats.ts, eid))
        for t, w in feats.vec.items():
            self._postings.setdefault(t, {})[eid] = w
        c = self._clusters.get(cid)
        if c is None:
            c = self._clusters[cid] = _Cluster(cid)
        c.members.append(eid)
        c.last_ts = max(c.last_ts, feats.ts)
        c.days.update(feats.days)
        _add_to_centroid(c.centroid, feats.vec, +1)
        self._boilerplate.add(feats.feed_id, feats.sentence_keys, cid)
        self._names.add(feats.name_terms)

    def _evict(self, eid: int) -> None:
        feats, cid = self._docs.pop(eid)
        self._df.remove(feats.tf)
        self._names.remove(feats.name_terms)
        for t in feats.vec:
            p = self._postings[t]
            del p[eid]
            if not p:
                del self._postings[t]
        self._boilerplate.remove(feats.feed_id, feats.sentence_keys, cid)
        c = self._clusters[cid]
        c.members.remove(eid)
        if not c.members:
            del self._clusters[cid]
            for a in c.absorbed:
                self._alias.pop(a, None)
            return
        c.days.subtract(feats.days)
        c.days = +c.days
        _add_to_centroid(c.centroid, feats.vec, -1)

    # --- decision ---------------------------------------------------------------------
    def _decay(self, gap: float) -> float:
        x = gap / self._scale
        return math.exp(-0.5 * x * x)

    def _candidates(self, q: sim.DocFeatures) -> list[_Match]:
        """Clusters that q could join (decayed score >= join) or that hold a copy of q, best first.

        Candidate entries come from the postings of q's terms. Terms common in the window
        only score: their possible contribution is bounded (Cauchy-Schwarz) and added to
        each candidate's partial cosine, so no entry that could reach the bar is missed.
        """
        n = self._df.n
        common = max(COMMON_TERM_MIN, COMMON_TERM_SHARE * n)
        join = self.config.join
        # q's lightest terms, while together they could not lift a cosine to `join`, and
        # terms common in the window only bound the score (slack) instead of opening
        # candidates: an entry found through none of the other terms cannot reach the bar.
        acc: dict[int, float] = {}
        slack2 = 0.0
        postings = self._postings
        for t, w in sorted(q.vec.items(), key=lambda x: (x[1], x[0])):
            p = postings.get(t)
            if not p:
                continue
            if slack2 + w * w < join * join * 0.99 or len(p) > common:
                slack2 += w * w
                continue
            for eid, dw in p.items():
                acc[eid] = acc.get(eid, 0.0) + w * dw
        slack = math.sqrt(slack2)
        floor = min(join, SYNDICATED_COSINE) - slack
        docs = self._docs
        promising = []
        for eid, partial in acc.items():
            if partial < floor:
                continue
            upper = partial + slack
            other = docs[eid][0]
            gap = abs(q.ts - other.ts)
            if gap > self._window:
                continue
            decay = self._decay(gap)
            if upper * decay >= join or upper >= SYNDICATED_COSINE:
                promising.append((upper, eid, decay))
        if len(promising) > RESCORE_CANDIDATES:
            promising.sort(key=lambda x: (-x[0], x[1]))
            del promising[RESCORE_CANDIDATES:]
        matches: dict[int, _Match] = {}
        for _, eid, decay in promising:
            other, cid = docs[eid]
            full = sim.cosine(q.vec, other.vec) if slack else acc[eid]
            synd = full >= SYNDICATED_COSINE and sim.is_syndicated_copy(q, other)
            score = 0.0
            raw = 0.0
            if full * decay >= join:
                raw = sim.pair_similarity(q, other, full)
                score = raw * decay
            if score < join and not synd:
                continue
            m = matches.get(cid)
            if m is None:
                m = matches[cid] = _Match(cid)
            if score > m.score or (score == m.score and eid < m.member):
                m.score, m.member, m.raw = score, eid, raw
            if synd and (m.syndicated is None or eid < m.syndicated):
                m.syndicated = eid
        return sorted(matches.values(), key=lambda m: (-m.score, m.cluster_id))

    def _decide(self, q: sim.DocFeatures) -> Assignment:
        ranked = self._candidates(q)
        synd = [m for m in ranked if m.syndicated is not None]
        if synd:
            m = min(synd, key=lambda m: (m.syndicated, m.cluster_id))
            return self._joined(q, m.cluster_id, m.syndicated, 1.0, "syndicated")
        eligible = [m for m in ranked if m.score >= self.config.join and self._admits(q, m)]
        if not eligible:
            cid = self.next_cluster_id
            self.next_cluster_id += 1
            return Assignment(q.entry_id, cid, True, None, 0.0, (), None)
        win = eligible[0]
        asg = self._joined(q, win.cluster_id, win.member, win.score, "similar")
        absorbed = self._bridged(q, win, eligible[1:])
        if absorbed:
            ids = [win.cluster_id, *absorbed]
            survivor = self._merge(ids)
            asg = replace(asg, cluster_id=survivor, merged=tuple(sorted(i for i in ids if i != survivor)))
        return asg

    def _admits(self, q: sim.DocFeatures, m: _Match) -> bool:
        """The slot checks on top of the score: enough shared terms, no far-apart stated days."""
        other = self._docs[m.member][0]
        if sum(1 for t in q.vec if t in other.vec) < MIN_SHARED_TERMS:
            return False
        c = self._clusters[m.cluster_id]
        if q.days and c.days and q.ts - c.last_ts >= DAY_CONFLICT_GAP:
            if min(abs(d - e) for d in q.days for e in c.days) >= DAY_CONFLICT_DAYS:
                return False
        return True

    def _bridged(self, q: sim.DocFeatures, win: _Match, others: list[_Match]) -> list[int]:
        """Other eligible clusters that q ties to the winner through the same words."""
        cw = self._clusters[win.cluster_id].centroid
        out = []
        for m in others:
            if m.score < MERGE_RELATIVE * win.score:
                break
            cb = self._clusters[m.cluster_id].centroid
            x = [w * cw.get(t, 0) for t, w in q.vec.items()]
            y = [w * cb.get(t, 0) for t, w in q.vec.items()]
            nx = math.sqrt(sum(v * v for v in x))
            ny = math.sqrt(sum(v * v for v in y))
            if nx and ny and sum(a * b for a, b in zip(x, y)) / (nx * ny) >= MERGE_AGREEMENT:
                out.append(m.cluster_id)
        return out

    def _merge(self, ids: list[int]) -> int:
        """Fold clusters into one; the largest survives (ties: the oldest, i.e. lowest id)."""
        clusters = [self._clusters[i] for i in ids]
        survivor = min(clusters, key=lambda c: (-len(c.members), c.id))
        for c in clusters:
            if c is survivor:
                continue
            for eid in c.members:
                feats, _ = self._docs[eid]
                self._docs[eid] = (feats, survivor.id)
                self._boilerplate.relabel(feats.feed_id, feats.sentence_keys, c.id, survivor.id)
                _add_to_centroid(survivor.centroid, feats.vec, +1)
            survivor.members.extend(c.members)
            survivor.days.update(c.days)
            survivor.last_ts = max(survivor.last_ts, c.last_ts)
            survivor.absorbed += [c.id, *c.absorbed]
            for a in [c.id, *c.absorbed]:
                self._alias[a] = survivor.id
            del self._clusters[c.id]
        return survivor.id

    def _joined(self, q: sim.DocFeatures, cid: int, eid: int, score: float, reason: str) -> Assignment:
        m = self._docs[eid][0]
        return Assignment(q.entry_id, cid, False, eid, round(score, 4), sim.shared_terms(q.vec, m.vec),
                          timedelta(seconds=abs(q.ts - m.ts)), (), reason)


def _add_to_centroid(centroid: dict[str, int], vec: dict[str, float], sign: int) -> None:
    for t, w in vec.items():
        new = centroid.get(t, 0) + sign * int(round(w * _SCALE))
        if new:
            centroid[t] = new
        else:
            del centroid[t]
