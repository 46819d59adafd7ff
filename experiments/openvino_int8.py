"""Issue 16 probe: int8 variants of the default model's OpenVINO graph against its fp32 graph.

Not a product path. Builds, from the cached fp32 graph (run the OpenVINO runtime once
first), NNCF weight-only int8 and static int8 (calibrated on man-page training documents,
deterministic: the first N, no shuffling), with and without the SAE product left in fp32,
then times each side by side with the fp32 graph (rotating order, one process) and
compares the pruned vectors with fp32's.

    python experiments/openvino_int8.py --docs 32 --queries 60 --calibration 32
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import nncf
import numpy as np
import openvino

from splare_connect import SplareEncoder
from splare_connect.encoding.openvino_graph import GRAPH_FILE, CompiledEncoderGraph
from splare_connect.encoding.pooling import prune_to_vectors

SAE_PRODUCT = "aten::addmm/MatMul"  # the (tokens x 384) @ (384 x 16384) SAE encoder product


def texts_from(path: Path, count: int, *, field: str) -> list[str]:
    out = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            out.append(
                "\n".join(p for p in (record.get("title", ""), record[field]) if p)
                if field == "text"
                else record[field]
            )
            if len(out) == count:
                break
    return out


def cosine(a, b) -> float:  # type: ignore[no-untyped-def]
    norm = float(np.linalg.norm(a.values) * np.linalg.norm(b.values))
    return a.dot(b) / norm if norm else 0.0


def jaccard(a, b) -> float:  # type: ignore[no-untyped-def]
    x, y = set(a.indices.tolist()), set(b.indices.tolist())
    return len(x & y) / max(1, len(x | y))


def mean_over(measure, ours, theirs) -> float:  # type: ignore[no-untyped-def]
    return round(float(np.mean([measure(a, b) for a, b in zip(ours, theirs, strict=True)])), 4)


def compile_model(model: openvino.Model, threads: int) -> openvino.CompiledModel:
    return openvino.Core().compile_model(
        model, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": str(threads)}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=32)
    parser.add_argument("--queries", type=int, default=60)
    parser.add_argument("--calibration", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    encoder = SplareEncoder.from_pretrained(runtime="openvino", device="cpu")
    assert encoder._graph is not None
    location = encoder._graph.location
    threads = int(encoder._graph.compiled.get_property("INFERENCE_NUM_THREADS"))
    corpus = Path("data/manpages/corpus.jsonl")
    docs = texts_from(corpus, args.docs, field="text")
    calibration_docs = texts_from(corpus, args.docs + args.calibration, field="text")[args.docs :]
    queries = texts_from(Path("data/manpages/queries/en-dev.jsonl"), args.queries, field="text")

    def feeds(texts: list[str], role: str) -> list[list[np.ndarray]]:
        return [
            [b.input_ids.numpy(), b.attention_mask.numpy(), b.content_mask.numpy().astype(np.int64)]
            for b in encoder.iter_batches(texts, role=role, batch_size=args.batch_size)  # type: ignore[arg-type]
        ]

    model = openvino.Core().read_model(str(location / GRAPH_FILE))
    calibration = nncf.Dataset(feeds(calibration_docs, "document") + feeds(queries[:8], "query"))
    started = time.perf_counter()
    variants: dict[str, openvino.Model] = {"fp32": model}
    variants["w8"] = nncf.compress_weights(model.clone(), mode=nncf.CompressWeightsMode.INT8_ASYM)
    variants["s8"] = nncf.quantize(
        model.clone(), calibration, model_type=nncf.ModelType.TRANSFORMER, subset_size=args.calibration
    )
    variants["s8-sae-fp32"] = nncf.quantize(
        model.clone(),
        calibration,
        model_type=nncf.ModelType.TRANSFORMER,
        subset_size=args.calibration,
        ignored_scope=nncf.IgnoredScope(names=[SAE_PRODUCT]),
    )
    print(f"quantized in {time.perf_counter() - started:.0f} s")
    graphs = {
        name: CompiledEncoderGraph(compile_model(m, threads), has_dense=True, location=location)
        for name, m in variants.items()
    }

    doc_batches = list(encoder.iter_batches(docs, role="document", batch_size=args.batch_size))
    query_batches = [next(iter(encoder.iter_batches([q], role="query", batch_size=1))) for q in queries]
    names = list(graphs)
    doc_seconds: dict[str, list[float]] = {n: [] for n in names}
    query_ms: dict[str, list[float]] = {n: [] for n in names}
    outputs: dict[str, tuple] = {}
    for round_index in range(args.rounds):
        order = names[round_index % len(names) :] + names[: round_index % len(names)]
        for name in order:
            graph = graphs[name]
            start = time.perf_counter()
            pooled = [graph(b) for b in doc_batches]
            doc_seconds[name].append(time.perf_counter() - start)
            for b in query_batches:
                start = time.perf_counter()
                graph(b)
                query_ms[name].append((time.perf_counter() - start) * 1000)
            outputs[name] = (pooled, [graph(b) for b in query_batches])

    def vectors(name: str) -> tuple[list, list, np.ndarray]:
        pooled, query_pooled = outputs[name]
        doc_vectors = [v for p, _ in pooled for v in prune_to_vectors(p, 400)]
        query_vectors = [v for p, _ in query_pooled for v in prune_to_vectors(p, 40)]
        dense = np.concatenate([d.numpy() for _, d in pooled])
        return doc_vectors, query_vectors, dense

    reference = vectors("fp32")
    result: dict[str, object] = {"docs": args.docs, "queries": args.queries, "calibration": args.calibration}
    for name in names:
        docs_v, queries_v, dense = vectors(name)
        best = min(doc_seconds[name])
        row = {
            "docs_per_s": round(args.docs / best, 2),
            "docs_speedup": round(min(doc_seconds["fp32"]) / best, 2),
            "query_p50_ms": round(statistics.median(query_ms[name]), 1),
            "query_speedup": round(statistics.median(query_ms["fp32"]) / statistics.median(query_ms[name]), 2),
            "doc_cosine": round(float(np.mean([cosine(a, b) for a, b in zip(docs_v, reference[0], strict=True)])), 4),
            "doc_jaccard": round(float(np.mean([jaccard(a, b) for a, b in zip(docs_v, reference[0], strict=True)])), 4),
            "query_jaccard": round(
                float(np.mean([jaccard(a, b) for a, b in zip(queries_v, reference[1], strict=True)])), 4
            ),
            "dense_cosine": round(float(np.mean(np.sum(dense * reference[2], axis=1))), 4),
        }
        result[name] = row
        print(name, row)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
