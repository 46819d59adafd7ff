"""What searching fp32 documents with int8 queries would cost (why precisions are not mixed).

Documents are the fp32 default model's vectors of the whole corpus (the evaluation's cache);
each dev query set is encoded at fp32 and at int8 and scored exactly against them, with
ir-measures. Compare the int8 row with the all-int8 evaluation in BENCHMARKS.md.

    python benchmarks/mixed_precision.py --dataset data/manpages

Not a test: no figure is asserted.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import ir_measures

from splare_connect import SplareEncoder
from splare_connect.evaluation import load_beir
from splare_connect.evaluation.corpus_cache import encode_corpus
from splare_connect.evaluation.systems import sparse_matrix, sparse_run
from splare_connect.models import cache_dir

MEASURES = [ir_measures.nDCG @ 10, ir_measures.RR @ 10]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=Path("data/manpages"))
    args = parser.parse_args()

    dataset = load_beir(args.dataset)
    encoders = {
        "fp32": SplareEncoder.from_pretrained(device="cpu"),
        "int8": SplareEncoder.from_pretrained(device="cpu", precision="int8"),
    }
    fp32 = encoders["fp32"]
    corpus = encode_corpus(fp32, dataset.doc_ids, dataset.doc_texts, cache_dir() / "eval")
    documents = sparse_matrix(corpus.sparse, fp32.dim)
    print("query set | fp32 queries nDCG@10 / MRR@10 | int8 queries nDCG@10 / MRR@10")
    for query_set in dataset.query_sets:
        ids = list(query_set.queries)
        texts = [query_set.queries[i] for i in ids]
        qrels = [ir_measures.Qrel(q, d, r) for q, docs in query_set.qrels.items() for d, r in docs.items()]
        cells = []
        for encoder in encoders.values():
            run = sparse_run(documents, encoder.encode_queries(texts), ids, dataset.doc_ids, fp32.dim, 100)
            scores = ir_measures.calc_aggregate(MEASURES, qrels, run)
            cells.append(" / ".join(f"{scores[m]:.3f}" for m in MEASURES))
        print(f"{query_set.name} | {cells[0]} | {cells[1]}", flush=True)


if __name__ == "__main__":
    main()
