"""Hybrid fusion weights, scored on a dev split the way `splare-connect eval` scores hybrid.

The eval's ``hybrid`` is equal-weight RRF (k=60) of the model's sparse and dense runs. Where
sparse is far stronger than dense (Chinese package descriptions), the fused ranking lands
between the two, and the "hybrid above both of its parts" goal of issue 15 fails. This
scores weighted RRF, ``sum w_i / (k + rank_i)``, for several sparse weights, and
distribution-based score fusion (the eval's ``hybrid-dbsf``), from the same runs (queries
encoded once, corpus from the eval cache), per query set: nDCG@10 of sparse, dense and each
fused variant, and how many query sets each variant lifts above both parts.

    python experiments/fusion/fusion_weights.py data/debdesc --model .bench/splare-v11-seed13 \
        --json .bench/fusion-debdesc-v11-seed13.json

An experiment, not a product setting: a weighting would have to be the product's hybrid
default in every engine before the eval could use it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import ir_measures

from splare_connect import SplareEncoder
from splare_connect.evaluation import load_beir
from splare_connect.evaluation.run import DEPTH, _EncodedCorpus
from splare_connect.evaluation.systems import Run, dbsf, strict_ranking
from splare_connect.models import cache_dir

SPARSE_WEIGHTS = (1.0, 1.25, 1.5, 2.0, 3.0)
NDCG = ir_measures.parse_measure("nDCG@10")


def weighted_rrf(sparse: Run, dense: Run, sparse_weight: float, k: int = 60) -> Run:
    fused: Run = {}
    for run, weight in ((sparse, sparse_weight), (dense, 1.0)):
        for query_id, scored in run.items():
            target = fused.setdefault(query_id, {})
            for rank, doc_id in enumerate(sorted(scored, key=lambda d: (-scored[d], d)), start=1):
                target[doc_id] = target.get(doc_id, 0.0) + weight / (k + rank)
    return {q: dict(sorted(s.items(), key=lambda kv: (-kv[1], kv[0]))[:DEPTH]) for q, s in fused.items()}


def ndcg(run: Run, qrels: list) -> float:
    ranked = strict_ranking(run)
    scored = [ir_measures.ScoredDoc(q, d, s) for q, docs in ranked.items() for d, s in docs.items()]
    return float(ir_measures.calc_aggregate([NDCG], qrels, scored).get(NDCG, 0.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--model", required=True)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    encoder = SplareEncoder.from_pretrained(args.model, device="cpu")
    data = load_beir(args.dataset, None)
    corpus = _EncodedCorpus(encoder, data, (), cache_dir() / "eval", 32)
    table: dict[str, dict[str, float]] = {}
    for query_set in data.query_sets:
        query_ids = list(query_set.queries)
        runs = corpus.runs([query_set.queries[q] for q in query_ids], query_ids, ("sparse", "dense"))
        qrels = [ir_measures.Qrel(q, d, rel) for q, docs in query_set.qrels.items() for d, rel in docs.items()]
        row = {"sparse": ndcg(runs["sparse"], qrels), "dense": ndcg(runs["dense"], qrels)}
        for weight in SPARSE_WEIGHTS:
            row[f"hybrid w={weight}"] = ndcg(weighted_rrf(runs["sparse"], runs["dense"], weight), qrels)
        row["hybrid dbsf"] = ndcg(dbsf([runs["sparse"], runs["dense"]], depth=DEPTH), qrels)
        table[query_set.name] = row
        print(query_set.name, " ".join(f"{name} {value:.3f}" for name, value in row.items()), flush=True)
    variants = [f"hybrid w={w}" for w in SPARSE_WEIGHTS] + ["hybrid dbsf"]
    wins = {name: sum(r[name] > max(r["sparse"], r["dense"]) for r in table.values()) for name in variants}
    print(f"query sets: {len(table)}; hybrid above both parts: {wins}")
    if args.json:
        args.json.write_text(json.dumps({"model": args.model, "table": table, "wins": wins}, indent=2) + "\n")


if __name__ == "__main__":
    main()
