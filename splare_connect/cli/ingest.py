"""``sync`` and ``ingest``: bring a collection in line with a source, with progress and a summary."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from splare_connect.backends.default import DEFAULT_BACKEND
from splare_connect.choices import Precision, Runner, Runtime
from splare_connect.cli.common import (
    EXIT_SKIPPED,
    STORED_PANEL,
    BackendOption,
    BackendOptionsOption,
    BatchSizeOption,
    CollectionOption,
    DataDirOption,
    IdfOption,
    JsonOption,
    ModelOption,
    PrecisionOption,
    RuntimeOption,
    SourceArgument,
    TimeoutOption,
    TrustRemoteCodeOption,
    UrlOption,
    fail,
    load_encoder,
    open_backend,
    open_early,
    print_json,
    print_line,
    print_new_note,
    stderr,
    stdout,
)
from splare_connect.errors import SplareError
from splare_connect.record_rules import DEFAULT_LIMITS

if TYPE_CHECKING:
    from splare_connect.sync import SyncReport


def run_with_progress(syncer: Any, documents: Any, delete_missing: bool, force_delete: bool) -> SyncReport:
    """Show a live counter on a terminal, one line per write otherwise (logs, CI).

    The runner reports after each write and again at the end, when the counts are
    usually those of the last write: a line is printed only when it says something new,
    and the terminal's counter is removed at the end, where the summary takes its place.
    """
    if not sys.stderr.isatty():
        return syncer.run(
            documents,
            delete_missing=delete_missing,
            force_delete=force_delete,
            on_progress=_when_changed(lambda line: print(f"progress: {line}", file=sys.stderr, flush=True)),
        )
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=stderr, transient=True) as bar:
        task = bar.add_task("reading documents")
        return syncer.run(
            documents,
            delete_missing=delete_missing,
            force_delete=force_delete,
            on_progress=_when_changed(lambda line: bar.update(task, description=line)),
        )


def _when_changed(show: Callable[[str], None]) -> Callable[[SyncReport], None]:
    """A progress callback that shows a report's counts, unless they are the ones shown last."""
    shown: list[str] = []

    def on_progress(report: SyncReport) -> None:
        line = f"{report.documents} documents read, {report.encoded} encoded, {report.chunks_written} chunks written"
        if shown != [line]:
            shown[:] = [line]
            show(line)

    return on_progress


def summary(report: SyncReport) -> str:
    """The run in one line; a run that encoded nothing gives no rate (there is none to give)."""
    deleted = f"{report.deleted_documents} deleted"
    skipped = f"{len(report.skipped)} skipped; {report.seconds:.1f} s"
    if not report.encoded:
        return f"nothing to encode: {report.unchanged} documents unchanged, {deleted}; {skipped}"
    return (
        f"{report.documents} documents: {report.new} new, {report.changed} changed, {report.unchanged} unchanged, "
        f"{deleted}; {report.chunks_written} chunks written; {skipped} ({report.documents_per_second:.1f} documents/s)"
    )


# ingest's rarer options, below the common ones in --help (see common.DATABASE_PANEL).
INPUT_PANEL = "Input"
RAY_PANEL = "Ray cluster (--runner ray)"


def sync(
    source: SourceArgument,
    delete_missing: Annotated[
        bool,
        typer.Option(
            "--delete-missing",
            help="Also delete stored documents gone from the source.",
        ),
    ] = False,
    force_delete: Annotated[
        bool,
        typer.Option(
            "--force-delete",
            help="With --delete-missing: delete even if some records were unreadable or over half would go.",
        ),
    ] = False,
    backend: BackendOption = DEFAULT_BACKEND,
    collection: CollectionOption = "splare",
    url: UrlOption = None,
    data_dir: DataDirOption = None,
    timeout: TimeoutOption = None,
    backend_option: BackendOptionsOption = [],  # noqa: B006
    model: ModelOption = None,
    precision: PrecisionOption = Precision.AUTO,
    runtime: RuntimeOption = Runtime.AUTO,
    trust_remote_code: TrustRemoteCodeOption = False,
    dense: Annotated[
        bool | None,
        typer.Option(
            "--dense/--no-dense",
            help="Store dense embeddings too (default: if the model has one).",
            rich_help_panel=STORED_PANEL,
        ),
    ] = None,
    index_field: Annotated[
        list[str],
        typer.Option("--index-field", help="Metadata field to index for filters.", rich_help_panel=STORED_PANEL),
    ] = [],  # noqa: B006
    idf: IdfOption = False,
    store_text: Annotated[
        bool,
        typer.Option(
            "--store-text/--no-store-text", help="Keep chunk text in the payload.", rich_help_panel=STORED_PANEL
        ),
    ] = True,
    shard: Annotated[
        str, typer.Option(help="Process shard i of n (i/n), for parallel workers.", rich_help_panel=INPUT_PANEL)
    ] = "0/1",
    batch_size: BatchSizeOption = 32,
    max_chars: Annotated[
        int,
        typer.Option(
            "--max-chars",
            min=1,
            help="Skip records whose text is longer (characters).",
            rich_help_panel=INPUT_PANEL,
        ),
    ] = DEFAULT_LIMITS.max_text_chars,
    include_hidden: Annotated[
        bool,
        typer.Option(
            "--include-hidden",
            help="Directory sources: also read hidden files (.git, ...).",
            rich_help_panel=INPUT_PANEL,
        ),
    ] = False,
    runner: Annotated[
        Runner,
        typer.Option(
            envvar="SPLARE_RUNNER",
            help="Encode here, or on a Ray cluster (pip install 'splare-connect\\[ray]').",
            rich_help_panel=RAY_PANEL,
        ),
    ] = Runner.LOCAL,
    address: Annotated[
        str | None,
        typer.Option(
            envvar="RAY_ADDRESS",
            help="The cluster to join ('auto': this machine's); default: a new one.",
            rich_help_panel=RAY_PANEL,
        ),
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="Encoder actors (each loads the model).", rich_help_panel=RAY_PANEL)
    ] = 2,
    gpus_per_worker: Annotated[
        float,
        typer.Option(min=0, help="GPUs per actor (CUDA at bf16).", rich_help_panel=RAY_PANEL),
    ] = 0.0,
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
        store = open_backend(backend, url, data_dir, timeout, backend_option)
        try:
            open_early(store, collection, must_exist=False)
            syncer = Syncer(
                encoder := load_encoder(model, precision, trust_remote_code, runtime, lazy=True),
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
            job: Any = syncer
            if runner == Runner.RAY:
                from splare_connect.backends.location import BackendLocation
                from splare_connect.distributed.ray_ingest import EncoderRecipe, RayCluster, RayIngest

                job = RayIngest(
                    syncer,
                    EncoderRecipe(model, str(precision), str(runtime), trust_remote_code),
                    location=BackendLocation.of(backend, url, data_dir, timeout, backend_option),
                    cluster=RayCluster(address=address, workers=workers, gpus_per_worker=gpus_per_worker),
                )
            note_at_load = encoder.runtime_note
            report = run_with_progress(job, documents, delete_missing, force_delete)
            print_new_note(encoder, note_at_load)  # a fallback found when the model loaded mid-run
        finally:
            store.close()
    except SplareError as error:
        raise fail(error) from error
    if left_out:
        listed = "; ".join(left_out[:10]) + ("; ..." if len(left_out) > 10 else "")
        print_line(f"[yellow]not read[/] {len(left_out)} files:", listed)
    if report.arithmetic_note:
        print_line("[dim]note:[/]", report.arithmetic_note)
    for skipped in report.skipped:
        print_line("[yellow]skipped[/]", str(skipped))
    if report.deletion_refused:
        print_line("[yellow]warning:[/]", report.deletion_refused)
    if as_json:
        print_json(report.to_dict())
    else:
        stdout.print(summary(report), highlight=False, soft_wrap=True)
        for worker in getattr(report, "workers", []):
            stdout.print(
                f"  {worker.worker}: {worker.batches} batches, {worker.documents} documents, "
                f"{worker.chunks} chunks, {worker.documents_per_second:.1f} documents/s while busy",
                highlight=False,
                soft_wrap=True,
            )
    if report.skipped or report.deletion_refused:
        raise typer.Exit(EXIT_SKIPPED)
