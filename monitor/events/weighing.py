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

from monitor.types import ClusterDoc

from . import similarity as sim
from .reading import Reading


class Weigher:
    """Per-stream statistics over a sliding time window, and the weighing of new entries.

    Entries must come in published order (as the clusterer takes them); an entry leaves
    the statistics when the newest entry is more than `window` seconds later.
    """

    def __init__(self, window: float) -> None:
        self.window = window
        self.df = sim.DocumentFrequencies()
        self.boilerplate = sim.FeedBoilerplate()
        self.names = sim.NameVariants()
        self._now = -math.inf
        self._expiry: list[tuple[float, int]] = []  # heap of (published ts, entry id)
        # entry id -> what it added: feed id, sentence keys, headline, terms, name terms (terms are
        # shared interned objects, so a pickled state holds each term once: see weighpool)
        self._kept: dict[int, tuple[int, tuple[int, ...], frozenset[str], tuple[str, ...], tuple[str, ...]]]
        self._kept = {}

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
        expiry = self._expiry
        while expiry and expiry[0][0] < horizon:  # as the clusterer's window moves
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
        eid = feats.entry_id
        self._kept[eid] = (feats.feed_id, feats.sentence_keys, feats.headline, feats.terms,
                           tuple(sorted(feats.name_terms)))  # sorted: the same in every process
        heapq.heappush(self._expiry, (feats.ts, eid))
        self.boilerplate.add(feats.feed_id, feats.sentence_keys, feats.headline)
        self.names.add(feats.name_terms)
        return feats

    def load(self, other: Weigher) -> None:
        """Take the state of `other` (the same stream, weighed further in another process)."""
        self.__dict__.update(other.__dict__)

    def _forget(self, eid: int) -> None:
        feed_id, keys, headline, terms, names = self._kept.pop(eid)
        self.df.remove(terms)
        self.names.remove(names)
        self.boilerplate.remove(feed_id, keys, headline)
