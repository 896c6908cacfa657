"""The inner loops of the candidate search, in Python and, where it was built, in C.

`scan` sums an entry's dot products with the window's entries through the inverted index
and keeps those that could reach the join bar; `lead_cosine` and `dot` are the dot
products of the exact scoring. They are most of a decision's time, and each is a few
lines over dictionaries, so `monitor/events/_scan.c` has them compiled. The compiled
functions compute exactly what these do (the same products and sums in the same order,
libm's exp and sqrt), so a decision never depends on whether the extension was built:
`COMPILED` says which ones run, and `monitor status` shows it.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping

# (weight of the term in the entry, the term's postings: entry id -> weight, minor): a minor
# term only adds to entries that the others open (see Clusterer._candidates)
Term = tuple[float, dict[int, float], bool]
# (upper bound of the cosine, entry id, time decay, partial cosine from the terms scanned)
Found = tuple[float, int, float, float]


def scan_py(terms: list[Term], floor: float, bound: float, stamps: dict[int, float], ts: float,
            window: float, half_inv_scale2: float, join: float, confident: float, syndicated: float,
            names: frozenset[str], specific: dict[int, frozenset[str]]) -> list[Found]:
    """The window's entries that could join: partial cosines summed term by term (in `terms`'
    order), kept when at least `floor`, within `window` seconds of `ts`, and when the cosine's
    upper bound (partial + `bound`) is a syndicated copy's (>= `syndicated`) or, decayed by the
    time gap, reaches `join` (and `confident`, unless the entry names someone in `names`).
    In the order the entries were first added to."""
    opened: set[int] = set()
    if any(minor for _, _, minor in terms):
        opened.update(*(p for _, p, minor in terms if not minor))
    acc: defaultdict[int, float] = defaultdict(float)
    for w, p, minor in terms:
        if not minor:
            for eid, dw in p.items():
                acc[eid] += w * dw
        elif opened:
            for eid, dw in p.items():
                if eid in opened:
                    acc[eid] += w * dw
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
        reach = upper * decay
        if upper >= syndicated or (reach >= join and (reach >= confident
                                                      or not names.isdisjoint(specific[eid]))):
            found.append((upper, eid, decay, partial))
    return found


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


scan = scan_py
lead_cosine = lead_cosine_py
dot = dot_py
try:
    from . import _scan
except ImportError:  # built without a C compiler: the same results, slower
    COMPILED = False
else:
    scan, lead_cosine, dot = _scan.scan, _scan.lead_cosine, _scan.dot
    COMPILED = True
