"""Ingest throughput: the local sync against Ray with 1 and 2 encoder actors, same corpus, one run.

Each contender ingests the same man pages into a fresh embedded (Edge) collection with
the same write batches; the order rotates every round. Figures per contender: wall
time and documents/s for the whole run (Ray's actor start-up included: each actor loads
the model), and each worker's documents/s while busy. On a 2-core machine Ray cannot
add compute; this shows what the pool costs and that the work is spread. The plan for a
real cluster is in docs/distributed.md.

    python benchmarks/ray_ingest.py --docs 96 --rounds 1 --json .bench/ray_ingest.json

Not a test: no figure is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import ray
import torch
from report import print_and_save

from splare_connect import SplareEncoder
from splare_connect.backends import load_backend
from splare_connect.distributed.ray_ingest import EncoderRecipe, RayCluster, RayIngest
from splare_connect.documents import read_source
from splare_connect.sync import Syncer

CORPUS = Path(__file__).resolve().parent.parent / "examples" / "manpages.jsonl"
CONTENDERS = {  # name -> None for the local sync, or (actors, CPUs per actor)
    "local": None,
    "ray-1x2cpu": (1, 2.0),
    "ray-2x1cpu": (2, 1.0),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model name or directory (default model if omitted)")
    parser.add_argument("--docs", type=int, default=96, help="man pages from examples/manpages.jsonl")
    parser.add_argument("--documents-per-write", type=int, default=8, help="documents per write batch")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ray-ingest-"))
    source = work / "corpus.jsonl"
    with CORPUS.open(encoding="utf-8") as lines:
        source.write_text("".join(line for line, _ in zip(lines, range(args.docs), strict=False)))
    encoder = SplareEncoder.from_pretrained(args.model, device="cpu")
    model = args.model or None
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    runs: dict[str, list[dict]] = {name: [] for name in CONTENDERS}
    names = list(CONTENDERS)
    for round_number in range(args.rounds):
        for name in names[round_number % len(names) :] + names[: round_number % len(names)]:
            backend = load_backend("qdrant", data_dir=work / f"{name}-{round_number}")
            syncer = Syncer(encoder, backend, "man", documents_per_write=args.documents_per_write)
            shape = CONTENDERS[name]
            runner = syncer
            if shape is not None:
                cluster = RayCluster(workers=shape[0], cpus_per_worker=shape[1])
                runner = RayIngest(syncer, EncoderRecipe(model=model), cluster=cluster)  # type: ignore[assignment]
            started = time.perf_counter()
            report = runner.run(read_source(source))
            seconds = time.perf_counter() - started
            backend.close()
            runs[name].append(
                {
                    "seconds": round(seconds, 2),
                    "documents_per_second": round(report.encoded / seconds, 3),
                    "chunks": report.chunks_written,
                    "workers": [w.to_dict() for w in getattr(report, "workers", [])],
                }
            )
            print(name, json.dumps(runs[name][-1]), flush=True)
    ray.shutdown()
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
        "date": time.strftime("%Y-%m-%d"),
        "model": encoder.config.name,
        "documents": args.docs,
        "documents_per_write": args.documents_per_write,
        "runs": runs,
        "documents_per_second": {
            name: max(r["documents_per_second"] for r in results) for name, results in runs.items()
        },
    }
    print_and_save(result, args.json)


if __name__ == "__main__":
    main()
