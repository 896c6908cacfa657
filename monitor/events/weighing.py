"""What the stream teaches about its words, and the weighing of each entry with it.

An entry's vector depends on the entry (its reading) and on the stream before it: the
feed's learned boilerplate, the spellings of names seen lately, the document frequencies
of the window. None of that depends on how entries were clustered, so it lives here, apart
from the decisions: `Weigher.weigh` turns an entry into the DocFeatures the clusterer
decides on, and keeps the statistics of the entries inside the time window.

Because it is separate, a large run can weigh entries in another process, ahead of the
decisions (monitor.events.weighpool); the weigher's state is handed back when the run ends.
Pure, no I/O, no clock.
"""
from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any, Protocol

from monitor.types import ClusterDoc

from . import similarity as sim
from .followups import MAX_KEYS_PER_ENTRY
from .reading import Reading

# Word statistics (document frequencies, boilerplate, name spellings, written case) need a
# sample of the stream that is large enough to tell a common word from a rare one. A busy
# stream's window holds far more; a quiet one (a few outlets, a niche topic) may hold a
# dozen entries in a week, where "shot" and "police" would look as rare as a victim's
# name. So the statistics keep entries past the window until they hold this many.
# (Measured on real local news: 1,000 entries give nearly all of the gain, see docs.)
SAMPLE_ENTRIES = 5000
# The statistics, as opposed to the settings (window, min_entries).
_STATE = ("df", "boilerplate", "names", "case", "_now", "_expiry", "_kept")


class Holder(Protocol):
    """Whoever holds a weigher's statistics for now (see `Weigher.hand_over`)."""

    def take_back(self) -> Weigher: ...


class Weigher:
    """Per-stream statistics over a sliding time window, and the weighing of new entries.

    Entries must come in published order (as the clusterer takes them); an entry leaves
    the statistics when the newest entry is more than `window` seconds later and at least
    `min_entries` newer entries remain.
    """

    def __init__(self, window: float, min_entries: int = SAMPLE_ENTRIES) -> None:
        self.window = window
        self.min_entries = min_entries
        self.df = sim.DocumentFrequencies()
        self.boilerplate = sim.FeedBoilerplate()
        self.names = sim.NameVariants()
        self.case = sim.WrittenCase()
        self._now = -math.inf
        self._expiry: list[tuple[float, int]] = []  # heap of (published ts, entry id)
        # entry id -> what it added: feed id, sentence keys, headline, terms, name terms, capitalised
        # and lower-case terms (terms are shared interned objects, so a pickled state holds each
        # term once: see weighpool)
        self._kept: dict[int, tuple[int, tuple[int, ...], frozenset[str], tuple[str, ...], tuple[str, ...],
                                    tuple[str, ...], tuple[str, ...]]]
        self._kept = {}
        self._holder: Holder | None = None

    def hand_over(self, holder: Holder) -> None:
        """Leave the statistics with `holder` (a process that weighed further with a copy of
        them): they are taken back the first time anything reads them, and until then the
        holder may go on weighing with them."""
        if self._holder is not None:
            raise RuntimeError("the statistics are already handed over")
        for name in _STATE:
            del self.__dict__[name]
        self._holder = holder

    @property
    def holder(self) -> Holder | None:
        """Who holds the statistics now (None: this weigher)."""
        return self._holder

    def _take_back(self) -> None:
        holder, self._holder = self._holder, None
        if holder is not None:
            self.load(holder.take_back())

    def __getattr__(self, name: str) -> Any:
        # Only for attributes that are missing: the statistics, while they are handed over.
        if self.__dict__.get("_holder") is None or name not in _STATE:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        self._take_back()
        return self.__dict__[name]

    def __getstate__(self) -> dict[str, Any]:
        self._take_back()  # the statistics travel, not their holder
        return {k: v for k, v in self.__dict__.items() if k != "_holder"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._holder = None

    @property
    def entries(self) -> int:
        """Entries inside the window (the current one included once it is weighed)."""
        return self.df.n

    def weigh(self, doc: ClusterDoc, reading: Reading | None = None) -> sim.DocFeatures:
        """The entry's features (vector included), counted in the window's statistics.

        `reading` is the entry's `reading.read` when it was made ahead of time.
        """
        self._now = max(self._now, doc.published.timestamp())
        horizon = self._now - self.window
        expiry, keep = self._expiry, self.min_entries
        # as the clusterer's window moves, but never down to fewer than min_entries entries
        while expiry and expiry[0][0] < horizon and len(expiry) >= keep:
            self._forget(heapq.heappop(expiry)[1])
        feats = sim.extract(doc, self.boilerplate, reading)
        df = self.df.df
        mapping = {}
        for t in feats.name_terms:
            if t not in df:
                known = self.names.known_spelling(t)
                if known is not None:
                    mapping[t] = known
        sim.respell(feats, mapping)
        feats.index(self.df)
        is_name = self.case.is_name
        feats.name_keys = tuple(islice(dict.fromkeys(name_keys(feats.pairs, is_name)), MAX_KEYS_PER_ENTRY))
        capitalised = set(feats.capitalised)
        feats.specific = frozenset(t for t in feats.vec if t in capitalised and is_name(t))
        eid = feats.entry_id
        self._kept[eid] = (feats.feed_id, feats.sentence_keys, feats.headline, feats.terms,
                           tuple(sorted(feats.name_terms)),  # sorted: the same in every process
                           feats.capitalised, feats.lower)
        heapq.heappush(self._expiry, (feats.ts, eid))
        self.boilerplate.add(feats.feed_id, feats.sentence_keys, feats.headline)
        self.names.add(feats.name_terms)
        self.case.add(feats.capitalised, feats.lower)
        feats.pairs = feats.capitalised = feats.lower = ()
        return feats

    def load(self, other: Weigher) -> None:
        """Take the state of `other` (the same stream, weighed further in another process)."""
        self.__dict__.update({k: v for k, v in other.__dict__.items() if k != "_holder"})
        self._holder = None  # a holder's copy is stale now

    def _forget(self, eid: int) -> None:
        feed_id, keys, headline, terms, names, capitalised, lower = self._kept.pop(eid)
        self.df.remove(terms)
        self.names.remove(names)
        self.case.remove(capitalised, lower)
        self.boilerplate.remove(feed_id, keys, headline)


def name_keys(runs: Iterable[str], is_name: Callable[[str], bool]) -> Iterator[str]:
    """The names in runs of capitalised words: the parts of two or more words that the
    stream writes as names ("Harris County Sheriff Adrian Garcia" -> "adrian garcia")."""
    for run in runs:
        part: list[str] = []
        for t in [*run.split(" "), ""]:
            if t and is_name(t):
                part.append(t)
                continue
            if len(part) > 1:
                yield " ".join(part)
            part = []
