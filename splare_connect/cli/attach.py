"""``attach``: add SPLARE vectors to a collection another application made, and keep them current.

A command of its own rather than an option of ``sync``: sync reads documents from files
and owns the points it writes (it chunks, deletes, replaces); attach reads the texts
from the collection itself and writes nothing of the app's, so none of sync's options
would mean the same thing.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from splare_connect.backends.default import DEFAULT_BACKEND
from splare_connect.choices import Precision, Runtime
from splare_connect.cli.common import (
    EXIT_SKIPPED,
    BackendOption,
    BackendOptionsOption,
    BatchSizeOption,
    DataDirOption,
    IdfOption,
    JsonOption,
    ModelOption,
    PrecisionOption,
    RuntimeOption,
    TimeoutOption,
    TrustRemoteCodeOption,
    UrlOption,
    fail,
    load_encoder,
    open_backend,
    print_json,
    print_line,
    print_new_note,
    stderr,
    stdout,
)
from splare_connect.errors import SplareError
from splare_connect.record_rules import DEFAULT_LIMITS

if TYPE_CHECKING:
    from splare_connect.attach import AttachReport

_SHOWN_SKIPS = 20  # skipped points listed on stderr; --json has them all


def run_with_progress(attacher: Any) -> AttachReport:
    """A live counter on a terminal, one line per write otherwise (logs, CI)."""

    def describe(report: AttachReport) -> str:
        return f"{report.points} points read, {report.encoded} encoded, {report.unchanged} unchanged"

    if not sys.stderr.isatty():
        return attacher.run(on_progress=lambda report: print(f"progress: {describe(report)}", file=sys.stderr))
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=stderr) as bar:
        task = bar.add_task("reading points")
        return attacher.run(on_progress=lambda report: bar.update(task, description=describe(report)))


def attach(
    collection: Annotated[str, typer.Argument(help="The existing collection (or index) to add SPLARE vectors to.")],
    text_field: Annotated[
        str,
        typer.Option(
            "--text-field",
            envvar="SPLARE_TEXT_FIELD",
            help="Payload field holding each point's text; dots reach into objects (metadata.body).",
        ),
    ],
    doc_id_field: Annotated[
        str | None,
        typer.Option("--doc-id-field", help="Payload field naming each point's source document (for grouping)."),
    ] = None,
    sparse_name: Annotated[
        str | None,
        typer.Option("--sparse-name", help="Name of the sparse vector field to add (default: splare, or as attached)."),
    ] = None,
    state_key: Annotated[
        str | None,
        typer.Option(
            "--state-key",
            help="Payload key for splare-connect's state of each point, if the app already uses '_splare' "
            "(default: _splare, or as attached).",
        ),
    ] = None,
    allow_unnamed_vector: Annotated[
        bool,
        typer.Option(
            "--allow-unnamed-vector",
            help="Attach to a collection whose dense vector is unnamed: the app then reads it back as "
            "{'': [...]} instead of a list.",
        ),
    ] = False,
    backend: BackendOption = DEFAULT_BACKEND,
    url: UrlOption = None,
    data_dir: DataDirOption = None,
    timeout: TimeoutOption = None,
    backend_option: BackendOptionsOption = [],  # noqa: B006
    model: ModelOption = None,
    precision: PrecisionOption = Precision.AUTO,
    runtime: RuntimeOption = Runtime.AUTO,
    trust_remote_code: TrustRemoteCodeOption = False,
    idf: IdfOption = False,
    batch_size: BatchSizeOption = 32,
    max_chars: Annotated[
        int, typer.Option("--max-chars", min=1, help="Longest text in characters; points with longer ones are skipped.")
    ] = DEFAULT_LIMITS.max_text_chars,
    as_json: JsonOption = False,
) -> None:
    """Add a SPLARE sparse vector to every point of an existing collection; re-run to encode only what changed.

    Only the new vector and a '_splare' payload key are written: the application's
    points, ids, payload and other vectors stay as they are. A name the application
    already uses (the vector, the '_splare' key on any point, the 'splare_connect'
    metadata key) is refused before anything is written, and so is an unnamed dense
    vector unless --allow-unnamed-vector. Points whose text went away lose the SPLARE
    vector. With the embedded engine, COLLECTION is a Qdrant Edge shard directory under
    --data-dir (close it in the app first).
    """
    from dataclasses import replace

    from splare_connect.attach import Attacher
    from splare_connect.backends import AttachableBackend
    from splare_connect.backends.protocol import check_field_names, check_state_key

    try:
        check_field_names([f for f in (text_field, doc_id_field) if f is not None])
        if state_key is not None:
            check_state_key(state_key)
        store = open_backend(backend, url, data_dir, timeout, backend_option)
        try:
            if not isinstance(store, AttachableBackend):
                raise SplareError(f"the {backend!r} backend cannot attach to existing collections")
            # Reach the database before the model loads (seconds): a missing collection is said at once.
            if store.inspect_collection(collection) is None:
                raise SplareError(f"collection {collection!r} does not exist")
            attacher = Attacher(
                encoder := load_encoder(model, precision, trust_remote_code, runtime, lazy=True),
                store,
                collection,
                text_field=text_field,
                doc_id_field=doc_id_field,
                sparse_vector_name=sparse_name,
                idf=True if idf else None,  # absent: as attached before
                state_key=state_key,
                allow_unnamed_vector=allow_unnamed_vector,
                batch_size=batch_size,
                limits=replace(DEFAULT_LIMITS, max_text_chars=max_chars),
            )
            note_at_load = encoder.runtime_note
            report = run_with_progress(attacher)
            print_new_note(encoder, note_at_load)  # a fallback found when the model loaded mid-run
        finally:
            store.close()
    except SplareError as error:
        raise fail(error) from error
    for point, reason in report.skipped[:_SHOWN_SKIPS]:
        print_line("[yellow]skipped[/]", f"point {point}: {reason}")
    if len(report.skipped) > _SHOWN_SKIPS:
        print_line("[yellow]skipped[/]", f"{len(report.skipped) - _SHOWN_SKIPS} more points (--json lists them all)")
    if as_json:
        print_json(report.to_dict())
    else:
        stdout.print(
            f"{report.points} points: {report.encoded} encoded, {report.unchanged} unchanged, "
            f"{report.vanished} deleted meanwhile, {len(report.skipped)} skipped"
            + (f" ({report.cleared} of them lost their SPLARE vector)" if report.cleared else "")
            + f"; {report.seconds:.1f} s"
            + ("; added the sparse vector" if report.attached_now else ""),
            highlight=False,
            soft_wrap=True,
        )
    if report.skipped:
        raise typer.Exit(EXIT_SKIPPED)
