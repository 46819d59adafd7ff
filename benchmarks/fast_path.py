"""Every encoding path against torch fp32: documents/s, ms per query, vector agreement, cold start.

Encoders of the same model are loaded side by side: torch fp32 (the reference), the
library's default (``runtime`` and ``precision`` "auto": the compiled graph, at bf16
where the CPU has it), the OpenVINO graph at fp32 and at bf16, and torch int8 (dynamic
int8 matrix products). ``--static-queries FILE`` adds the inference-free query encoder
(queries only). Each document batch and each query is encoded by all of them, back to
back, the order rotating every round, so that a noisy neighbour slows all alike; the
headlines are ratios to torch fp32 within this one run. The CPU's model and flags are
recorded with the figures: bf16 is fast only where the CPU has ``avx512_bf16`` or AMX.

Vector agreement is measured on the same texts: the share of fp32's top-10 features
that the other keeps, and the cosine of the two weight vectors. Retrieval quality is
measured by the evaluation (``splare-connect eval --precision int8`` or ``--runtime
openvino``), see BENCHMARKS.md. ``--cold-start`` also times, in fresh processes and twice
each (the second finds every cache warm): ``from_pretrained``, a CLI search, and an
unchanged re-ingest of the collection it searches, with each process's peak RSS.

    python benchmarks/fast_path.py --docs 192 --queries 300 --cold-start --json .bench/fast_path.json

Not a test: no figure is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from report import CONTENDERS, cpu_flags, percentile, print_and_save

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
    """Seconds ``SplareEncoder.from_pretrained`` takes in a fresh Python process, imports included."""
    code = (
        "import time; start = time.perf_counter(); from splare_connect import SplareEncoder; "
        f"SplareEncoder.from_pretrained({model!r}, device='cpu', **{options!r}); "
        "print(time.perf_counter() - start)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def timed_command(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of a command in a fresh process."""
    wrapped = ["/usr/bin/time", "-f", "%M", *command] if Path("/usr/bin/time").exists() else command
    start = time.perf_counter()
    done = subprocess.run(wrapped, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    rss = float(done.stderr.strip().splitlines()[-1]) / 1024 if wrapped is not command else float("nan")
    return seconds, rss


def options_of(model: str | None, options: dict[str, str]) -> list[str]:
    command = [] if model is None else ["--model", model]
    for key, value in options.items():
        command += [f"--{key.replace('_', '-')}", value]
    return command


def cold_start(args: argparse.Namespace, result: dict[str, object]) -> None:
    """Load times, CLI searches and unchanged re-ingests of ``--cold-start-source`` in fresh processes, twice each."""
    for name in args.contenders:
        for attempt in (1, 2):
            result[f"{name}_load_seconds_{attempt}"] = cold_load_seconds(args.model, CONTENDERS[name])
    with tempfile.TemporaryDirectory() as scratch:
        source = args.cold_start_source
        pages = sum(1 for _ in source.open(encoding="utf-8"))
        ingest = [CLI, "ingest", str(source), "--data-dir", str(Path(scratch, "data")), *options_of(args.model, {})]
        subprocess.run(ingest, check=True, capture_output=True)
        for attempt in (1, 2):
            seconds, rss = timed_command(ingest)
            result[f"unchanged_reingest_{pages}_pages_seconds_{attempt}"] = seconds
            result[f"unchanged_reingest_peak_rss_mb_{attempt}"] = rss
        search = [CLI, "search", "copy files", "--data-dir", str(Path(scratch, "data")), "--json"]
        for name in args.contenders:
            if CONTENDERS[name].get("precision") == "int8":
                continue  # int8 has a vector space of its own: it can't search this collection
            for attempt in (1, 2):
                seconds, rss = timed_command([*search, *options_of(args.model, CONTENDERS[name])])
                result[f"{name}_cli_search_seconds_{attempt}"] = seconds
                result[f"{name}_cli_search_peak_rss_mb_{attempt}"] = rss


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
    parser.add_argument(
        "--static-queries", type=Path, default=None, help="a static query table: adds the 'static-queries' contender"
    )
    parser.add_argument("--cold-start", action="store_true", help="also time loading in fresh processes")
    parser.add_argument(
        "--cold-start-source",
        type=Path,
        default=Path("examples/manpages.jsonl"),
        help="what the cold-start runs ingest and search (default: the 307 example pages)",
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.static_queries is not None:  # the default path with the inference-free query side
        CONTENDERS["static-queries"] = {"static_queries": str(args.static_queries)}
        args.contenders.append("static-queries")

    encoders = {
        name: SplareEncoder.from_pretrained(args.model, device="cpu", **CONTENDERS[name]) for name in args.contenders
    }
    reference = args.contenders[0]
    docs = load_documents(args.corpus, args.docs)
    with args.queries_file.open(encoding="utf-8") as lines:
        queries = [json.loads(line)["text"] for line, _ in zip(lines, range(args.queries), strict=False)]
    for name, encoder in encoders.items():  # warm-up
        if name != "static-queries":
            encoder.encode_documents(docs[: args.batch_size], batch_size=args.batch_size)
        encoder.encode_queries(queries[:8])

    doc_seconds = dict.fromkeys(encoders, 0.0)
    doc_vectors: dict[str, list[SparseVector]] = {name: [] for name in encoders}
    batches = [docs[i : i + args.batch_size] for i in range(0, len(docs), args.batch_size)]
    document_encoders = [name for name in encoders if name != "static-queries"]  # its documents are the default's
    doc_seconds = {name: doc_seconds[name] for name in document_encoders}
    for index, batch in enumerate(batches):
        for name in rotated(document_encoders, index):
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

    for name in encoders:  # what each actually ran (OpenVINO may compile bf16 at f32 where the CPU lacks it)
        print(f"{name}: runtime {encoders[name].runtime}, precision {encoders[name].precision}", file=sys.stderr)
    result: dict[str, object] = {
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPUs",
        "cpu": cpu_flags(),
        "date": time.strftime("%Y-%m-%d"),
        "model": encoders[reference].config.name,
        "documents": len(docs),
        "queries": len(queries),
        "batch_size": args.batch_size,
        **{f"{name}_ran_at": f"{encoder.runtime} {encoder.precision}" for name, encoder in encoders.items()},
    }
    for name in encoders:
        if name in doc_seconds:
            result[f"{name}_documents_per_second"] = len(docs) / doc_seconds[name]
        result[f"{name}_query_ms_p50"] = statistics.median(query_ms[name])
        result[f"{name}_query_ms_p99"] = percentile(query_ms[name], 0.99)
    for name in list(encoders)[1:]:
        if name in doc_seconds:
            result[f"{name}_documents_speedup"] = doc_seconds[reference] / doc_seconds[name]
        result[f"{name}_queries_speedup"] = sum(query_ms[reference]) / sum(query_ms[name])
        for kind, vectors in (("document", doc_vectors), ("query", query_vectors)):
            if not vectors[name]:
                continue
            for measure, value in agreement(vectors[reference], vectors[name]).items():
                result[f"{name}_{kind}_{measure}"] = value
    if args.cold_start:
        del encoders, doc_vectors, query_vectors  # the fresh processes get the memory
        cold_start(args, result)
    print_and_save(result, args.json)


if __name__ == "__main__":
    main()
