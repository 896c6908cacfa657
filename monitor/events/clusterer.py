"""Event clustering: put each new entry into the cluster of the real-world event it reports.

Pure and incremental: `Clusterer.assign` takes one entry (in published order), decides
(join, start, or join and merge), updates its in-memory window and returns an
`Assignment` that says why. `Clusterer.warm` rebuilds the same state from stored entries
after a restart without deciding again. No I/O, no clock.

How an entry is placed (thresholds are explained where they are defined):
1. Read and weigh it (monitor.events.reading, monitor.events.weighing; ahead of time in another process
   for large runs): lead-weighted terms minus the feed's learned boilerplate, name
   spellings mapped to the ones already in the window, days the text names.
2. Candidates: entries of the window that share its rarer terms (inverted index).
3. Each candidate entry is scored by `pair_similarity` (tf-idf cosine, capped by the
   lead-to-whole cosines) times a Gaussian decay of the published-time gap.
4. A cluster is joined through its best-scoring member when that score reaches `join`,
   the two entries share at least MIN_SHARED_TERMS terms (and a name below
   CONFIDENT_JOIN), the entry's lead does not name only days far from the days the
   cluster names, and the entry resembles the cluster's centroid too (no drift along a
   chain). A syndicated copy always joins.
5. Other clusters that the entry also reaches, through the same words, are merged in.
6. An entry that no cluster of the window accepts joins, as a follow-up, the cluster
   whose specific names it shares (monitor.events.followups), up to `follow_up_window` back.
"""
from __future__ import annotations

import contextlib
import gc
import heapq
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta

from monitor.types import ClusterDoc

from . import scan
from . import similarity as sim
from .followups import FollowUps
from .reading import Reading
from .weighing import Weigher

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
# Below this score two reports must also name someone or somewhere in common: what
# similar incidents share without it is the vocabulary of their kind ("central bank",
# "shot", "hate speech"), which makes up a low score on its own.
CONFIDENT_JOIN = 0.3
# A report whose title and lead name only days two or more days away from every day the
# cluster's members name is about another occurrence (another quake in the same region,
# another price move, another insider sale). One day apart is the same story told across
# midnight or time zones.
DAY_CONFLICT_DAYS = 2
# Against drift along a chain of nearest neighbours (a round-up joins event A, then a report
# of event B joins through the round-up): an entry must also resemble the rest of a cluster
# of CENTROID_MIN_MEMBERS or more (cosine with the summed vectors of the members other than
# its nearest one) at CENTROID_SHARE of the bar it clears against that nearest member.
# (Measured: half the bar costs no recall on the dev corpus; the whole bar starts to.)
CENTROID_MIN_MEMBERS = 3
CENTROID_SHARE = 0.5
# Cost bound: terms in more than this share of the window's entries (and more than
# COMMON_TERM_MIN entries) do not open candidates; at most RESCORE_CANDIDATES entries
# that could reach the bar are scored exactly.
COMMON_TERM_SHARE = 0.005
COMMON_TERM_MIN = 50
RESCORE_CANDIDATES = 32
# Cosine above which two entries are checked for being one text (syndicated copies).
SYNDICATED_COSINE = 0.5


@dataclass(frozen=True)
class ClusterConfig:
    """Clustering settings; defaults measured on the labelled dev corpus (see README)."""

    window: timedelta = timedelta(days=7)  # nothing older than this is compared or kept
    time_scale: timedelta = timedelta(hours=96)  # similarity x exp(-gap^2 / 2 scale^2)
    join: float = 0.15  # decayed similarity to a member needed to join its cluster
    follow_up_window: timedelta = timedelta(days=365)  # name pairs kept for follow-ups (0: none)


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
    reason: str = "new"  # "new", "similar", "syndicated" or "follow-up"
    also: tuple[int, ...] = ()  # follow-up: other clusters it names as well (it joins one only)
    name_keys: tuple[str, ...] = ()  # the entry's name pairs, kept for later follow-ups


@dataclass
class _Cluster:
    id: int
    members: dict[int, None] = field(default_factory=dict)  # entry ids inside the window (ordered set)
    centroid: dict[str, int] = field(default_factory=dict)  # sum of member vectors, fixed point
    norm2: int = 0  # squared length of the centroid (fixed point squared, exact)
    days: dict[int, int] = field(default_factory=dict)  # stated day -> members that name it
    absorbed: list[int] = field(default_factory=list)  # ids merged into this one


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
        self._names: dict[int, frozenset[str]] = {}  # entry id -> names: a compact map for the candidate scan
        self._fixed: dict[int, dict[str, int]] = {}  # entry id -> its vector in centroid units (_fixed)
        self._expiry: list[tuple[float, int]] = []  # heap of (published ts, entry id)
        self._index = scan.WindowIndex()  # term -> the window's entries that have it
        self._clusters: dict[int, _Cluster] = {}
        self._alias: dict[int, int] = {}  # absorbed cluster id -> surviving id
        self.weigher = Weigher(self._window)  # the stream's statistics, over the same window
        self.followups = FollowUps(self.config.follow_up_window.total_seconds())
        self._now = -math.inf

    # --- public API -------------------------------------------------------------------
    def warm(self, doc: ClusterDoc, cluster_id: int, reading: Reading | None = None) -> None:
        """Add a stored entry with its stored cluster id (after a restart), without deciding.

        Feed the entries of the last `warm_span` (or the last `warm_entries`, whichever
        reaches further back) in published order, after `recall` of the older ones' name
        keys. With `window` of history the state is the same except for the statistics
        that the oldest entries were read with; with `warm_span` it is the same, bit for bit.
        """
        self.keep(self.weigher.weigh(doc, reading), cluster_id)

    def assign(self, doc: ClusterDoc, reading: Reading | None = None) -> Assignment:
        """Decide the cluster of a new entry and remember it.

        `reading` is the entry's `reading.read` when it was made ahead of time.
        """
        return self.place(self.weigher.weigh(doc, reading))

    def keep(self, feats: sim.DocFeatures, cluster_id: int) -> None:
        """`warm` for an entry that `self.weigher` (or its copy in another process) weighed."""
        self._advance(feats.ts)
        cid = self.resolve(cluster_id)
        self.next_cluster_id = max(self.next_cluster_id, cid + 1)
        self._insert(feats, cid)

    def place(self, feats: sim.DocFeatures) -> Assignment:
        """`assign` for an entry that `self.weigher` (or its copy in another process) weighed."""
        self._advance(feats.ts)
        decision = self._decide(feats)
        self._insert(feats, decision.cluster_id)
        return replace(decision, name_keys=feats.name_keys) if feats.name_keys else decision

    def recall(self, entry_id: int, cluster_id: int, published: float, name_keys: Iterable[str]) -> None:
        """Remember a stored entry older than `warm_span` for follow-ups: its name pairs only."""
        self.next_cluster_id = max(self.next_cluster_id, cluster_id + 1)
        self.followups.add(cluster_id, entry_id, published, name_keys)

    def merged(self, absorbed: int, into: int) -> None:
        """A merge stored earlier (after a restart): follow-ups of `absorbed` go to `into`."""
        self.followups.merge((absorbed,), into)

    def resolve(self, cluster_id: int) -> int:
        """The id a cluster is known by now (after merges seen in the window)."""
        while cluster_id in self._alias:
            cluster_id = self._alias[cluster_id]
        return cluster_id

    def compare(self, entry_id: int, other_id: int) -> Assignment | None:
        """How `entry_id` relates to `other_id` (both in the window), as an Assignment would say.

        For explanations ("why did these two not join?") and tests; decides nothing.
        """
        if entry_id not in self._docs or other_id not in self._docs:
            return None
        q, cid = self._docs[entry_id]
        other, ocid = self._docs[other_id]
        gap = abs(q.ts - other.ts)
        score = sim.pair_similarity(q, other) * self._decay(gap) if gap <= self._window else 0.0
        return Assignment(entry_id, ocid, cid != ocid, other_id, round(score, 4),
                          sim.shared_terms(q.vec, other.vec), timedelta(seconds=gap), (), "compare")

    @property
    def warm_span(self) -> timedelta:
        """How much stored history `warm` needs for a restart that changes nothing."""
        return 2 * self.config.window

    @property
    def warm_entries(self) -> int:
        """At least this many stored entries before the first new one rebuild the word statistics
        (which keep entries past the window in a quiet stream, see weighing)."""
        return 2 * self.weigher.min_entries

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

    def _insert(self, feats: sim.DocFeatures, cid: int) -> None:
        eid = feats.entry_id
        self._docs[eid] = (feats, cid)
        self._names[eid] = feats.specific
        heapq.heappush(self._expiry, (feats.ts, eid))
        self._index.add(eid, feats.ts, feats.vec)
        fixed = self._fixed[eid] = _fixed(feats.vec)
        c = self._clusters.get(cid)
        if c is None:
            c = self._clusters[cid] = _Cluster(cid)
        c.members[eid] = None
        for d in feats.days:
            c.days[d] = c.days.get(d, 0) + 1
        c.norm2 += _add_to_centroid(c.centroid, fixed, +1)
        if feats.name_keys:
            self.followups.add(cid, eid, feats.ts, feats.name_keys)

    def _evict(self, eid: int) -> None:
        feats, cid = self._docs.pop(eid)
        del self._names[eid]
        fixed = self._fixed.pop(eid)
        self._index.remove(eid, feats.vec)
        c = self._clusters[cid]
        del c.members[eid]
        if not c.members:
            del self._clusters[cid]
            for a in c.absorbed:
                self._alias.pop(a, None)
            return
        for d in feats.days:
            if c.days[d] == 1:
                del c.days[d]
            else:
                c.days[d] -= 1
        c.norm2 += _add_to_centroid(c.centroid, fixed, -1)

    # --- decision ---------------------------------------------------------------------
    def _decay(self, gap: float) -> float:
        x = gap / self._scale
        return math.exp(-0.5 * x * x)

    def _candidates(self, q: sim.DocFeatures) -> list[_Match]:
        """Clusters that q could join (decayed score >= join) or that hold a copy of q, best first.

        Candidate entries come from the postings of q's terms. Terms common in the window
        (long postings) open no candidates; what they can add to a cosine is bounded by
        their highest weight in the window, so an entry that could reach the bar through
        them is still examined unless that bound alone exceeds the bar (scan.WindowIndexPy.search).
        At most RESCORE_CANDIDATES of the entries found are scored exactly.
        """
        n = len(self._docs) + 1  # the window's entries, q included (as its document frequencies count)
        common = max(COMMON_TERM_MIN, COMMON_TERM_SHARE * n)
        join = self.config.join
        promising, skipped = self._index.search(q.vec, common, join, CONFIDENT_JOIN, SYNDICATED_COSINE, q.ts,
                                                self._window, 0.5 / (self._scale * self._scale), q.specific,
                                                self._names)
        if len(promising) > RESCORE_CANDIDATES:
            promising.sort(key=lambda x: (-x[0], x[1]))
            del promising[RESCORE_CANDIDATES:]
        matches: dict[int, _Match] = {}
        docs = self._docs
        for _, eid, decay, full in promising:
            other, cid = docs[eid]
            if skipped:
                full += scan.dot(skipped, other.vec)
            synd = full >= SYNDICATED_COSINE and sim.is_syndicated_copy(q, other)
            score = raw = 0.0
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
        copies = [(m.syndicated, m.cluster_id) for m in ranked if m.syndicated is not None]
        if copies:
            copy_of, cid = min(copies)
            return self._joined(q, cid, copy_of, 1.0, "syndicated")
        eligible = [m for m in ranked if m.score >= self.config.join and self._admits(q, m)]
        if not eligible and q.name_keys:
            found = self.followups.find(q.name_keys, q.ts)
            if found:
                f = found[0]
                return Assignment(q.entry_id, f.cluster_id, False, f.entry_id, 0.0, f.keys,
                                  timedelta(seconds=max(0.0, q.ts - f.ts)), (), "follow-up",
                                  tuple(x.cluster_id for x in found[1:]))
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
        """The checks on top of the score: enough shared terms, no far-apart stated days,
        and some resemblance to the cluster as a whole, not only to its nearest member."""
        other = self._docs[m.member][0]
        if len(q.vec.keys() & other.vec.keys()) < MIN_SHARED_TERMS:
            return False
        if m.score < CONFIDENT_JOIN and q.specific.isdisjoint(other.specific):
            return False
        c = self._clusters[m.cluster_id]
        if q.days and c.days and min(abs(d - e) for d in q.days for e in c.days) >= DAY_CONFLICT_DAYS:
            return False
        if len(c.members) >= CENTROID_MIN_MEMBERS:
            # the rest of the cluster: its centroid without the member that q resembles most
            cen = c.centroid
            mine = self._fixed[m.member]
            norm2 = c.norm2 - sum(2 * cen.get(t, 0) * x - x * x for t, x in mine.items())
            dot = sum(w * (cen.get(t, 0) - mine.get(t, 0)) for t, w in q.vec.items())
            if norm2 <= 0 or dot / math.sqrt(norm2) < CENTROID_SHARE * self.config.join:
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
            if nx and ny and sum(a * b for a, b in zip(x, y, strict=True)) / (nx * ny) >= MERGE_AGREEMENT:
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
                survivor.norm2 += _add_to_centroid(survivor.centroid, self._fixed[eid], +1)
            survivor.members.update(c.members)
            for d, k in c.days.items():
                survivor.days[d] = survivor.days.get(d, 0) + k
            survivor.absorbed += [c.id, *c.absorbed]
            for a in [c.id, *c.absorbed]:
                self._alias[a] = survivor.id
            self.followups.merge((c.id,), survivor.id)
            del self._clusters[c.id]
        return survivor.id

    def _joined(self, q: sim.DocFeatures, cid: int, eid: int, score: float, reason: str) -> Assignment:
        m = self._docs[eid][0]
        return Assignment(q.entry_id, cid, False, eid, round(score, 4), sim.shared_terms(q.vec, m.vec),
                          timedelta(seconds=abs(q.ts - m.ts)), (), reason)


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """Hold Python's cyclic garbage collector while a batch of entries is clustered.

    The window is hundreds of thousands of small dicts, sets and tuples that live for days,
    and every full collection walks all of them again: a quarter of the time of clustering
    a first poll's 20,000 entries. Nothing the clusterer builds refers to itself, so
    reference counting frees it all the same; collection resumes afterwards.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _fixed(vec: dict[str, float]) -> dict[str, int]:
    """A vector in the fixed-point units of centroid sums (made once per entry, used to add and take away)."""
    return scan.fixed(vec, _SCALE)


_add_to_centroid = scan.add_to_centroid  # (centroid, fixed, sign) -> change of the squared length
