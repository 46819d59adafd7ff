"""``search``: query a collection, as a table or JSON."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape

from splare_connect.choices import Fusion, Precision, Runtime
from splare_connect.cli.common import (
    BackendOption,
    BackendOptionsOption,
    CollectionOption,
    DataDirOption,
    JsonOption,
    ModelOption,
    PrecisionOption,
    RuntimeOption,
    TimeoutOption,
    TrustRemoteCodeOption,
    UrlOption,
    fail,
    format_features,
    load_encoder,
    open_early,
    opened_backend,
    stdout,
)
from splare_connect.errors import SplareError


def search(
    query: Annotated[str, typer.Argument(help="The query text.")],
    k: Annotated[int, typer.Option("--k", "-k", min=1, help="Number of results.")] = 10,
    filter_: Annotated[
        list[str],
        typer.Option("--filter", "-f", help="Metadata condition: key=value, key!=value, key>=number, 'key in a,b'."),
    ] = [],  # noqa: B006
    hybrid: Annotated[Fusion | None, typer.Option(help="Fuse with dense vectors: rrf or dbsf.")] = None,
    explain: Annotated[bool, typer.Option(help="Show the latent features behind each score.")] = False,
    documents: Annotated[bool, typer.Option("--documents", help="One result per document, not per chunk.")] = False,
    backend: BackendOption = "qdrant",
    collection: CollectionOption = "splare",
    url: UrlOption = None,
    data_dir: DataDirOption = None,
    timeout: TimeoutOption = None,
    backend_option: BackendOptionsOption = [],  # noqa: B006
    model: ModelOption = None,
    precision: PrecisionOption = Precision.FP32,
    runtime: RuntimeOption = Runtime.TORCH,
    trust_remote_code: TrustRemoteCodeOption = False,
    as_json: JsonOption = False,
) -> None:
    """Search a collection."""
    from splare_connect.filters import parse_filters
    from splare_connect.retriever import Retriever

    try:
        conditions = parse_filters(filter_)
    except SplareError as error:
        raise fail(error) from error
    with opened_backend(backend, url, data_dir, timeout, backend_option) as store:
        spec = open_early(store, collection, must_exist=True)
        if hybrid is not None and spec is not None and not spec.dense_dim:
            raise SplareError(f"collection {collection!r} has no dense vectors, so --hybrid is unavailable")
        retriever = Retriever(load_encoder(model, precision, trust_remote_code, runtime), store, collection)
        hits = retriever.search(
            query,
            k=k,
            filter=conditions,
            hybrid=hybrid,
            explain=explain,
            group_by_document=documents,
        )
    if as_json:
        rows = [
            {
                "id": h.id,
                "doc_id": h.doc_id,
                "score": h.score,
                "text": h.text,
                "metadata": dict(h.metadata),
                **({"features": [list(f) for f in h.features]} if h.features is not None else {}),
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
            snippet += "\n[dim]" + escape(format_features(hit.features[:6])) + "[/]"
        table.add_row(str(rank), f"{hit.score:.3f}", escape(hit.doc_id), snippet)
    stdout.print(table)
