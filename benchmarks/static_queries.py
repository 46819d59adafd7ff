"""Static (inference-free) queries against the full query encoder, per query set.

Documents are encoded once by the full encoder (the evaluation's corpus cache); queries
are encoded by the full encoder and by each static table given, and scored against the
same document vectors by :func:`splare_connect.evaluation.evaluate`. Query latency is
the median over single-query calls.

    python benchmarks/static_queries.py data/manpages --docs 1500 --en-queries 400 \
        --table untrained=PATH --table distilled=PATH --json .bench/static_manpages.json

Not a test: no figure is asserted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from splare_connect.encoding.static_queries import StaticQueryEncoder
from splare_connect.evaluation import BeirDataset, QuerySet, evaluate, load_beir


def dev_slice(dataset: BeirDataset, docs: int | None, en_queries: int | None, per_set: int | None) -> BeirDataset:
    """The dev query sets (English capped at ``en_queries``, the others at ``per_set``, picked
    by a hash of the query id) over every document they judge plus distractors (by a hash
    of the document id) up to ``docs`` documents; ``None`` keeps everything."""

    def hashed(key: str) -> str:
        return hashlib.sha1(key.encode()).hexdigest()

    sets = []
    for query_set in dataset.query_sets:
        if not query_set.name.endswith("-dev"):
            continue
        cap = en_queries if query_set.name.startswith("en-") else per_set
        ids = sorted(query_set.queries, key=hashed)[:cap] if cap else list(query_set.queries)
        sets.append(
            QuerySet(
                query_set.name,
                {q: query_set.queries[q] for q in ids},
                {q: query_set.qrels[q] for q in ids if q in query_set.qrels},
            )
        )
    if docs is None:
        return replace(dataset, query_sets=sets)
    judged = {d for s in sets for rel in s.qrels.values() for d in rel}
    position = {d: i for i, d in enumerate(dataset.doc_ids)}
    keep = set(judged)
    for doc_id in sorted(dataset.doc_ids, key=hashed):
        if len(keep) >= docs:
            break
        keep.add(doc_id)
    order = sorted(keep, key=position.__getitem__)
    return BeirDataset(dataset.path, order, [dataset.doc_texts[position[d]] for d in order], sets)


class StaticSide:
    """The full encoder for documents, a static table for queries: what evaluate() runs."""

    def __init__(self, full: Any, table: StaticQueryEncoder, name: str) -> None:
        self.full, self.table = full, table
        self.config = replace(full.config, name=name)
        self.fingerprint = table.fingerprint  # digest = the document encoder's: same corpus cache
        self.runtime = full.runtime
        self.dim = full.dim
        self.has_dense = False

    def encode(self, texts, *, role="document", dense=False, batch_size=32, show_progress=None):  # type: ignore[no-untyped-def]
        from splare_connect.encoding.encoder import EncodeResult

        if role == "document":
            result = self.full.encode(
                texts, role="document", dense=False, batch_size=batch_size, show_progress=show_progress
            )
            return replace(result, dense=None)
        sparse = self.table.encode_queries(texts)
        zeros = np.zeros(len(sparse), np.int64)
        return EncodeResult(sparse, None, zeros, zeros.astype(bool))


def p50_ms(encode_one, texts: list[str]) -> float:  # type: ignore[no-untyped-def]
    for text in texts[:5]:
        encode_one(text)
    times = []
    for text in texts:
        start = time.perf_counter()
        encode_one(text)
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--docs", type=int, default=None, help="documents in the slice (default: all)")
    parser.add_argument("--en-queries", type=int, default=None)
    parser.add_argument("--per-set", type=int, default=None)
    parser.add_argument("--table", action="append", default=[], help="NAME=DIRECTORY of a static table")
    parser.add_argument("--runtime", default="openvino")
    parser.add_argument("--latency-queries", type=int, default=200)
    parser.add_argument("--corpus-only", action="store_true", help="only encode (cache) the slice's documents")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(2)
    from splare_connect import SplareEncoder
    from splare_connect.models import cache_dir

    dataset = dev_slice(load_beir(args.dataset), args.docs, args.en_queries, args.per_set)
    print(
        f"slice: {len(dataset.doc_ids)} documents; "
        + ", ".join(f"{s.name} {len(s.queries)}" for s in dataset.query_sets),
        flush=True,
    )
    full = SplareEncoder.from_pretrained(runtime=args.runtime)
    cache = cache_dir() / "eval"
    if args.corpus_only:
        from splare_connect.evaluation.corpus_cache import encode_corpus

        encoded = encode_corpus(full, dataset.doc_ids, dataset.doc_texts, cache)
        print(f"corpus: {encoded.seconds:.0f} s, from cache: {encoded.from_cache}")
        return
    report: dict[str, Any] = {
        "slice": {"documents": len(dataset.doc_ids), **{s.name: len(s.queries) for s in dataset.query_sets}}
    }
    systems: dict[str, Any] = {"full": full}
    for spec in args.table:
        name, _, location = spec.partition("=")
        systems[name] = StaticSide(full, StaticQueryEncoder.load(location), name)
    sample = [t for s in dataset.query_sets for t in sorted(s.queries.values())][::7][: args.latency_queries]
    for name, system in systems.items():
        result = evaluate(system, dataset, systems=("sparse",), doc_pruning=(), cache_dir=cache)
        if name == "full":
            latency = {args.runtime: p50_ms(system.encode_query, sample)}
            torch_full = SplareEncoder.from_pretrained(runtime="torch")
            latency["torch"] = p50_ms(torch_full.encode_query, sample)
            del torch_full
        else:
            latency = {"static": p50_ms(system.table.encode_query, sample)}
        report[name] = {"scores": {s: v["sparse"] for s, v in result.scores.items()}, "query_p50_ms": latency}
        print(name, json.dumps(report[name]), flush=True)
    rows = []
    for set_name in report["full"]["scores"]:
        metric = "nDCG@10" if set_name.startswith("en-") else "RR@10"
        base = report["full"]["scores"][set_name][metric]
        cells = [
            f"{report[n]['scores'][set_name][metric]:.3f} ({report[n]['scores'][set_name][metric] / base:.2f}x)"
            for n in systems
            if n != "full"
        ]
        rows.append(f"| {set_name} | {metric} | {base:.3f} | " + " | ".join(cells) + " |")
    print(f"| set | metric | full | {' | '.join(n for n in systems if n != 'full')} |")
    print("\n".join(rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
