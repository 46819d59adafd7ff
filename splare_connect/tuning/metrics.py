"""nDCG@10, MRR@10 and Recall@100 of one ranked list, as trec_eval defines them.

Kept here (a few lines of arithmetic) rather than through ir-measures, so ``tune`` needs
no evaluation extra; the definitions are the usual ones: graded gain ``rel`` discounted by
``log2(rank + 1)``, the reciprocal rank of the first relevant document in the top 10, and
the share of the relevant documents found in the top 100.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

METRICS = ("nDCG@10", "MRR@10", "R@100")


def score_ranking(ranked: Sequence[str], relevant: Mapping[str, int]) -> dict[str, float]:
    """The three metrics of ``ranked`` (document ids, best first) against graded judgements."""
    gains = [relevant.get(doc, 0) for doc in ranked]
    dcg = sum(gain / math.log2(rank + 2) for rank, gain in enumerate(gains[:10]) if gain > 0)
    ideal = sorted((g for g in relevant.values() if g > 0), reverse=True)[:10]
    idcg = sum(gain / math.log2(rank + 2) for rank, gain in enumerate(ideal))
    first = next((rank for rank, gain in enumerate(gains[:10]) if gain > 0), None)
    wanted = {doc for doc, gain in relevant.items() if gain > 0}
    found = len(wanted & set(ranked[:100]))
    return {
        "nDCG@10": dcg / idcg if idcg else 0.0,
        "MRR@10": 0.0 if first is None else 1.0 / (first + 1),
        "R@100": found / len(wanted) if wanted else 0.0,
    }


def mean_scores(per_query: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """The mean of each metric over queries (0 for none)."""
    return {name: (sum(q[name] for q in per_query) / len(per_query) if per_query else 0.0) for name in METRICS}
