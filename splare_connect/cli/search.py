"""``search``: query a collection, as a table or JSON.

With ``--server URL`` the query goes to a running ``splare-connect serve`` (which holds
the model and the database), and this command loads neither: no torch, no database
client, an answer in a fraction of a second.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import typer
from rich.markup import escape

from splare_connect.backends.default import DEFAULT_BACKEND
from splare_connect.choices import HybridChoice, Precision, Runtime
from splare_connect.cli.common import (
    DATABASE_PANEL,
    TUNING_PANEL,
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
    format_features,
    load_encoder,
    open_early,
    opened_backend,
    print_json,
    print_line,
    stdout,
)
from splare_connect.errors import SplareError
from splare_connect.search_settings import NO_FUSION


def search(
    query: Annotated[str, typer.Argument(help="The query text.")],
    k: Annotated[int, typer.Option("--top-k", "-k", min=1, metavar="<n>", help="Number of results.")] = 10,
    filter_: Annotated[
        list[str],
        typer.Option(
            "--filter",
            "-f",
            metavar="<condition>",
            help="Metadata condition: key=value, key!=value, key>=number, 'key in a,b' (repeatable).",
        ),
    ] = [],  # noqa: B006
    hybrid: Annotated[
        HybridChoice | None,
        typer.Option(
            help="Fuse with dense vectors in the engine: rrf, dbsf or weighted (which ones a backend runs: "
            "splare-connect backends), or none for plain sparse. Default: the collection's setting, else none."
        ),
    ] = None,
    weights: Annotated[
        str | None,
        typer.Option(
            metavar="<sparse,dense>",
            help="Fusion weights, e.g. 1,0.5. Default: the collection's setting, else equal.",
            rich_help_panel=TUNING_PANEL,
        ),
    ] = None,
    rrf_k: Annotated[
        int | None,
        typer.Option(
            min=1, metavar="<n>", help="RRF's k. Default: the collection's, else 60.", rich_help_panel=TUNING_PANEL
        ),
    ] = None,
    query_top_k: Annotated[
        int | None,
        typer.Option(
            min=1,
            metavar="<n>",
            help="Query weights kept. Default: the collection's, else the model's.",
            rich_help_panel=TUNING_PANEL,
        ),
    ] = None,
    explain: Annotated[bool, typer.Option(help="Show the latent features behind each score.")] = False,
    documents: Annotated[bool, typer.Option("--documents", help="One result per document, not per chunk.")] = False,
    backend: BackendOption = DEFAULT_BACKEND,
    collection: Annotated[
        str | None,
        typer.Option(
            "--collection",
            "-c",
            envvar="SPLARE_COLLECTION",
            help="Collection or index name (default: splare; with --server, the server's --collection).",
            rich_help_panel=DATABASE_PANEL,
        ),
    ] = None,
    url: UrlOption = None,
    data_dir: DataDirOption = None,
    timeout: TimeoutOption = None,
    backend_option: BackendOptionsOption = [],  # noqa: B006
    model: ModelOption = None,
    precision: PrecisionOption = Precision.AUTO,
    runtime: RuntimeOption = Runtime.AUTO,
    static_queries: StaticQueriesOption = None,
    trust_remote_code: TrustRemoteCodeOption = False,
    as_json: JsonOption = False,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            envvar="SPLARE_SERVER",
            metavar="<url>",
            help="A running 'splare-connect serve' to ask instead of loading the model here (API key: "
            "SPLARE_API_KEY; --timeout: for the whole answer). Its database and model are used.",
        ),
    ] = None,
) -> None:
    """Search a collection."""
    from splare_connect.filters import parse_filters

    try:
        conditions = parse_filters(filter_)
        fusion_weights = None if weights is None else read_weights(weights)
    except SplareError as error:
        raise fail(error) from error
    fusion = None if hybrid is None else str(hybrid.value)
    tuning = {"weights": fusion_weights, "rrf_k": rrf_k, "query_top_k": query_top_k}
    if server:
        rows = _search_server(server, query, collection, k, filter_, fusion, explain, documents, timeout, tuning)
        _print_rows(rows, as_json)
        return
    collection = collection or "splare"
    from splare_connect.retriever import Retriever

    with opened_backend(backend, url, data_dir, timeout, backend_option) as store:
        spec = open_early(store, collection, must_exist=True)
        if fusion not in (None, NO_FUSION) and spec is not None and not spec.dense_dim:
            raise SplareError(f"collection {collection!r} has no dense vectors, so --hybrid is unavailable")
        # Lazy: with a static query table, a sparse search never loads the model at all.
        encoder = load_encoder(
            model, precision, trust_remote_code, runtime, lazy=static_queries is not None, static_queries=static_queries
        )
        retriever = Retriever(encoder, store, collection)
        if retriever.arithmetic_note:
            print_line("[dim]note:[/]", retriever.arithmetic_note)
        hits = retriever.search(
            query,
            k=k,
            filter=conditions,
            hybrid=fusion,
            explain=explain,
            group_by_document=documents,
            **tuning,  # type: ignore[arg-type]
        )
    _print_rows([_row(hit) for hit in hits], as_json)


def _search_server(
    server: str,
    query: str,
    collection: str | None,
    k: int,
    filters: Sequence[str],
    hybrid: str | None,
    explain: bool,
    documents: bool,
    timeout: float | None,
    tuning: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """The hits from a running service, as rows like :func:`_row`'s (features as ``[id, weight, label]``)."""
    from splare_connect.service.client import DEFAULT_TIMEOUT, ServiceClient

    try:
        client = ServiceClient(server, timeout=timeout or DEFAULT_TIMEOUT)
        hits = client.search(
            query,
            collection=collection,
            k=k,
            filter=filters,
            hybrid=hybrid,
            explain=explain,
            documents=documents,
            **tuning,
        )
    except SplareError as error:
        raise fail(error) from error
    rows = []
    for hit in hits:
        features = hit.get("features")
        rows.append(
            {
                "id": hit["id"],
                "doc_id": hit["doc_id"],
                "score": hit["score"],
                "text": hit.get("text"),
                "metadata": hit.get("metadata") or {},
                **(
                    {"features": [[f["feature"], f["weight"], f.get("label")] for f in features]}
                    if features is not None
                    else {}
                ),
            }
        )
    return rows


def read_weights(text: str) -> tuple[float, float]:
    """``"1,0.5"`` as ``(1.0, 0.5)``: two non-negative numbers, not both 0.

    Raises:
        ConfigError: Anything else, said in one line naming the option.
    """
    from splare_connect.search_settings import check_weights

    return check_weights(text.split(","), f"--weights {text!r}")


def _row(hit: Any) -> dict[str, Any]:
    """One hit as the JSON output shows it (``features`` only when asked for)."""
    return {
        "id": hit.id,
        "doc_id": hit.doc_id,
        "score": hit.score,
        "text": hit.text,
        "metadata": dict(hit.metadata),
        **({"features": [list(f) for f in hit.features]} if hit.features is not None else {}),
    }


def _print_rows(rows: Sequence[Mapping[str, Any]], as_json: bool) -> None:
    """The hits as JSON for scripts, or as a table."""
    if as_json:
        print_json(list(rows), default=str)
        return
    from rich.table import Table

    from splare_connect.terminal import printable

    table = Table("#", "score", "document", "text", show_lines=False)
    for rank, row in enumerate(rows, start=1):
        # Stored text and ids are data: markup escaped, so '[/]' in a record can't break the
        # table, and terminal controls shown as escapes, so an ESC in a record can't drive the terminal.
        snippet = escape(printable(" ".join((row.get("text") or "").split())[:100]))
        features = row.get("features")
        if features:
            snippet += "\n[dim]" + escape(_format_feature_rows(features[:6])) + "[/]"
        table.add_row(str(rank), f"{row['score']:.3f}", escape(printable(str(row["doc_id"]))), snippet)
    stdout.print(table)


def _format_feature_rows(features: Sequence[Sequence[Any]]) -> str:
    """``[feature, weight, label]`` rows on one line, as :func:`format_features` shows them."""
    from splare_connect.features.explanation import FeatureWeight

    return format_features([FeatureWeight(int(f[0]), float(f[1]), f[2]) for f in features])
