"""Documents written at one arithmetic, queried at another: what mixing precisions costs.

A collection stays searchable from any CPU: documents encoded at bf16 on one machine are
queried at fp32 on another, or the reverse (the fingerprint guard allows it: same weights,
other arithmetic). For each pair of document and query precisions, every dev query set is
scored exactly against the whole corpus, sparse (nDCG@10, MRR@10) and dense (nDCG@10, MRR@10),
with ir-measures. Document vectors come from the evaluation's cache (``splare-connect eval
--runtime openvino --precision P`` fills it), or are encoded now.

    python benchmarks/mixed_precision.py --dataset data/manpages --precisions fp32,bf16

Add ``int8`` (torch) to see why int8 keeps a space of its own. Not a test: no figure is asserted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import ir_measures
import numpy as np
from report import CONTENDERS, cpu_flags

from splare_connect import SplareEncoder
from splare_connect.evaluation import load_beir
from splare_connect.evaluation.corpus_cache import encode_corpus
from splare_connect.evaluation.systems import dense_run, sparse_matrix, sparse_run
from splare_connect.models import cache_dir

MEASURES = [ir_measures.nDCG @ 10, ir_measures.RR @ 10]
NAMES = {"fp32": "openvino-fp32", "bf16": "openvino-bf16", "int8": "torch-int8"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=Path("data/manpages"))
    parser.add_argument("--model", default=None)
    parser.add_argument("--precisions", type=lambda text: text.split(","), default=["fp32", "bf16"])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    dataset = load_beir(args.dataset)
    encoders = {
        p: SplareEncoder.from_pretrained(args.model, device="cpu", **CONTENDERS[NAMES[p]]) for p in args.precisions
    }
    for name, encoder in encoders.items():
        print(f"{name}: runtime {encoder.runtime}, precision {encoder.precision}", file=sys.stderr)
    corpora = {
        p: encode_corpus(e, dataset.doc_ids, dataset.doc_texts, cache_dir() / "eval") for p, e in encoders.items()
    }
    dim = next(iter(encoders.values())).dim
    documents = {p: sparse_matrix(corpus.sparse, dim) for p, corpus in corpora.items()}
    results: dict[str, dict[str, float]] = {}
    print(f"CPU: {cpu_flags()}")
    print("query set | documents | queries | sparse nDCG@10 | sparse MRR@10 | dense nDCG@10 | dense MRR@10")
    for query_set in dataset.query_sets:
        ids = list(query_set.queries)
        texts = [query_set.queries[i] for i in ids]
        qrels = [ir_measures.Qrel(q, d, r) for q, docs in query_set.qrels.items() for d, r in docs.items()]
        queries = {p: e.encode(texts, role="query", dense=e.has_dense) for p, e in encoders.items()}
        for doc_precision, corpus in corpora.items():
            for query_precision, encoded in queries.items():
                sparse = sparse_run(documents[doc_precision], encoded.sparse, ids, dataset.doc_ids, dim, 100)
                cells = ir_measures.calc_aggregate(MEASURES, qrels, sparse)
                row = {f"sparse {m}": float(cells[m]) for m in MEASURES}
                if encoded.dense is not None and corpus.dense is not None:
                    dense = dense_run(np.asarray(corpus.dense), encoded.dense, ids, dataset.doc_ids, 100)
                    dense_cells = ir_measures.calc_aggregate(MEASURES, qrels, dense)
                    row.update({f"dense {m}": float(dense_cells[m]) for m in MEASURES})
                results[f"{query_set.name} {doc_precision} {query_precision}"] = row
                print(
                    f"{query_set.name} | {doc_precision} | {query_precision} | "
                    + " | ".join(f"{value:.4f}" for value in row.values()),
                    flush=True,
                )
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu_flags(), "results": results}, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
