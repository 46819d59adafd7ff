"""The fast CPU paths against torch fp32: documents/s, ms per query, vector agreement, cold start.

Encoders of the same model are loaded side by side: torch fp32 (the reference), torch
int8 (dynamic int8 matrix products, ``precision="int8"``) and the OpenVINO graph at fp32
(``runtime="openvino"``). Each of the encoder's document batches and each query is
encoded by all of them, back to back, the order rotating every round, so that a noisy
neighbour slows all alike; the headlines are ratios to torch fp32 within this one run.

Vector agreement is measured on the same texts: the share of fp32's top-10 features
that the other keeps, and the cosine of the two weight vectors. Retrieval quality is
measured by the evaluation (``splare-connect eval --precision int8`` or ``--runtime
openvino``), see BENCHMARKS.md. ``--cold-start`` also times ``from_pretrained`` and a CLI
search in fresh processes, twice each (the second finds every cache warm).

    python benchmarks/fast_path.py --docs 192 --queries 300 --cold-start --json .bench/fast_path.json

Not a test: no figure is asserted.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from report import CONTENDERS, percentile, print_and_save

from splare_connect import SparseVector, SplareEncoder

# The CLI of the running interpreter's environment, found without PATH (a venv's python can
# be run without activating the venv).
CLI = str(Path(sys.executable).with_name("splare-connect"))


def load_documents(corpus: Path, count: int) -> list[str]:
    """The first ``count`` corpus documents (title + text), as the evaluation reads them."""
    texts = []
    with corpus.open(encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            texts.append("\n".join(part for part in (record.get("title", ""), record["text"]) if part))
            if len(texts) == count:
                break
    return texts


def agreement(reference: list[SparseVector], other: list[SparseVector]) -> dict[str, float]:
    """Mean top-10 feature overlap and cosine between two encodings of the same texts."""
    overlaps, cosines = [], []
    for a, b in zip(reference, other, strict=True):
        top_a = set(a.top_k(10).indices.tolist())
        top_b = set(b.top_k(10).indices.tolist())
        overlaps.append(len(top_a & top_b) / max(1, len(top_a)))
        norm = float(np.linalg.norm(a.values) * np.linalg.norm(b.values))
        cosines.append(a.dot(b) / norm if norm else 0.0)
    return {"top10_overlap": float(np.mean(overlaps)), "cosine": float(np.mean(cosines))}


def rotated(names: list[str], index: int) -> list[str]:
    """``names`` starting at ``index`` (mod len): each contender goes first in turn."""
    shift = index % len(names)
    return names[shift:] + names[:shift]


def cold_load_seconds(model: str | None, options: dict[str, str]) -> float:
    """Seconds ``SplareEncoder.from_pretrained`` takes in a fresh Python process (imports excluded)."""
    code = (
        "import time, torch; from splare_connect import SplareEncoder; start = time.perf_counter(); "
        f"SplareEncoder.from_pretrained({model!r}, device='cpu', **{options!r}); "
        "print(time.perf_counter() - start)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def cold_search_seconds(data_dir: Path, model: str | None, options: dict[str, str]) -> float:
    """Wall seconds of ``splare-connect search`` in a fresh process: start, imports, load, search."""
    command = [CLI, "search", "copy files", "--data-dir", str(data_dir), "--json"]
    command += [] if model is None else ["--model", model]
    for key, value in options.items():
        command += [f"--{key}", value]
    start = time.perf_counter()
    subprocess.run(command, capture_output=True, text=True, check=True)
    return time.perf_counter() - start


def cold_start(args: argparse.Namespace, docs: list[str], result: dict[str, object]) -> None:
    """Load times in fresh processes, and a CLI search on a small Edge collection, twice each."""
    for name in args.contenders:
        for attempt in (1, 2):
            result[f"{name}_load_seconds_{attempt}"] = cold_load_seconds(args.model, CONTENDERS[name])
    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch, "pages.jsonl")
        source.write_text("".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(docs[:50])))
        ingest = [CLI, "ingest", str(source), "--data-dir", str(Path(scratch, "data"))]
        ingest += [] if args.model is None else ["--model", args.model]
        subprocess.run(ingest, check=True, capture_output=True)
        for name in args.contenders:
            if "precision" in CONTENDERS[name]:
                continue  # another precision has another fingerprint: it can't search this collection
            for attempt in (1, 2):
                seconds = cold_search_seconds(Path(scratch, "data"), args.model, CONTENDERS[name])
                result[f"{name}_cli_search_seconds_{attempt}"] = seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=Path("data/manpages/corpus.jsonl"))
    parser.add_argument("--queries-file", type=Path, default=Path("data/manpages/queries/en-dev.jsonl"))
    parser.add_argument("--model", default=None, help="model name or directory (default model if omitted)")
    parser.add_argument("--docs", type=int, default=192)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--contenders",
        type=lambda text: text.split(","),
        default=list(CONTENDERS),
        help=f"comma-separated, the first is the reference (default: {','.join(CONTENDERS)})",
    )
    parser.add_argument("--cold-start", action="store_true", help="also time loading in fresh processes")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    encoders = {
        name: SplareEncoder.from_pretrained(args.model, device="cpu", **CONTENDERS[name]) for name in args.contenders
    }
    reference = args.contenders[0]
    docs = load_documents(args.corpus, args.docs)
    with args.queries_file.open(encoding="utf-8") as lines:
        queries = [json.loads(line)["text"] for line, _ in zip(lines, range(args.queries), strict=False)]
    for encoder in encoders.values():  # warm-up
        encoder.encode_documents(docs[: args.batch_size], batch_size=args.batch_size)
        encoder.encode_queries(queries[:8])

    doc_seconds = dict.fromkeys(encoders, 0.0)
    doc_vectors: dict[str, list[SparseVector]] = {name: [] for name in encoders}
    batches = [docs[i : i + args.batch_size] for i in range(0, len(docs), args.batch_size)]
    for index, batch in enumerate(batches):
        for name in rotated(list(encoders), index):
            start = time.perf_counter()
            doc_vectors[name].extend(encoders[name].encode_documents(batch, batch_size=args.batch_size))
            doc_seconds[name] += time.perf_counter() - start

    query_ms: dict[str, list[float]] = {name: [] for name in encoders}
    query_vectors: dict[str, list[SparseVector]] = {name: [] for name in encoders}
    for index, query in enumerate(queries):
        for name in rotated(list(encoders), index):
            start = time.perf_counter()
            query_vectors[name].append(encoders[name].encode_query(query))
            query_ms[name].append((time.perf_counter() - start) * 1000)

    result: dict[str, object] = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
        "date": time.strftime("%Y-%m-%d"),
        "model": encoders[reference].config.name,
        "documents": len(docs),
        "queries": len(queries),
        "batch_size": args.batch_size,
    }
    for name in encoders:
        result[f"{name}_documents_per_second"] = len(docs) / doc_seconds[name]
        result[f"{name}_query_ms_p50"] = statistics.median(query_ms[name])
        result[f"{name}_query_ms_p99"] = percentile(query_ms[name], 0.99)
    for name in list(encoders)[1:]:
        result[f"{name}_documents_speedup"] = doc_seconds[reference] / doc_seconds[name]
        result[f"{name}_queries_speedup"] = sum(query_ms[reference]) / sum(query_ms[name])
        for kind, vectors in (("document", doc_vectors), ("query", query_vectors)):
            for measure, value in agreement(vectors[reference], vectors[name]).items():
                result[f"{name}_{kind}_{measure}"] = value
    if args.cold_start:
        del encoders, doc_vectors, query_vectors  # the fresh processes get the memory
        cold_start(args, docs, result)
    print_and_save(result, args.json)


if __name__ == "__main__":
    main()
