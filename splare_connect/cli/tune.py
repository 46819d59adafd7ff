"""``tune``: measure a collection's search settings on its own data, choose one, and keep it with ``--apply``."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from splare_connect.backends.default import DEFAULT_BACKEND
from splare_connect.choices import Precision, Runtime
from splare_connect.cli.common import (
    BackendOption,
    BackendOptionsOption,
    DataDirOption,
    JsonOption,
    ModelOption,
    PrecisionOption,
    RuntimeOption,
    StaticQueriesOption,
    TimeoutOption,
    TrustRemoteCodeOption,
    UrlOption,
    fail,
    load_encoder,
    open_early,
    opened_backend,
    print_json,
    print_line,
    stderr,
    stdout,
)
from splare_connect.errors import SplareError

if TYPE_CHECKING:
    from splare_connect.encoding.encoder import SplareEncoder
    from splare_connect.encoding.static_queries import StaticQueryEncoder


def tune_command(
    collection: Annotated[str, typer.Argument(help="The collection to tune.")],
    queries: Annotated[
        Path | None,
        typer.Option(
            metavar="<dir>",
            help="Labelled queries in the BEIR layout (queries/NAME.jsonl, qrels/NAME.tsv). "
            "Default: known-item queries made from the collection's own text.",
        ),
    ] = None,
    query_set: Annotated[list[str], typer.Option("--query-set", "-q", help="Query sets to use (default: all).")] = [],  # noqa: B006
    query_vectors: Annotated[
        Path | None,
        typer.Option(
            metavar="<file>",
            help="The app's own query vectors for its dense field --using, one JSON line per query: "
            '{"_id": ..., "vector": [...]} (an attached collection: hybrids fuse with the app\'s vectors).',
        ),
    ] = None,
    using: Annotated[
        str | None, typer.Option(metavar="<field>", help="The app's dense field --query-vectors are for.")
    ] = None,
    max_queries: Annotated[int, typer.Option(min=1, metavar="<n>", help="Queries per set at most (sampled).")] = 200,
    seed: Annotated[int, typer.Option(metavar="<n>", help="The sample's seed: the same queries each time.")] = 0,
    max_latency_ms: Annotated[
        float | None, typer.Option(min=0.0, metavar="<ms>", help="Choose only settings whose p99 search is this fast.")
    ] = None,
    min_gain: Annotated[
        float, typer.Option(min=0.0, metavar="<x>", help="nDCG@10 a choice must gain over the defaults.")
    ] = 0.002,
    time_budget: Annotated[
        float, typer.Option(min=1.0, metavar="<seconds>", help="Stop trying candidates after this long.")
    ] = 600.0,
    document_top_k: Annotated[
        list[int],
        typer.Option(
            min=1,
            metavar="<n>",
            help="Document weights to try keeping, measured on the stored vectors (repeatable; default: half "
            "and a quarter of the model's). Reported, not applied.",
        ),
    ] = [],  # noqa: B006
    skip_pruning: Annotated[bool, typer.Option("--skip-pruning", help="Don't measure document pruning.")] = False,
    static_queries: StaticQueriesOption = None,
    apply: Annotated[bool, typer.Option("--apply", help="Keep the chosen settings with the collection.")] = False,
    backend: BackendOption = DEFAULT_BACKEND,
    url: UrlOption = None,
    data_dir: DataDirOption = None,
    timeout: TimeoutOption = None,
    backend_option: BackendOptionsOption = [],  # noqa: B006
    model: ModelOption = None,
    precision: PrecisionOption = Precision.AUTO,
    runtime: RuntimeOption = Runtime.AUTO,
    trust_remote_code: TrustRemoteCodeOption = False,
    as_json: JsonOption = False,
) -> None:
    """Measure search settings on a collection's own data and choose one (--apply keeps it)."""
    from splare_connect.backends.discovery import describe_backend
    from splare_connect.backends.settings import keep_search_settings
    from splare_connect.retriever import Retriever
    from splare_connect.tuning.queries import known_item_queries, labelled_queries, sample
    from splare_connect.tuning.run import tune

    with opened_backend(backend, url, data_dir, timeout, backend_option) as store:
        try:
            open_early(store, collection, must_exist=True)
            if queries is not None:
                sets = [sample(s, max_queries, seed) for s in labelled_queries(queries, query_set or None)]
            else:
                sets = [known_item_queries(store, collection, count=max_queries, seed=seed)]
            encoder = load_encoder(model, precision, trust_remote_code, runtime)
            retriever = Retriever(encoder, store, collection)
            counted = sum(len(s.queries) for s in sets)
            print_line("tune:", f"{counted} queries in {len(sets)} set(s) on {collection!r}")

            def progress(done: int, total: int, label: str) -> None:
                if label != "done":
                    step = f"candidate {done + 1} of {total}: " if total > 1 else ""
                    stderr.print(f"progress: {step}{label}", highlight=False, markup=False)

            stored_k = encoder.config.document_top_k or 400
            pruned = [] if skip_pruning else (document_top_k or [stored_k // 2, stored_k // 4])

            report = tune(
                retriever,
                sets,
                describe_backend(backend).capabilities,
                max_latency_ms=max_latency_ms,
                min_gain=min_gain,
                time_budget_s=time_budget,
                progress=progress,
                query_dense=None if query_vectors is None else read_query_vectors(query_vectors),
                using=using,
                document_top_ks=pruned,
                static_queries=None if static_queries is None else _static_table(static_queries, encoder),
            )
            if apply:
                when = datetime.date.today().isoformat()
                keep_search_settings(store, collection, report.kept_settings(when))
        except SplareError as error:
            raise fail(error) from error
    if as_json:
        print_json({**report.to_dict(), "applied": apply})
        return
    _print_report(report, apply)


def _print_report(report: object, applied: bool) -> None:
    from rich.table import Table

    from splare_connect.tuning.run import TuneReport

    assert isinstance(report, TuneReport)
    table = Table("setting", "nDCG@10", "MRR@10", "R@100", "p50 ms", "p99 ms", title=f"tune {report.collection}")
    for measured in report.measured:
        mark = " (chosen)" if measured is report.chosen else (" (default)" if measured is report.default else "")
        table.add_row(
            measured.label() + mark,
            f"{measured.mean['nDCG@10']:.3f}",
            f"{measured.mean['MRR@10']:.3f}",
            f"{measured.mean['R@100']:.3f}",
            f"{measured.latency_ms[0]:.1f}",
            f"{measured.latency_ms[1]:.1f}",
        )
    stdout.print(table)
    if report.static_side:
        static = Table("static query side", "nDCG@10", "MRR@10", "R@100", "p50 ms", "p99 ms", title="reported")
        for measured in report.static_side:
            static.add_row(
                measured.label(),
                f"{measured.mean['nDCG@10']:.3f}",
                f"{measured.mean['MRR@10']:.3f}",
                f"{measured.mean['R@100']:.3f}",
                f"{measured.latency_ms[0]:.1f}",
                f"{measured.latency_ms[1]:.1f}",
            )
        stdout.print(static)
        encoding = ", ".join(f"{side} {ms:.2f} ms" for side, ms in report.encode_ms.items())
        stdout.print(f"query encoding per query (batched): {encoding}", highlight=False, markup=False)
    if report.pruning:
        pruning = Table("document weights kept", "nDCG@10", "MRR@10", "R@100", "stored weights", title="plain sparse")
        for result in report.pruning:
            pruning.add_row(
                "as stored" if result.document_top_k is None else str(result.document_top_k),
                f"{result.mean['nDCG@10']:.3f}",
                f"{result.mean['MRR@10']:.3f}",
                f"{result.mean['R@100']:.3f}",
                f"{result.stored_weights:,}",
            )
        stdout.print(pruning)
    for note in report.notes:
        stdout.print(f"note: {note}", highlight=False, markup=False)
    verdict = "kept with the collection" if applied else "not kept (--apply keeps it)"
    stdout.print(f"chosen: {report.chosen.label()}; {verdict}; {report.seconds:.0f} s", highlight=False, markup=False)


def read_query_vectors(path: Path) -> dict[str, list[float]]:
    """``{"_id": ..., "vector": [...]}`` lines as vectors by query id.

    Raises:
        ConfigError: The file can't be read, or a line is not such a record (named by line).
    """
    import json

    from splare_connect.errors import ConfigError

    vectors: dict[str, list[float]] = {}
    try:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    vectors[str(record["_id"])] = [float(v) for v in record["vector"]]
                except (ValueError, KeyError, TypeError):
                    raise ConfigError(f'{path}:{number}: expected {{"_id": ..., "vector": [numbers]}}') from None
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}") from None
    return vectors


def _static_table(directory: Path, encoder: SplareEncoder) -> StaticQueryEncoder:
    """The static query table, checked to be built for ``encoder``'s model (as searches check it)."""
    from splare_connect.encoding.static_queries import StaticQueryEncoder

    table = StaticQueryEncoder.load(directory)
    encoder.check_static_queries(table)
    return table
