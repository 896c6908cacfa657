"""Follow-ups: a later report joins its incident weeks or months after the window.

The window (a week by default) compares whole vectors, and what a week of news shares by
chance keeps it short. An incident's later reports (the suspect charged, the victim
named, the trial, the verdict) come weeks or months apart, share little wording with the
first reports, and do share the names: of the people, of the place. So past the window
the clusterer keeps, for every cluster, only the name pairs of its members ("jacob
melendez", "peregrine park"; see weighing for what counts as a name): a small index with
its own horizon (`follow_up_window`, a year by default), not the texts.

A later report joins the cluster with which it shares at least MIN_SHARED_KEYS name
pairs. A pair held by more than MAX_KEY_CLUSTERS clusters is no evidence: a common name
("John Smith"), a town's main street, a page's furniture ("Email Print"). A single pair
never links, however rare. Pure logic: entries in published order, no clock, no I/O.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

# Two shared name pairs: a person's full name and a place, two people, a person and a
# business. One pair alone links two incidents with a namesake in them.
MIN_SHARED_KEYS = 2
# A name pair in more clusters than this (inside the horizon) names no one incident.
MAX_KEY_CLUSTERS = 2
# Name pairs kept per entry: those of the title and lead come first; a long article's
# tail adds background names that rarely decide.
MAX_KEYS_PER_ENTRY = 24
# Stale holders (older than the horizon) are ignored by every look-up and swept out of
# memory each time the stream has moved this share of the horizon.
SWEEP_SHARE = 1 / 16


@dataclass(frozen=True)
class FollowUp:
    """A cluster that an entry names, with the evidence."""

    cluster_id: int
    keys: tuple[str, ...]  # the name pairs both have, in the entry's order
    entry_id: int  # the cluster's latest member with one of them
    ts: float  # its published time


class FollowUps:
    """Name pair -> the clusters whose members have it, over a horizon of published time."""

    def __init__(self, horizon: float) -> None:
        self.horizon = horizon
        # key -> cluster -> (published, entry id) of its latest member with the key, and when
        # the cluster first had it
        self._index: dict[str, dict[int, tuple[float, int, float]]] = {}
        self._alias: dict[int, int] = {}  # merged cluster -> the one it went into
        self._now = -math.inf
        self._swept = -math.inf

    def add(self, cluster_id: int, entry_id: int, ts: float, keys: Iterable[str]) -> None:
        """Remember that a member of `cluster_id` has these name pairs."""
        if self.horizon <= 0:
            return
        self._advance(ts)
        if ts < self._now - self.horizon:
            return
        index = self._index
        for k in keys:
            holders = index.get(k)
            if holders is None:
                index[k] = {cluster_id: (ts, entry_id, ts)}
                continue
            old = holders.pop(cluster_id, None)  # re-inserted: holders stay in order of their latest
            if old is None:
                holders[cluster_id] = (ts, entry_id, ts)
            else:
                holders[cluster_id] = (ts, entry_id, old[2]) if (ts, entry_id) > old[:2] else old

    def merge(self, absorbed: Iterable[int], into: int) -> None:
        for a in absorbed:
            if a != into:
                self._alias[a] = into

    def resolve(self, cluster_id: int) -> int:
        while cluster_id in self._alias:
            cluster_id = self._alias[cluster_id]
        return cluster_id

    def find(self, keys: Iterable[str], ts: float) -> list[FollowUp]:
        """Clusters that share at least MIN_SHARED_KEYS specific name pairs, best first: the
        one that had most of them first, then most pairs, the most recent member, the lowest id."""
        if self.horizon <= 0:
            return []
        floor = ts - self.horizon
        resolve = self.resolve
        votes: dict[int, list[str]] = {}
        latest: dict[int, tuple[float, int]] = {}
        owned: dict[int, int] = {}  # cluster -> keys it had first among their holders
        for k in keys:
            holders = self._index.get(k)
            if not holders:
                continue
            # newest first, so that a common name costs MAX_KEY_CLUSTERS + 1 look-ups, however
            # many clusters hold it, and the first stale holder ends the scan
            live: dict[int, tuple[float, int, float]] = {}
            for cid in reversed(holders):
                mark = holders[cid]
                if mark[0] < floor:
                    break
                r = resolve(cid)
                if r not in live:
                    live[r] = mark
                    if len(live) > MAX_KEY_CLUSTERS:
                        break
                elif mark[2] < live[r][2]:  # merged clusters: the earliest first
                    live[r] = live[r][:2] + mark[2:]
            if not live or len(live) > MAX_KEY_CLUSTERS:
                continue
            owner = min(live, key=lambda r: (live[r][2], r))
            owned[owner] = owned.get(owner, 0) + 1
            for r, mark in live.items():
                votes.setdefault(r, []).append(k)
                if r not in latest or mark[:2] > latest[r]:
                    latest[r] = mark[:2]
        found = [FollowUp(cid, tuple(ks), latest[cid][1], latest[cid][0])
                 for cid, ks in votes.items() if len(ks) >= MIN_SHARED_KEYS]
        # a report naming several incidents (a trial of two shootings) joins the cluster its
        # names belong to: the one that had most of them first, then the one sharing most
        found.sort(key=lambda f: (-owned.get(f.cluster_id, 0), -len(f.keys), -f.ts, f.cluster_id))
        return found

    def _advance(self, ts: float) -> None:
        if ts <= self._now:
            return
        self._now = ts
        if ts - self._swept < SWEEP_SHARE * self.horizon:
            return
        self._swept = ts
        floor = ts - self.horizon
        index = self._index
        for k in [k for k, h in index.items() if next(iter(h.values()))[0] < floor]:  # oldest first
            holders = {c: m for c, m in index[k].items() if m[0] >= floor}
            if holders:
                index[k] = holders
            else:
                del index[k]
