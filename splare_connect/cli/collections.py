"""``collections list | info | drop``."""

from __future__ import annotations

from typing import Annotated

import typer

from splare_connect.backends.default import DEFAULT_BACKEND
from splare_connect.choices import HybridChoice
from splare_connect.cli.common import (
    BackendOption,
    BackendOptionsOption,
    DataDirOption,
    JsonOption,
    TimeoutOption,
    UrlOption,
    fail,
    opened_backend,
    print_json,
    stdout,
)
from splare_connect.errors import SplareError
from splare_connect.terminal import printable

app = typer.Typer(help="List, inspect and drop collections.", no_args_is_help=True)


@app.command("list")
def collections_list(
    backend: BackendOption = DEFAULT_BACKEND,
    url: UrlOption = None,
    data_dir: DataDirOption = None,
    timeout: TimeoutOption = None,
    backend_option: BackendOptionsOption = [],  # noqa: B006
    as_json: JsonOption = False,
) -> None:
    """List collections."""
    with opened_backend(backend, url, data_dir, timeout, backend_option) as store:
        names = store.list_collections()
    if as_json:
        print_json(names)
    else:
        for name in names:
            stdout.print(printable(name), highlight=False, markup=False)


@app.command("info")
def collections_info(
    name: Annotated[str, typer.Argument(help="Collection name.")],
    backend: BackendOption = DEFAULT_BACKEND,
    url: UrlOption = None,
    data_dir: DataDirOption = None,
    timeout: TimeoutOption = None,
    backend_option: BackendOptionsOption = [],  # noqa: B006
    as_json: JsonOption = False,
) -> None:
    """Show a collection's encoder fingerprint, vectors and size."""
    with opened_backend(backend, url, data_dir, timeout, backend_option) as store:
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
            # The arithmetic the collection was created at (fp32 and bf16 share a vector space).
            "precision": spec.fingerprint.get("precision", "fp32"),
            # How it is searched by default, and where that choice came from.
            "search": spec.search.to_dict() if spec.search is not None and as_json else None,
        }
        if not as_json:
            info["search"] = (
                spec.search.describe() if spec.search is not None else "defaults (sparse, the model's top-k)"
            )
    if as_json:
        print_json(info)
    else:
        for key, value in info.items():
            stdout.print(printable(f"{key:15} {value}"), highlight=False, markup=False)


@app.command("settings")
def collections_settings(
    name: Annotated[str, typer.Argument(help="Collection name.")],
    hybrid: Annotated[
        HybridChoice | None, typer.Option(help="Default fusion (rrf, dbsf, weighted), or none for plain sparse.")
    ] = None,
    weights: Annotated[str | None, typer.Option(metavar="<sparse,dense>", help="Default fusion weights.")] = None,
    rrf_k: Annotated[int | None, typer.Option(min=1, metavar="<n>", help="Default RRF k.")] = None,
    query_top_k: Annotated[int | None, typer.Option(min=1, metavar="<n>", help="Default query weights kept.")] = None,
    reset: Annotated[bool, typer.Option("--reset", help="Back to the built-in defaults.")] = False,
    backend: BackendOption = DEFAULT_BACKEND,
    url: UrlOption = None,
    data_dir: DataDirOption = None,
    timeout: TimeoutOption = None,
    backend_option: BackendOptionsOption = [],  # noqa: B006
) -> None:
    """Keep default search settings with a collection; searches use them unless told otherwise."""
    from splare_connect.backends.settings import keep_search_settings
    from splare_connect.cli.search import read_weights
    from splare_connect.search_settings import SearchSettings

    with opened_backend(backend, url, data_dir, timeout, backend_option) as store:
        try:
            settings = None
            if not reset:
                settings = SearchSettings(
                    query_top_k=query_top_k,
                    hybrid=None if hybrid is None else str(hybrid.value),
                    weights=None if weights is None else read_weights(weights),
                    rrf_k=rrf_k,
                    source="set by hand (collections settings)",
                )
            spec = keep_search_settings(store, name, settings)
        except SplareError as error:
            raise fail(error) from error
    described = spec.search.describe() if spec.search is not None else "defaults"
    stdout.print(printable(f"{name}: {described}"), highlight=False, markup=False)


@app.command("drop")
def collections_drop(
    name: Annotated[str, typer.Argument(help="Collection name.")],
    yes: Annotated[bool, typer.Option("--yes", help="Don't ask for confirmation.")] = False,
    backend: BackendOption = DEFAULT_BACKEND,
    url: UrlOption = None,
    data_dir: DataDirOption = None,
    timeout: TimeoutOption = None,
    backend_option: BackendOptionsOption = [],  # noqa: B006
) -> None:
    """Delete a collection and everything in it (refused while another process uses an embedded one)."""
    if not yes and not typer.confirm(f"Drop collection {name!r} and all its points?"):
        raise typer.Exit(1)
    with opened_backend(backend, url, data_dir, timeout, backend_option) as store:
        # Listed, not described: a collection whose description is damaged can still be dropped.
        if name not in store.list_collections():
            raise SplareError(f"collection {name!r} does not exist")
        store.drop_collection(name)
    stdout.print(printable(f"dropped {name}"), highlight=False, markup=False)
