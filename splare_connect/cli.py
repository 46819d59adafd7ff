"""The ``splare-connect`` command line: ingest, sync, search, collections.

Heavy imports (torch, transformers, database clients) happen inside the commands, so
``splare-connect --help`` is instant. Every setting can come from an environment
variable (shown in ``--help``); secrets such as API keys are read by the backends from
the environment only, never from arguments.

Exit status: 0 success; 1 error; 2 bad usage; 3 finished, but some records were
skipped (each one is reported on stderr with its file and line) or a deletion was
refused. Errors are one line on stderr, secrets redacted; ``SPLARE_DEBUG=1`` adds the
traceback of an unexpected one.
"""

from __future__ import annotations

import json
import os
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from splare_connect.errors import SplareError
from splare_connect.record_rules import DEFAULT_LIMITS

if TYPE_CHECKING:
    from splare_connect.backends import Backend, CollectionSpec
    from splare_connect.encoder import SplareEncoder
    from splare_connect.sync import SyncReport

EXIT_SKIPPED = 3

app = typer.Typer(
    name="splare-connect",
    help="SAE-latent learned-sparse retrieval for Qdrant, OpenSearch and other vector databases.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
collections_app = typer.Typer(help="List, inspect and drop collections.", no_args_is_help=True)
app.add_typer(collections_app, name="collections")

stdout = Console()
stderr = Console(stderr=True)


class HybridChoice(str, Enum):
    rrf = "rrf"
    dbsf = "dbsf"


BackendOption = Annotated[
    str, typer.Option("--backend", "-b", envvar="SPLARE_BACKEND", help="Backend name (installed adapters).")
]
CollectionOption = Annotated[
    str, typer.Option("--collection", "-c", envvar="SPLARE_COLLECTION", help="Collection or index name.")
]
UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="SPLARE_URL",
        help="Database URL (Qdrant also reads QDRANT_URL). Without one, Qdrant runs embedded.",
    ),
]
DataDirOption = Annotated[
    Path | None,
    typer.Option("--data-dir", envvar="SPLARE_DATA_DIR", help="Where the embedded engine stores collections."),
]
ModelOption = Annotated[
    str | None,
    typer.Option("--model", "-m", envvar="SPLARE_MODEL", help="Model name or directory (default model if omitted)."),
]
PrecisionOption = Annotated[
    str,
    typer.Option(
        "--precision",
        envvar="SPLARE_PRECISION",
        help="Encoder precision: fp32, or int8 (fast CPU path; a collection keeps the precision it was ingested with).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]
SourceArgument = Annotated[
    Path,
    typer.Argument(
        help="A .jsonl file (id/_id, text, ...), a .json array of such records, or a directory of text files."
    ),
]
TimeoutOption = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        envvar="SPLARE_TIMEOUT",
        min=0.1,
        help="Seconds to wait for each request to a database server (default 30).",
    ),
]
TrustRemoteCodeOption = Annotated[
    bool,
    typer.Option(
        "--trust-remote-code",
        help="Let the model's backbone run Python code shipped in its directory. Only for models you trust; "
        "a model directory can never turn this on by itself.",
    ),
]
DenseOption = Annotated[
    bool | None,
    typer.Option("--dense/--no-dense", help="Also store dense embeddings (default: if the model has one)."),
]
IndexFieldOption = Annotated[list[str], typer.Option("--index-field", help="Metadata field to index for filters.")]
IdfOption = Annotated[bool, typer.Option(help="Weight query features by IDF in the engine.")]
StoreTextOption = Annotated[bool, typer.Option("--store-text/--no-store-text", help="Keep chunk text in the payload.")]
ShardOption = Annotated[str, typer.Option(help="Process shard i of n (i/n), for parallel workers.")]
BatchSizeOption = Annotated[int, typer.Option(min=1, help="Texts per encoder batch.")]


def _backend(name: str, url: str | None, data_dir: Path | None, timeout: float | None = None) -> Backend:
    """Load a backend, passing each location option only to factories that take it.

    ``--data-dir`` (or ``$SPLARE_DATA_DIR``) means something to embedded engines only; a
    server-only backend such as OpenSearch never sees it. Commands call this before
    loading the model, so a wrong backend, URL or data directory is reported at once.
    """
    import inspect

    from splare_connect.backends import available_backends, load_backend

    options: dict[str, Any] = {}
    if url:
        options["url"] = url
    if data_dir is not None:
        options["data_dir"] = data_dir
    if timeout is not None:
        options["timeout"] = timeout
    entry_point = available_backends().get(name)
    if entry_point is not None and options:
        accepted = inspect.signature(entry_point.load()).parameters
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
            options = {key: value for key, value in options.items() if key in accepted}
    return load_backend(name, **options)


def _encoder(model: str | None, precision: str = "fp32", trust_remote_code: bool = False) -> SplareEncoder:
    from transformers.utils import logging as transformers_logging

    from splare_connect.encoder import SplareEncoder

    transformers_logging.disable_progress_bar()  # the CLI shows its own progress
    return SplareEncoder.from_pretrained(model, precision=precision, trust_remote_code=trust_remote_code)


def _open_early(store: Backend, collection: str, *, must_exist: bool) -> CollectionSpec | None:
    """Reach the database and open the collection before the model loads (seconds).

    A missing collection, an unreachable server, or an embedded collection another
    process is using is then reported at once, not after the model has loaded.
    """
    spec = store.describe_collection(collection)
    if spec is not None:
        store.count(collection)
    elif must_exist:
        raise SplareError(f"collection {collection!r} does not exist")
    return spec


def _fail(error: Exception) -> typer.Exit:
    _print_error(str(error))
    return typer.Exit(1)


def _print_error(message: str) -> None:
    """One line on stderr: secrets redacted, markup in the message shown as text."""
    _print_line("[bold red]error:[/]", message)


def _print_line(label: str, message: str) -> None:
    """``label message`` on stderr as one line: redacted, whitespace collapsed, markup escaped.

    Messages can carry a server's words or a record's id, which may hold secrets,
    newlines or Rich markup such as ``[/]``.
    """
    from splare_connect.redaction import safe_message

    stderr.print(label, escape(safe_message(message, limit=2000)), highlight=False, soft_wrap=True)


def _run_with_progress(syncer: Any, documents: Any, delete_missing: bool, force_delete: bool) -> SyncReport:
    """Show a live counter on a terminal, one line per write otherwise (logs, CI)."""
    if not sys.stderr.isatty():

        def log_line(report: SyncReport) -> None:
            print(
                f"progress: {report.documents} documents read, {report.encoded} encoded, "
                f"{report.chunks_written} chunks written",
                file=sys.stderr,
                flush=True,
            )

        return syncer.run(documents, delete_missing=delete_missing, force_delete=force_delete, on_progress=log_line)
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=stderr) as bar:
        task = bar.add_task("reading documents")

        def update(report: SyncReport) -> None:
            bar.update(
                task,
                description=f"{report.documents} documents read, {report.encoded} encoded, "
                f"{report.chunks_written} chunks written",
            )

        return syncer.run(documents, delete_missing=delete_missing, force_delete=force_delete, on_progress=update)


@app.command("sync")
def sync(
    source: SourceArgument,
    delete_missing: Annotated[
        bool,
        typer.Option(
            "--delete-missing",
            help="Delete stored documents that are no longer in the source (never those whose record was skipped).",
        ),
    ] = False,
    force_delete: Annotated[
        bool,
        typer.Option(
            "--force-delete",
            help="With --delete-missing: delete even when some records could not be read, "
            "or when more than half of the stored documents would go.",
        ),
    ] = False,
    backend: BackendOption = "qdrant",
    collection: CollectionOption = "splare",
    url: UrlOption = None,
    data_dir: DataDirOption = None,
    timeout: TimeoutOption = None,
    model: ModelOption = None,
    precision: PrecisionOption = "fp32",
    trust_remote_code: TrustRemoteCodeOption = False,
    dense: DenseOption = None,
    index_field: IndexFieldOption = [],  # noqa: B006
    idf: IdfOption = False,
    store_text: StoreTextOption = True,
    shard: ShardOption = "0/1",
    batch_size: BatchSizeOption = 32,
    max_chars: Annotated[
        int, typer.Option("--max-chars", min=1, help="Longest record text in characters; longer ones are skipped.")
    ] = DEFAULT_LIMITS.max_text_chars,
    include_hidden: Annotated[
        bool,
        typer.Option("--include-hidden", help="Directory sources: also read hidden files and folders (.git, ...)."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Make the collection match the source: upsert new/changed, optionally delete missing."""
    from dataclasses import replace

    from splare_connect.backends.protocol import check_field_names
    from splare_connect.documents import read_source
    from splare_connect.sync import Shard, Syncer

    left_out: list[str] = []
    try:
        shard_spec = Shard.parse(shard)
        check_field_names(index_field)
        documents = read_source(
            source, include_hidden=include_hidden, on_skip=lambda path, why: left_out.append(f"{path} ({why})")
        )
        store = _backend(backend, url, data_dir, timeout)
        try:
            _open_early(store, collection, must_exist=False)
            syncer = Syncer(
                _encoder(model, precision, trust_remote_code),
                store,
                collection,
                dense=dense,
                store_text=store_text,
                indexed_fields=tuple(index_field),
                idf=idf,
                batch_size=batch_size,
                shard=shard_spec,
                limits=replace(DEFAULT_LIMITS, max_text_chars=max_chars),
            )
            report = _run_with_progress(syncer, documents, delete_missing, force_delete)
        finally:
            store.close()
    except SplareError as error:
        raise _fail(error) from error
    if left_out:
        listed = "; ".join(left_out[:10]) + ("; ..." if len(left_out) > 10 else "")
        _print_line(f"[yellow]not read[/] {len(left_out)} files:", listed)
    for skipped in report.skipped:
        _print_line("[yellow]skipped[/]", str(skipped))
    if report.deletion_refused:
        _print_line("[yellow]warning:[/]", report.deletion_refused)
    if as_json:
        stdout.print_json(json.dumps(report.to_dict()))
    else:
        stdout.print(
            f"{report.documents} documents: {report.new} new, {report.changed} changed, "
            f"{report.unchanged} unchanged, {report.deleted_documents} deleted; "
            f"{report.chunks_written} chunks written; {len(report.skipped)} skipped; "
            f"{report.seconds:.1f} s ({report.documents_per_second:.1f} documents/s)",
            highlight=False,
            soft_wrap=True,
        )
    if report.skipped or report.deletion_refused:
        raise typer.Exit(EXIT_SKIPPED)


app.command(
    "ingest",
    help="Encode and store new or changed documents; re-running skips unchanged ones. "
    "The same command as sync: add --delete-missing to also remove documents gone from the source.",
)(sync)


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="The query text.")],
    k: Annotated[int, typer.Option("--k", "-k", min=1, help="Number of results.")] = 10,
    filter_: Annotated[
        list[str],
        typer.Option("--filter", "-f", help="Metadata condition: key=value, key!=value, key>=number, 'key in a,b'."),
    ] = [],  # noqa: B006
    hybrid: Annotated[HybridChoice | None, typer.Option(help="Fuse with dense vectors: rrf or dbsf.")] = None,
    explain: Annotated[bool, typer.Option(help="Show the latent features behind each score.")] = False,
    documents: Annotated[bool, typer.Option("--documents", help="One result per document, not per chunk.")] = False,
    backend: BackendOption = "qdrant",
    collection: CollectionOption = "splare",
    url: UrlOption = None,
    data_dir: DataDirOption = None,
    timeout: TimeoutOption = None,
    model: ModelOption = None,
    precision: PrecisionOption = "fp32",
    trust_remote_code: TrustRemoteCodeOption = False,
    as_json: JsonOption = False,
) -> None:
    """Search a collection."""
    from splare_connect.filters import parse_filters
    from splare_connect.retriever import Retriever

    try:
        conditions = parse_filters(filter_)
        store = _backend(backend, url, data_dir, timeout)
        try:
            spec = _open_early(store, collection, must_exist=True)
            if hybrid is not None and spec is not None and not spec.dense_dim:
                raise SplareError(f"collection {collection!r} has no dense vectors, so --hybrid is unavailable")
            retriever = Retriever(_encoder(model, precision, trust_remote_code), store, collection)
            hits = retriever.search(
                query,
                k=k,
                filter=conditions,
                hybrid=None if hybrid is None else hybrid.value,  # type: ignore[arg-type]
                explain=explain,
                group_by_document=documents,
            )
        finally:
            store.close()
    except SplareError as error:
        raise _fail(error) from error
    if as_json:
        rows = [
            {
                "id": h.id,
                "doc_id": h.doc_id,
                "score": h.score,
                "text": h.text,
                "metadata": dict(h.metadata),
                **({"features": [[f, c] for f, c in h.features]} if h.features is not None else {}),
            }
            for h in hits
        ]
        stdout.print_json(json.dumps(rows, ensure_ascii=False, default=str))
        return
    from rich.table import Table

    table = Table("#", "score", "document", "text", show_lines=False)
    for rank, hit in enumerate(hits, start=1):
        # Stored text and ids are data: escaped, so '[/]' in a record can't break the table.
        snippet = escape(" ".join((hit.text or "").split())[:100])
        if hit.features:
            snippet += "\n[dim]features: " + ", ".join(f"{f}:{c:.2f}" for f, c in hit.features[:6]) + "[/]"
        table.add_row(str(rank), f"{hit.score:.3f}", escape(hit.doc_id), snippet)
    stdout.print(table)


@app.command("eval")
def eval_command(
    dataset: Annotated[Path, typer.Argument(help="BEIR-layout directory: corpus.jsonl, queries, qrels.")],
    model: ModelOption = None,
    precision: PrecisionOption = "fp32",
    trust_remote_code: TrustRemoteCodeOption = False,
    query_set: Annotated[
        list[str], typer.Option("--query-set", "-q", help="Query sets to run (default: all), e.g. en-dev.")
    ] = [],  # noqa: B006
    system: Annotated[
        list[str], typer.Option("--system", help="Systems: bm25, dense, sparse, hybrid (default: all).")
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
        encoder = _encoder(model, precision, trust_remote_code)
        result = evaluate(
            encoder,
            data,
            systems=tuple(system) or ("bm25", "dense", "sparse", "hybrid"),
            doc_pruning=tuple(doc_pruning) or (200, 100),
            cache_dir=cache_dir or model_cache() / "eval",
            baseline=None if baseline is None else _encoder(baseline, precision, trust_remote_code),
        )
    except SplareError as error:
        raise _fail(error) from error
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
        title=f"{result.model} ({result.precision})"
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


@app.command("train")
def train_command(
    config: Annotated[Path, typer.Argument(help="JSON training config (see splare_connect.training.config).")],
) -> None:
    """Fine-tune an encoder the SPLARE way: LoRA on the backbone, SAE frozen, dense teacher."""
    from splare_connect.training.config import TrainConfig
    from splare_connect.training.finetune import train

    def report(step: int, stats: dict[str, float]) -> None:
        if step % 10 == 0 or step == settings.steps - 1:
            stderr.print(
                f"step {step + 1}/{settings.steps}: loss {stats['loss']:.4f} (kl {stats['kl']:.4f}, "
                f"flops {stats['flops']:.4f}, dense {stats['dense']:.4f}, parallel {stats['parallel']:.4f}, "
                f"labels {stats['labels']:.4f}), "
                f"batch accuracy {stats['accuracy']:.2f}, "
                f"query nnz {stats['query_nnz']:.0f}, {stats['seconds']:.0f} s",
                highlight=False,
                soft_wrap=True,
            )

    try:
        settings = TrainConfig.load(config)
        output = train(settings, on_step=report)
    except SplareError as error:
        raise _fail(error) from error
    stdout.print(f"fine-tuned model written to {output}", highlight=False)


@app.command("train-sae")
def train_sae_command(
    backbone: Annotated[str, typer.Argument(help="Backbone directory (or hub id where a hub is reachable).")],
    texts: Annotated[Path, typer.Argument(help="A .jsonl file or directory of texts to collect token states from.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Model directory to write.")],
    layer: Annotated[
        int, typer.Option(help="Block index L (blocks.L.hook_resid_post); negative counts from the end.")
    ] = -1,
    latents: Annotated[int, typer.Option(help="Number of SAE latents.")] = 16384,
    k: Annotated[int, typer.Option(help="Active latents per token (TopK).")] = 32,
    steps: Annotated[int, typer.Option(help="Optimiser steps.")] = 5000,
    max_tokens: Annotated[int, typer.Option(help="Token states to collect.")] = 200_000,
) -> None:
    """Train a TopK SAE on a backbone's token states (stage one of SAE-SPLADE)."""
    from splare_connect.documents import Document, read_source
    from splare_connect.training.sae_training import train_sae_model

    try:
        documents = [d.text for d in read_source(texts) if isinstance(d, Document)]
        result = train_sae_model(
            backbone, layer, documents, output, latents=latents, k=k, steps=steps, max_tokens=max_tokens
        )
    except SplareError as error:
        raise _fail(error) from error
    stdout.print(
        f"SAE trained on {result.tokens} token states in {result.seconds:.0f} s: explained variance "
        f"{result.explained_variance:.3f}, dead latents {result.dead_fraction:.1%}; model directory {result.model_dir}",
        highlight=False,
        soft_wrap=True,
    )


@collections_app.command("list")
def collections_list(
    backend: BackendOption = "qdrant",
    url: UrlOption = None,
    data_dir: DataDirOption = None,
    timeout: TimeoutOption = None,
    as_json: JsonOption = False,
) -> None:
    """List collections."""
    try:
        store = _backend(backend, url, data_dir, timeout)
        try:
            names = store.list_collections()
        finally:
            store.close()
    except SplareError as error:
        raise _fail(error) from error
    if as_json:
        stdout.print_json(json.dumps(names))
    else:
        for name in names:
            stdout.print(name, highlight=False, markup=False)


@collections_app.command("info")
def collections_info(
    name: Annotated[str, typer.Argument(help="Collection name.")],
    backend: BackendOption = "qdrant",
    url: UrlOption = None,
    data_dir: DataDirOption = None,
    timeout: TimeoutOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a collection's encoder fingerprint, vectors and size."""
    try:
        store = _backend(backend, url, data_dir, timeout)
        try:
            spec = store.describe_collection(name)
            if spec is None:
                raise SplareError(f"collection {name!r} does not exist")
            info = {
                "name": name,
                "points": store.count(name),
                "sparse_dim": spec.sparse_dim,
                "dense_dim": spec.dense_dim,
                "idf": spec.idf,
                "indexed_fields": list(spec.indexed_fields),
                "encoder": dict(spec.fingerprint),
            }
        finally:
            store.close()
    except SplareError as error:
        raise _fail(error) from error
    if as_json:
        stdout.print_json(json.dumps(info))
    else:
        for key, value in info.items():
            stdout.print(f"{key:15} {value}", highlight=False, markup=False)


@collections_app.command("drop")
def collections_drop(
    name: Annotated[str, typer.Argument(help="Collection name.")],
    yes: Annotated[bool, typer.Option("--yes", help="Don't ask for confirmation.")] = False,
    backend: BackendOption = "qdrant",
    url: UrlOption = None,
    data_dir: DataDirOption = None,
    timeout: TimeoutOption = None,
) -> None:
    """Delete a collection and everything in it (refused while another process uses an embedded one)."""
    if not yes and not typer.confirm(f"Drop collection {name!r} and all its points?"):
        raise typer.Exit(1)
    try:
        store = _backend(backend, url, data_dir, timeout)
        try:
            # Listed, not described: a collection whose description is damaged can still be dropped.
            if name not in store.list_collections():
                raise SplareError(f"collection {name!r} does not exist")
            store.drop_collection(name)
        finally:
            store.close()
    except SplareError as error:
        raise _fail(error) from error
    stdout.print(f"dropped {name}", highlight=False, markup=False)


def main() -> None:
    """Console-script entry point: any error the commands did not expect is still one line.

    A traceback helps a developer, not a user, and its text may hold a secret (a URL
    with a password, a server's echo of request headers); ``SPLARE_DEBUG=1`` shows it.
    """
    try:
        app()
    except Exception as error:  # the last line of defence, by design
        if os.environ.get("SPLARE_DEBUG"):
            raise
        _print_error(f"{type(error).__name__}: {error} (SPLARE_DEBUG=1 shows the traceback)")
        sys.exit(1)


if __name__ == "__main__":
    main()
