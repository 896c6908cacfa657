"""Replaying a stream through the clusterer as monitor does, for the clustering tests:
decisions as the store keeps them, and a clusterer rebuilt from the store after a restart.
"""
from __future__ import annotations

from datetime import datetime

from monitor.events.clusterer import Assignment, ClusterConfig, Clusterer
from monitor.types import ClusterDoc


def stored_clusters(decisions: list[Assignment]) -> dict[int, int]:
    """Each entry's cluster as the store keeps it: merges rewrite absorbed ids as they happen."""
    into: dict[int, int] = {}
    for a in decisions:
        for absorbed in a.merged:
            into[absorbed] = a.cluster_id

    def final(cid: int) -> int:
        while cid in into:
            cid = into[cid]
        return cid

    return {a.entry_id: final(a.cluster_id) for a in decisions}


def make_clusterer(config: ClusterConfig | None = None, sample: int | None = None,
                   next_cluster_id: int = 1) -> Clusterer:
    """A clusterer; `sample` makes its word statistics keep fewer entries past the window than
    they do by default, so that a small stream can show what happens when entries leave."""
    cl = Clusterer(config, next_cluster_id=next_cluster_id)
    if sample is not None:
        cl.weigher.min_entries = sample
    return cl


def restarted(done: list[ClusterDoc], decisions: list[Assignment], first: datetime,
              config: ClusterConfig | None = None, sample: int | None = None,
              recall: bool = True) -> Clusterer:
    """A clusterer rebuilt from the store as monitor rebuilds it after a restart, before the
    entry published at `first` (see storage.clusters.warm_start and recall_follow_ups).

    The entries of the last `warm_span`, or of the last `warm_entries` entries when those reach
    further back (all of them when the store holds fewer), are weighed again and kept with their
    stored clusters; older members within `follow_up_window` give back only their name pairs,
    under the ids their clusters have now. `recall=False` leaves those out.
    """
    stored = stored_clusters(decisions)
    keys = {a.entry_id: a.name_keys for a in decisions}
    # the store's next id: past every cluster it ever held, absorbed ones included
    cl = make_clusterer(config, sample, next_cluster_id=max((a.cluster_id for a in decisions), default=0) + 1)
    before = [d for d in done if d.published < first]
    start: datetime | None = first - cl.warm_span
    if len(before) >= cl.warm_entries:
        start = min(start, before[-cl.warm_entries].published)
    else:
        start = None  # fewer stored entries than the statistics need: all of them
    for d in before:
        if start is None or d.published >= start:
            cl.keep(cl.weigher.weigh(d), stored[d.entry_id])
        elif recall and keys[d.entry_id] and d.published >= start - cl.config.follow_up_window:
            cl.recall(d.entry_id, stored[d.entry_id], d.published.timestamp(), keys[d.entry_id])
    return cl
