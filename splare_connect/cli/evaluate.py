"""``eval``: retrieval quality against BM25, dense and hybrid on a BEIR-layout dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from splare_connect.choices import EvalSystem, Precision, Runtime
from splare_connect.cli.common import (
    JsonOption,
    ModelOption,
    PrecisionOption,
    RuntimeOption,
    TrustRemoteCodeOption,
    fail,
    load_encoder,
    stdout,
)
from splare_connect.errors import SplareError


def eval_command(
    dataset: Annotated[
        Path,
        typer.Argument(help="BEIR-layout directory: corpus.jsonl, queries, qrels (try examples/eval-mini)."),
    ],
    model: ModelOption = None,
    precision: PrecisionOption = Precision.AUTO,
    runtime: RuntimeOption = Runtime.AUTO,
    trust_remote_code: TrustRemoteCodeOption = False,
    query_set: Annotated[
        list[str], typer.Option("--query-set", "-q", help="Query sets to run (default: all), e.g. en-dev.")
    ] = [],  # noqa: B006
    system: Annotated[
        list[EvalSystem],
        typer.Option(
            "--system",
            metavar="<system>",
            help=f"Systems to score: {', '.join(s.value for s in EvalSystem)} (repeatable; default: all).",
        ),
    ] = [],  # noqa: B006
    doc_pruning: Annotated[
        list[int], typer.Option("--doc-pruning", help="Also score documents pruned to N weights (default 200, 100).")
    ] = [],  # noqa: B006
    cache_dir: Annotated[
        Path | None, typer.Option(help="Where encoded corpora are cached (default: the model cache).")
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            help="Another model (name or directory) whose sparse and dense runs join the table as "
            "baseline-sparse / baseline-dense, e.g. the zero-shot model a fine-tune started from."
        ),
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the results as JSON here.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Measure nDCG@10, MRR@10 and Recall@100 against BM25, dense and hybrid."""
    from splare_connect.evaluation import evaluate, load_beir
    from splare_connect.models import cache_dir as model_cache

    try:
        data = load_beir(dataset, query_set or None)
        encoder = load_encoder(model, precision, trust_remote_code, runtime)
        result = evaluate(
            encoder,
            data,
            systems=tuple(s.value for s in system) or tuple(s.value for s in EvalSystem),
            doc_pruning=tuple(doc_pruning) or (200, 100),
            cache_dir=cache_dir or model_cache() / "eval",
            baseline=None if baseline is None else load_encoder(baseline, precision, trust_remote_code, runtime),
        )
    except SplareError as error:
        raise fail(error) from error
    report = result.to_dict()
    if output is not None:
        output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if as_json:
        stdout.print_json(json.dumps(report))
        return
    from rich.table import Table

    systems_seen = list(next(iter(result.scores.values())))
    table = Table(
        "system",
        *(f"{name}\nnDCG@10 / MRR@10 / R@100" for name in result.scores),
        title=f"{result.model} ({result.precision}, {result.runtime})"
        + (f", baseline {result.baseline['model']}" if result.baseline else ""),
    )
    for name in systems_seen:
        cells = []
        for scores in result.scores.values():
            m = scores.get(name, {})
            cells.append(" / ".join(f"{m.get(k, float('nan')):.3f}" for k in ("nDCG@10", "RR@10", "R@100")))
        table.add_row(name, *cells)
    stdout.print(table)
    encoding = "cached" if result.timing["corpus_from_cache"] else f"{result.timing['corpus_encode_seconds']:.0f} s"
    stdout.print(
        f"non-zeros: queries {result.sparsity['query_nnz_mean']:.1f}, documents "
        f"{result.sparsity['document_nnz_mean']:.1f}; corpus encoding {encoding}; "
        f"queries {result.timing['query_ms_mean']:.1f} ms each",
        highlight=False,
        soft_wrap=True,
    )
