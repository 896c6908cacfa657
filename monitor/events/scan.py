"""The window's inverted index and the candidate search's inner loops, in Python and, where it
was built, in C.

`WindowIndex` holds, for each term, the window's entries that have it (with the term's weight
and the entry's time); its `search` sums an entry's partial cosines through it and keeps the
entries that could reach the join bar. `lead_cosine` and `dot` are the dot products of the
exact scoring; `fixed` and `add_to_centroid` keep clusters' centroid sums, in integers. They
are most of a decision's time, in Python loops over dictionaries, so
`monitor/events/_scan.c` has them compiled, with each term's postings in flat arrays rather
than dictionaries of number objects spread over memory (reaching those was most of the
time). The compiled twins compute exactly what these do (the same products and sums in the
same order, libm's exp and sqrt as Python's math calls them), so a decision never depends on
whether the extension was built: `COMPILED` says which run, and `monitor status` shows it.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Protocol

# (upper bound of the cosine, entry id, time decay, partial cosine from the terms scanned)
Found = tuple[float, int, float, float]


class Index(Protocol):
    """What the clusterer uses of a window index (WindowIndexPy documents each method)."""

    def __len__(self) -> int: ...
    def add(self, eid: int, ts: float, vec: dict[str, float]) -> None: ...
    def remove(self, eid: int, vec: dict[str, float]) -> None: ...
    def postings(self, term: str) -> dict[int, float]: ...
    def search(self, vec: dict[str, float], common: float, join: float, confident: float, syndicated: float,
               ts: float, window: float, half_inv_scale2: float, names: frozenset[str],
               specific: dict[int, frozenset[str]]) -> tuple[list[Found], list[tuple[str, float]]]: ...


class WindowIndexPy:
    """Inverted index over the window's entry vectors: term -> entry id -> weight."""

    def __init__(self) -> None:
        self._postings: dict[str, dict[int, float]] = {}  # term -> entry id -> weight
        self._maxw: dict[str, float] = {}  # term -> its highest weight in the postings
        self._stamps: dict[int, float] = {}  # entry id -> published time

    def __len__(self) -> int:
        """The number of entries indexed."""
        return len(self._stamps)

    def add(self, eid: int, ts: float, vec: dict[str, float]) -> None:
        """Index an entry's vector; `ts` is its published time (POSIX seconds)."""
        self._stamps[eid] = ts
        postings, maxw = self._postings, self._maxw
        for t, w in vec.items():
            p = postings.get(t)
            if p is None:
                postings[t] = {eid: w}
                maxw[t] = w
            else:
                p[eid] = w
                if w > maxw[t]:
                    maxw[t] = w

    def remove(self, eid: int, vec: dict[str, float]) -> None:
        """Take out an entry indexed with `vec`."""
        del self._stamps[eid]
        postings, maxw = self._postings, self._maxw
        for t, w in vec.items():
            p = postings[t]
            del p[eid]
            if not p:
                del postings[t]
                del maxw[t]
            elif w == maxw[t]:  # the highest weight left: a stale bound would open candidates for nothing
                maxw[t] = max(p.values())

    def postings(self, term: str) -> dict[int, float]:
        """The entries that have `term`, with its weight in each, in the order they were added."""
        return dict(self._postings.get(term, {}))

    def search(self, vec: dict[str, float], common: float, join: float, confident: float, syndicated: float,
               ts: float, window: float, half_inv_scale2: float, names: frozenset[str],
               specific: dict[int, frozenset[str]]) -> tuple[list[Found], list[tuple[str, float]]]:
        """The indexed entries that an entry with `vec`, published at `ts`, could join or copy.

        Terms in more than `common` entries open no candidates: what they can add to a cosine
        is bounded by their highest weight, and that bound is added to every partial cosine.
        An entry is kept when its upper bound (partial + bound) reaches `syndicated`, or when,
        decayed by the time gap (exp(-gap^2 x `half_inv_scale2`), no more than `window` apart),
        it reaches `join`, and `confident` too unless the entry names someone in `names`.
        Returns those entries, in the order the sums first reached them, and the common
        terms with their weights in `vec` (for the exact scores).
        """
        postings, maxw = self._postings, self._maxw
        skipped: list[tuple[str, float]] = []
        active: list[tuple[str, float, dict[int, float]]] = []
        bound = 0.0  # most that the skipped common terms can add to any cosine
        for t, w in vec.items():
            p = postings.get(t)
            if not p:
                continue
            if len(p) > common:
                skipped.append((t, w))
                bound += w * maxw[t]
            else:
                active.append((t, w, p))
        floor = min(join, syndicated) - bound
        # An entry that shares only terms whose bounds add up to less than the floor can
        # never be examined, so those terms open no candidates: they only add to the
        # entries that the others opened (the same sums, in the same order, for less work).
        minor: set[str] = set()
        reach = 0.0
        for b, t in sorted((w * maxw[t], t) for t, w, _ in active):
            if reach + b >= floor:
                break
            reach += b
            minor.add(t)
        opened: set[int] = set()
        if minor:
            opened.update(*(p for t, _, p in active if t not in minor))
        acc: defaultdict[int, float] = defaultdict(float)
        for t, w, p in active:
            if t not in minor:
                if not acc:  # the first term: the same sums (0.0 + x is x), made in one pass
                    acc = defaultdict(float, {eid: w * dw for eid, dw in p.items()})
                    continue
                for eid, dw in p.items():
                    acc[eid] += w * dw
            elif opened:
                for eid, dw in p.items():
                    if eid in opened:
                        acc[eid] += w * dw
        stamps = self._stamps
        found: list[Found] = []
        exp = math.exp
        for eid, partial in acc.items():
            if partial < floor:
                continue
            upper = partial + bound
            gap = abs(ts - stamps[eid])
            if gap > window:
                continue
            decay = exp(-gap * gap * half_inv_scale2)
            # a copy's bound always qualifies; below `confident` only an entry that names someone q names
            decayed = upper * decay
            if upper >= syndicated or (decayed >= join and (decayed >= confident
                                                            or not names.isdisjoint(specific[eid]))):
                found.append((upper, eid, decay, partial))
        return found, skipped


def lead_cosine_py(a: Mapping[str, float], a_lead: frozenset[str], b: Mapping[str, float]) -> float:
    """Cosine of the title-and-lead part of `a` (renormalised) with all of `b`."""
    num = n2 = 0.0
    for t, w in a.items():
        if t in a_lead:
            n2 += w * w
            num += w * b.get(t, 0.0)
    return num / math.sqrt(n2) if n2 else 0.0


def dot_py(pairs: list[tuple[str, float]], b: Mapping[str, float]) -> float:
    """Sum of weight x b's weight over (term, weight) pairs, left to right."""
    s = 0.0
    for t, w in pairs:
        s += w * b.get(t, 0.0)
    return s


def fixed_py(vec: dict[str, float], scale: float) -> dict[str, int]:
    """A vector in the fixed-point units of centroid sums: each weight x scale, rounded as round() does."""
    return {t: round(w * scale) for t, w in vec.items()}


def add_to_centroid_py(centroid: dict[str, int], fixed: dict[str, int], sign: int) -> int:
    """Add (sign +1) or take away (-1) a fixed-point vector; return the change of the squared length.
    Terms that reach zero leave the centroid."""
    delta = 0
    get = centroid.get
    for t, x in fixed.items():
        old = get(t, 0)
        new = old + sign * x
        delta += new * new - old * old
        if new:
            centroid[t] = new
        else:
            del centroid[t]
    return delta


def _add_to_centroid_compiled(centroid: dict[str, int], fixed: dict[str, int], sign: int) -> int:
    try:
        return _scan.add_to_centroid(centroid, fixed, sign)
    except OverflowError:  # sums beyond what it adds exactly in 128 bits (it changed nothing)
        return add_to_centroid_py(centroid, fixed, sign)


WindowIndex: Callable[[], Index] = WindowIndexPy
lead_cosine = lead_cosine_py
dot = dot_py
fixed = fixed_py
add_to_centroid = add_to_centroid_py
try:
    from . import _scan
except ImportError:  # built without a C compiler: the same results, slower
    COMPILED = False
else:
    WindowIndex, lead_cosine, dot, fixed = _scan.WindowIndex, _scan.lead_cosine, _scan.dot, _scan.fixed
    add_to_centroid = _add_to_centroid_compiled
    COMPILED = True
