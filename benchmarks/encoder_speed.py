"""Encoder speed: documents/s, ms per query, and what ``encode`` adds to the model's forward pass.

The model is :meth:`SplareEncoder.forward`, the same call ``encode`` and fine-tuning
make: the backbone up to the SAE's layer, the SAE on every content token (TopK
included), the max-pool, and the dense embedding when the model has one. It is timed on
exactly the batches the encoder runs (``SplareEncoder.iter_batches``), tokenized in
advance. The encoder's own time covers everything else too: tokenizing, batching,
pruning and conversion to SparseVector. The two are timed back to back on each batch,
in alternating order, so that a noisy neighbour slows both alike.

Before 2026-11-29 the reference was a hand-written "bare compute" (the backbone plus the
SAE's matrix product only, without TopK and pooling), so ratios from before then are
not comparable with ``throughput_ratio_encoder_over_forward``.

    python benchmarks/encoder_speed.py --corpus data/manpages/corpus.jsonl

Prints a table and writes JSON (``--json``). Not a test: no figure is asserted.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from report import percentile, print_and_save

from splare_connect import SplareEncoder


def load_texts(corpus: Path, count: int, min_tokens: int, encoder: SplareEncoder) -> list[str]:
    """The first ``count`` corpus documents with at least ``min_tokens`` tokens."""
    texts = []
    with corpus.open(encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            text = " ".join(part for part in (record.get("title", ""), record.get("text", "")) if part)
            if encoder.tokenizer.count_tokens(text) >= min_tokens:
                texts.append(text)
            if len(texts) == count:
                break
    if len(texts) < count:
        raise SystemExit(f"{corpus}: only {len(texts)} documents have {min_tokens}+ tokens")
    return texts


def paired_times(encoder: SplareEncoder, texts: list[str], batch_size: int, rounds: int) -> tuple[float, float]:
    """Seconds for the full encoder and for its forward pass alone, measured batch by batch.

    For each of the encoder's batches, the full pipeline (``encode_documents`` on that
    batch's texts, tokenization included) and ``encoder.forward`` (on the same batch
    tokenized in advance, under ``torch.inference_mode()`` as ``encode`` runs it) run
    back to back, in alternating order, so that machine noise falls on both alike.
    """
    batches = list(encoder.iter_batches(texts, role="document", batch_size=batch_size))
    full = model = 0.0
    for round_index in range(rounds):
        for batch_index, batch in enumerate(batches):
            batch_texts = [texts[i] for i in batch.positions]
            full_first = (round_index + batch_index) % 2 == 0
            for step in ("full", "forward") if full_first else ("forward", "full"):
                start = time.perf_counter()
                if step == "full":
                    encoder.encode_documents(batch_texts, batch_size=batch_size)
                    full += time.perf_counter() - start
                else:
                    with torch.inference_mode():
                        encoder.forward(batch)
                    model += time.perf_counter() - start
    return full / rounds, model / rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=Path("data/manpages/corpus.jsonl"))
    parser.add_argument(
        "--queries-file",
        type=Path,
        default=Path("data/manpages/queries/en-dev.jsonl"),
        help="JSONL with a 'text' field per query (the man-page NAME descriptions)",
    )
    parser.add_argument("--model", default=None, help="model name or directory (default model if omitted)")
    parser.add_argument("--docs", type=int, default=128)
    parser.add_argument("--doc-tokens", type=int, default=256)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32", help="backbone dtype (bf16: GPU runs)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    encoder = SplareEncoder.from_pretrained(
        args.model, device=args.device, torch_dtype=dtype, max_length=args.doc_tokens
    )
    docs = load_texts(args.corpus, args.docs, args.doc_tokens, encoder)
    with args.queries_file.open(encoding="utf-8") as lines:
        queries = [json.loads(line)["text"] for line, _ in zip(lines, range(args.queries), strict=False)]

    encoder.encode_documents(docs[: args.batch_size], batch_size=args.batch_size)  # warm-up
    full, forward = paired_times(encoder, docs, args.batch_size, args.rounds)

    query_tokens = [encoder.tokenizer.count_tokens(encoder.config.query_prefix + q) for q in queries]
    latencies = []
    for query in queries:
        start = time.perf_counter()
        encoder.encode_query(query)
        latencies.append((time.perf_counter() - start) * 1000)

    result = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, device {args.device}, {args.dtype}",
        "date": time.strftime("%Y-%m-%d"),
        "model": encoder.config.name,
        "documents": len(docs),
        "tokens_per_document": args.doc_tokens,
        "batch_size": args.batch_size,
        "documents_per_second": len(docs) / full,
        "forward_documents_per_second": len(docs) / forward,
        "throughput_ratio_encoder_over_forward": forward / full,
        "queries": len(queries),
        "mean_query_tokens": statistics.mean(query_tokens),
        "query_ms_p50": statistics.median(latencies),
        "query_ms_p99": percentile(latencies, 0.99),
    }
    print_and_save(result, args.json)


if __name__ == "__main__":
    main()
