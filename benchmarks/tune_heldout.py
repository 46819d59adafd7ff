"""Does ``tune`` choose settings that hold up on queries it did not see? (issue 36's measurement)

For a dev collection (``data/manpages`` or ``data/debdesc``, built by ``../shared/datasets``):

1. The corpus goes into a fresh embedded collection of the default backend, one point per
   document with its dense vector, from the evaluation's cache of the default model's
   encodings (``splare-connect eval`` fills it; encoded here when it is missing).
2. Every dev query set is split in two halves (seeded). ``tune`` chooses on the first
   halves, with the labelled queries; then the built-in defaults and the choice are
   measured on the second halves, per language.
3. ``tune`` chooses again with known-item queries made from the collection (no labels), and
   that choice is measured on the same held-out halves.

Only dev query sets are read; test splits are never touched.

    python benchmarks/tune_heldout.py data/debdesc --out /work/bench/tune-debdesc.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from report import cpu_flags

from splare_connect import SplareEncoder
from splare_connect.backends import CollectionSpec, PointRecord, load_backend
from splare_connect.backends.default import DEFAULT_BACKEND
from splare_connect.backends.discovery import describe_backend
from splare_connect.evaluation.corpus_cache import encode_corpus
from splare_connect.evaluation.dataset import load_beir
from splare_connect.retriever import Retriever
from splare_connect.search_settings import NO_FUSION, SearchSettings
from splare_connect.tuning.candidates import query_top_ks
from splare_connect.tuning.queries import QuerySet, held_out, known_item_queries
from splare_connect.tuning.run import measure, tune

CACHE = Path.home() / ".cache" / "splare-connect" / "eval"
WRITE_BATCH = 256


def load_collection(backend: Any, encoder: SplareEncoder, dataset: Any, name: str) -> None:
    corpus = encode_corpus(encoder, dataset.doc_ids, dataset.doc_texts, CACHE)
    print(f"corpus: {len(dataset.doc_ids)} documents ({'cached' if corpus.from_cache else 'encoded'})", flush=True)
    spec = CollectionSpec(name, sparse_dim=encoder.dim, fingerprint=encoder.fingerprint, dense_dim=encoder.dense_dim)
    backend.create_collection(spec)
    points = []
    for i, doc_id in enumerate(dataset.doc_ids):
        payload = {
            "doc_id": doc_id,
            "chunk_index": 0,
            "chunk_count": 1,
            "content_hash": "",
            "text": dataset.doc_texts[i],
            "metadata": {},
        }
        dense = None if corpus.dense is None else corpus.dense[i]
        points.append(PointRecord(f"{doc_id}#0", corpus.sparse[i], dense, payload))
        if len(points) == WRITE_BATCH:
            backend.upsert(name, points)
            points = []
    if points:
        backend.upsert(name, points)
    backend.finalize(name)


def per_language(measured: Any) -> dict[str, float]:
    return {name: round(scores["nDCG@10"], 4) for name, scores in measured.scores.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--known-items", type=int, default=200)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    dataset = load_beir(args.dataset)
    sets = [s for s in dataset.query_sets if s.name.endswith("-dev")]
    halves = [held_out(QuerySet(s.name, dict(s.queries), dict(s.qrels)), args.seed) for s in sets]
    choose_on, judge_on = [a for a, _ in halves], [b for _, b in halves]
    encoder = SplareEncoder.from_pretrained()
    capabilities = describe_backend(DEFAULT_BACKEND).capabilities
    with tempfile.TemporaryDirectory() as directory:
        backend = load_backend(DEFAULT_BACKEND, data_dir=Path(directory))
        try:
            load_collection(backend, encoder, dataset, "dev")
            retriever = Retriever(encoder, backend, "dev")

            def progress(done: int, total: int, label: str) -> None:
                print(f"  {done}/{total} {label}", flush=True)

            started = time.monotonic()
            labelled = tune(retriever, choose_on, capabilities, progress=progress)
            labelled_seconds = time.monotonic() - started
            known = known_item_queries(backend, "dev", count=args.known_items, seed=args.seed)
            unlabelled = tune(retriever, [known], capabilities, progress=progress)

            encoded_queries = {}
            texts = [(q, t) for s in judge_on for q, t in s.queries.items()]
            widest = max(query_top_ks(encoder.config.query_top_k or 40))
            result = encoder.encode([t for _, t in texts], role="query", dense=True, top_k=widest)
            for i, (query_id, _) in enumerate(texts):
                encoded_queries[query_id] = (result.sparse[i], result.dense[i] if result.dense is not None else None)
            default = SearchSettings(query_top_k=encoder.config.query_top_k, hybrid=NO_FUSION)  # the built-in defaults
            judged = measure(
                retriever,
                judge_on,
                [default, labelled.chosen.settings, unlabelled.chosen.settings],
                encoded_queries,
            )
        finally:
            backend.close()

    default_judged, labelled_judged, known_judged = judged
    summary = {
        "dataset": str(args.dataset),
        "documents": len(dataset.doc_ids),
        "cpu": cpu_flags(),
        "seed": args.seed,
        "choose_queries": {s.name: len(s.queries) for s in choose_on},
        "judge_queries": {s.name: len(s.queries) for s in judge_on},
        "labelled_choice": labelled.chosen.label(),
        "labelled_tune_seconds": round(labelled_seconds, 1),
        "labelled_candidates": [m.to_dict() for m in labelled.measured],
        "known_item_choice": unlabelled.chosen.label(),
        "known_item_candidates": [m.to_dict() for m in unlabelled.measured],
        "held_out": {
            "default": {"mean": round(default_judged.mean["nDCG@10"], 4), "per_set": per_language(default_judged)},
            "labelled": {"mean": round(labelled_judged.mean["nDCG@10"], 4), "per_set": per_language(labelled_judged)},
            "known_item": {"mean": round(known_judged.mean["nDCG@10"], 4), "per_set": per_language(known_judged)},
        },
    }
    worst = min(
        summary["held_out"]["labelled"]["per_set"][name] - summary["held_out"]["default"]["per_set"][name]
        for name in summary["held_out"]["default"]["per_set"]
    )
    summary["worst_set_change"] = round(worst, 4)
    print(json.dumps({k: v for k, v in summary.items() if not k.endswith("candidates")}, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
