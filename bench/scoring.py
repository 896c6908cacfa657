"""Pairwise and BCubed precision/recall/F1 of a clustering against gold labels, for the benches.

`score(gold, pred)` takes article id -> label maps over the same ids and returns the figures
cluster.py and cluster_dev.py print: pair_p/r/f1 (over pairs of articles put together),
bcubed_p/r/f1 (averaged over articles), bcubed_multi_p/r/f1 (the same over articles whose
gold event has two or more articles: singletons flatter BCubed), and the cluster counts.
"""
from __future__ import annotations

from collections import Counter, defaultdict


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def score(gold: dict[str, str], pred: dict[str, str]) -> dict:
    ids = list(pred)
    gold_sets: dict[str, set[str]] = defaultdict(set)
    pred_sets: dict[str, set[str]] = defaultdict(set)
    for i in ids:
        gold_sets[gold[i]].add(i)
        pred_sets[pred[i]].add(i)

    def bcubed(over: list[str]) -> tuple[float, float]:
        p = r = 0.0
        for i in over:
            g, c = gold_sets[gold[i]], pred_sets[pred[i]]
            both = len(g & c)
            p += both / len(c)
            r += both / len(g)
        n = len(over) or 1
        return p / n, r / n

    bp, br = bcubed(ids)
    mp, mr = bcubed([i for i in ids if len(gold_sets[gold[i]]) > 1])
    together = sum(_pairs(n) for n in Counter((gold[i], pred[i]) for i in ids).values())
    pred_pairs = sum(_pairs(len(s)) for s in pred_sets.values())
    gold_pairs = sum(_pairs(len(s)) for s in gold_sets.values())
    pp = together / pred_pairs if pred_pairs else 1.0
    pr = together / gold_pairs if gold_pairs else 1.0
    return {"articles": len(ids), "gold_clusters": len(gold_sets), "pred_clusters": len(pred_sets),
            "bcubed_p": bp, "bcubed_r": br, "bcubed_f1": _f1(bp, br),
            "bcubed_multi_p": mp, "bcubed_multi_r": mr, "bcubed_multi_f1": _f1(mp, mr),
            "pair_p": pp, "pair_r": pr, "pair_f1": _f1(pp, pr)}
