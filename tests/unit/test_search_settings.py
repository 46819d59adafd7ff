"""A collection's search settings: kept with it, used by every search path, overridden by any argument.

On the default backend's real engine, with the tiny real model: ``Retriever.search``,
``splare-connect search`` (and ``collections settings`` / ``info``) and ``serve`` search
as the collection's settings say when a call leaves an option out, and as the call says
when it does not.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from splare_connect.backends import CollectionSpec, load_backend
from splare_connect.backends.default import DEFAULT_BACKEND
from splare_connect.backends.settings import keep_search_settings
from splare_connect.cli import app
from splare_connect.errors import CollectionNotFoundError, ConfigError
from splare_connect.retriever import Retriever
from splare_connect.search_settings import SearchSettings
from splare_connect.testing.fixtures import clean_environment
from splare_connect.testing.service import API_KEY, start_server, stop_server

QUERY = "copy files to a directory"


def ids(hits: list[Any]) -> list[tuple[str, float]]:
    return [(hit.id, round(hit.score, 5)) for hit in hits]


@pytest.fixture
def collection(ingest_examples: Callable[[int], Path]) -> Path:
    """30 example man pages with dense vectors in the default backend under ``tmp_path/data``."""
    return ingest_examples(30)


def test_settings_validate_and_round_trip() -> None:
    settings = SearchSettings(
        query_top_k=20, hybrid="dbsf", weights=(1, 0.5), rrf_k=30, source="tune", measured={"a": 1}
    )
    assert SearchSettings.from_dict(json.loads(json.dumps(settings.to_dict()))) == settings
    assert settings.describe() == "query top-k 20, hybrid dbsf, weights 1/0.5, RRF k 30 (tune)"
    for bad in ({"query_top_k": 0}, {"hybrid": "max"}, {"weights": (0, 0)}, {"weights": (-1, 1)}, {"rrf_k": True}):
        with pytest.raises(ConfigError, match="search setting"):
            SearchSettings(**bad)  # type: ignore[arg-type]
    spec = CollectionSpec("c", sparse_dim=8, fingerprint={"digest": "d"}, search=settings)
    assert CollectionSpec.from_dict("c", spec.to_dict()) == spec
    damaged = {**spec.to_dict(), "search": {"hybrid": "nonsense"}}
    assert CollectionSpec.parse_stored("c", damaged) == CollectionSpec("c", sparse_dim=8, fingerprint={"digest": "d"})


def test_the_encoder_prunes_queries_at_the_top_k_asked(tiny_encoder: Any) -> None:
    full = tiny_encoder.encode([QUERY], role="query", top_k=50).sparse[0]
    short = tiny_encoder.encode([QUERY], role="query", top_k=3).sparse[0]
    assert short.nnz == 3 < full.nnz and short == full.top_k(3)
    assert tiny_encoder.encode([QUERY], role="query").sparse[0] == full.top_k(tiny_encoder.config.query_top_k)
    with pytest.raises(ConfigError, match="top_k"):
        tiny_encoder.encode([QUERY], role="query", top_k=0)


def test_the_retriever_searches_as_the_collection_says_unless_told_otherwise(
    collection: Path, tiny_encoder: Any
) -> None:
    backend = load_backend(DEFAULT_BACKEND, data_dir=collection)
    try:
        plain = ids(Retriever(tiny_encoder, backend, "man").search(QUERY, k=8))
        fused = ids(Retriever(tiny_encoder, backend, "man").search(QUERY, k=8, hybrid="rrf", rrf_k=5, weights=(1, 2)))
        short = ids(Retriever(tiny_encoder, backend, "man").search(QUERY, k=8, query_top_k=2))
        assert fused != plain and short != plain  # the settings change the results

        keep_search_settings(backend, "man", SearchSettings(hybrid="rrf", rrf_k=5, weights=(1.0, 2.0)))
        retriever = Retriever(tiny_encoder, backend, "man")
        assert ids(retriever.search(QUERY, k=8)) == fused
        assert ids(retriever.search(QUERY, k=8, hybrid="none")) == plain  # an argument wins
        assert ids(retriever.search_batch([QUERY], k=8)[0]) == fused

        keep_search_settings(backend, "man", SearchSettings(query_top_k=2))
        retriever = Retriever(tiny_encoder, backend, "man")
        assert ids(retriever.search(QUERY, k=8)) == short
        assert ids(retriever.search(QUERY, k=8, query_top_k=tiny_encoder.config.query_top_k)) == plain
        assert retriever.spec.fingerprint == tiny_encoder.fingerprint  # the guard compares what it did

        keep_search_settings(backend, "man", None)
        assert ids(Retriever(tiny_encoder, backend, "man").search(QUERY, k=8)) == plain
        with pytest.raises(CollectionNotFoundError):
            keep_search_settings(backend, "nowhere", SearchSettings())
    finally:
        backend.close()


def _search(env: dict[str, str], *options: str) -> list[tuple[str, float]]:
    result = CliRunner().invoke(app, ["search", QUERY, "-c", "man", "-k", "8", "--json", *options], env=env)
    assert result.exit_code == 0, result.output
    return [(hit["id"], round(hit["score"], 5)) for hit in json.loads(result.stdout)]


def test_the_cli_keeps_shows_and_uses_the_settings(collection: Path, tiny_model_dir: Path) -> None:
    env = {**clean_environment(), "SPLARE_MODEL": str(tiny_model_dir), "SPLARE_DATA_DIR": str(collection)}
    env.update(SPLARE_RUNTIME="torch", SPLARE_PRECISION="fp32")
    runner = CliRunner()
    plain = _search(env)
    fused = _search(env, "--hybrid", "dbsf")
    assert fused != plain

    kept = runner.invoke(app, ["collections", "settings", "man", "--hybrid", "dbsf"], env=env)
    assert kept.exit_code == 0 and "man: sparse" not in kept.stdout and "hybrid dbsf" in kept.stdout, kept.output
    info = runner.invoke(app, ["collections", "info", "man", "--json"], env=env)
    assert json.loads(info.stdout)["search"]["hybrid"] == "dbsf", info.output
    assert _search(env) == fused
    assert _search(env, "--hybrid", "none") == plain

    refused = runner.invoke(app, ["search", QUERY, "-c", "man", "--weights", "1,x"], env=env)
    assert refused.exit_code == 1 and "--weights '1,x'" in refused.stderr
    reset = runner.invoke(app, ["collections", "settings", "man", "--reset"], env=env)
    assert reset.exit_code == 0 and _search(env) == plain


def test_serve_searches_as_the_collection_says_unless_the_request_says_otherwise(
    collection: Path, tiny_encoder: Any, tiny_model_dir: Path, tmp_path: Path
) -> None:
    backend = load_backend(DEFAULT_BACKEND, data_dir=collection)
    try:
        retriever = Retriever(tiny_encoder, backend, "man")
        plain = ids(retriever.search(QUERY, k=8))
        fused = ids(retriever.search(QUERY, k=8, hybrid="rrf", rrf_k=3, query_top_k=4))
        keep_search_settings(backend, "man", SearchSettings(hybrid="rrf", rrf_k=3, query_top_k=4))
    finally:
        backend.close()  # the embedded engine is one process's at a time: the server's now
    server = start_server(tiny_model_dir, tmp_path / "server.log", "--data-dir", str(collection), "--collection", "man")
    try:

        def served(**body: Any) -> list[tuple[str, float]]:
            response = httpx.post(
                server.url + "/search",
                json={"query": QUERY, "k": 8, **body},
                headers={"Authorization": f"Bearer {API_KEY}"},
                timeout=60,
            )
            assert response.status_code == 200, response.text
            return [(hit["id"], round(hit["score"], 5)) for hit in response.json()]

        # Fused scores tie (RRF ranks), and ties may come in any order between processes.
        assert sorted(served()) == sorted(fused)
        assert sorted(served(hybrid="none", query_top_k=tiny_encoder.config.query_top_k)) == sorted(plain)
    finally:
        stop_server(server)


def test_a_kept_hybrid_fuses_only_where_a_dense_vector_exists() -> None:
    """One rule for every search path: the kept fusion needs the caller's vector or the collection's own."""
    kept = SearchSettings(hybrid="dbsf", using="openai")
    assert kept.resolve(None, None, None, None, dense_given=False, own_dense=True).fusion == "dbsf"
    assert kept.resolve(None, None, None, None, dense_given=True, own_dense=False).fusion == "dbsf"
    assert kept.resolve(None, None, None, None, dense_given=False, own_dense=False).fusion is None  # sparse
    assert kept.resolve("none", None, None, None, dense_given=True, own_dense=True).fusion is None
    assert SearchSettings().resolve(None, None, None, None, dense_given=True, own_dense=False).fusion == "rrf"
    with pytest.raises(ConfigError, match="query_top_k"):
        SearchSettings().resolve(None, None, None, 0, dense_given=False, own_dense=True)
