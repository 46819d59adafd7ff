"""``tune``: measured on the collection as stored, on the default backend's real engine, with the tiny real model.

The quality figures of the tiny model mean nothing; what is tested is the machinery: the
candidates follow the engine's capabilities, the metrics are the textbook ones, the same
seed gives the same quality, nothing is left behind, and ``--apply`` changes what
``search`` does while an explicit option still wins.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from splare_connect.backends import load_backend
from splare_connect.backends.default import DEFAULT_BACKEND
from splare_connect.backends.descriptor import Capabilities
from splare_connect.choices import Fusion
from splare_connect.cli import app
from splare_connect.retriever import Retriever
from splare_connect.testing.fixtures import clean_environment
from splare_connect.testing.service import API_KEY, start_server, stop_server
from splare_connect.tuning.candidates import hybrid_candidates, sparse_candidates
from splare_connect.tuning.metrics import score_ranking
from splare_connect.tuning.queries import held_out, known_item_queries, labelled_queries


def test_metrics_are_the_textbook_ones() -> None:
    scores = score_ranking(["a", "b", "c"], {"b": 2, "z": 1})
    ideal = 2 / math.log2(2) + 1 / math.log2(3)
    assert scores["nDCG@10"] == pytest.approx((2 / math.log2(3)) / ideal)
    assert scores["MRR@10"] == 0.5 and scores["R@100"] == 0.5
    assert score_ranking([], {"a": 1}) == {"nDCG@10": 0.0, "MRR@10": 0.0, "R@100": 0.0}


def test_candidates_follow_what_the_engine_runs() -> None:
    assert [c.query_top_k for c in sparse_candidates(40)] == [40, 20, 80]
    qdrant_like = Capabilities(fusions=frozenset({Fusion.RRF, Fusion.DBSF}), weighted_fusions=frozenset({Fusion.RRF}))
    tried = hybrid_candidates(40, qdrant_like)
    assert {(c.hybrid, c.weights) for c in tried if c.hybrid == "dbsf"} == {("dbsf", (1.0, 1.0))}
    assert len([c for c in tried if c.hybrid == "rrf"]) == 6 and all(c.query_top_k == 40 for c in tried)
    milvus_like = Capabilities(
        fusions=frozenset({Fusion.RRF, Fusion.WEIGHTED}), weighted_fusions=frozenset({Fusion.WEIGHTED})
    )
    tried = hybrid_candidates(40, milvus_like)
    assert {c.weights for c in tried if c.hybrid == "rrf"} == {(1.0, 1.0)} and "dbsf" not in {c.hybrid for c in tried}


@pytest.fixture
def collection(ingest_examples: Callable[[int], Path]) -> Path:
    """40 example man pages with dense vectors and text, in the default backend under ``tmp_path/data``."""
    return ingest_examples(40)


@pytest.fixture
def labelled(tmp_path: Path, example_records: list[dict]) -> Path:
    """Two query sets asking for pages by their title words."""
    root = tmp_path / "queries"
    (root / "queries").mkdir(parents=True)
    (root / "qrels").mkdir()
    for name, records in (("en-dev", example_records[:20]), ("de-dev", example_records[20:40])):
        with (root / "queries" / f"{name}.jsonl").open("w") as out:
            for r in records:
                out.write(json.dumps({"_id": f"q:{r['id']}", "text": r["text"][:60]}) + "\n")
        (root / "qrels" / f"{name}.tsv").write_text(
            "query-id\tcorpus-id\tscore\n" + "".join(f"q:{r['id']}\t{r['id']}\t1\n" for r in records)
        )
    return root


def test_queries_are_the_users_or_known_items_the_same_each_time(collection: Path, labelled: Path) -> None:
    sets = labelled_queries(labelled)
    assert [s.name for s in sets] == ["de-dev", "en-dev"] and all(len(s.queries) == 20 for s in sets)
    first, second = held_out(sets[0], seed=3)
    assert len(first.queries) == len(second.queries) == 10 and not set(first.queries) & set(second.queries)
    backend = load_backend(DEFAULT_BACKEND, data_dir=collection)
    try:
        known = known_item_queries(backend, "man", count=12, seed=1)
        assert known == known_item_queries(backend, "man", count=12, seed=1) and known.known_item
        assert len(known.queries) == 12
        for query_id, text in known.queries.items():
            [doc_id] = known.qrels[query_id]
            assert 3 <= len(text.split()) <= 16 and query_id == f"known:{doc_id}"
    finally:
        backend.close()


def _run(env: dict[str, str], *args: str) -> Any:
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result


QUESTION = "copy files to a directory"


def _search(env: dict[str, str], *options: str) -> list[tuple[str, float]]:
    result = _run(env, "search", QUESTION, "-c", "man", "-k", "8", "--json", *options)
    return [(hit["id"], round(hit["score"], 5)) for hit in json.loads(result.stdout)]


def test_tune_measures_chooses_and_apply_keeps_the_choice(
    collection: Path, labelled: Path, tiny_model_dir: Path, tiny_encoder: Any
) -> None:
    env = {**clean_environment(), "SPLARE_MODEL": str(tiny_model_dir), "SPLARE_DATA_DIR": str(collection)}
    env.update(SPLARE_RUNTIME="torch", SPLARE_PRECISION="fp32")
    backend = load_backend(DEFAULT_BACKEND, data_dir=collection)
    try:
        before = (backend.list_collections(), backend.count("man"), backend.describe_collection("man"))
    finally:
        backend.close()

    measured = json.loads(_run(env, "tune", "man", "--queries", str(labelled), "--json").stdout)
    again = json.loads(_run(env, "tune", "man", "--queries", str(labelled), "--json").stdout)
    assert [c["mean"] for c in measured["candidates"]] == [c["mean"] for c in again["candidates"]]  # same seed
    labels = [c["label"] for c in measured["candidates"]]
    assert labels[0] == "query top-k 10, sparse" == measured["default"]["label"]  # the tiny model's top-k
    assert any("hybrid dbsf" in label for label in labels) and any("RRF k 20" in label for label in labels)
    assert set(measured["chosen"]["scores"]) == {"de-dev", "en-dev"} and not measured["applied"]
    best = max(c["mean"]["nDCG@10"] for c in measured["candidates"])
    assert measured["chosen"]["mean"]["nDCG@10"] in (best, measured["default"]["mean"]["nDCG@10"])

    # Document pruning, measured in memory on the stored vectors: as stored, it scores what the engine
    # scored for plain sparse at the same query top-k; pruned, fewer weights are kept.
    pruning = measured["document_pruning"]
    assert [p["document_top_k"] for p in pruning] == [None, 15, 7]  # the tiny model keeps 30 per document
    best_sparse = max(
        (c for c in measured["candidates"] if c["settings"]["hybrid"] == "none"), key=lambda c: c["mean"]["nDCG@10"]
    )
    assert pruning[0]["mean"] == pytest.approx(best_sparse["mean"], abs=1e-9)
    assert pruning[0]["stored_weights"] > pruning[1]["stored_weights"] > pruning[2]["stored_weights"]

    backend = load_backend(DEFAULT_BACKEND, data_dir=collection)
    try:  # measuring left nothing behind
        assert (backend.list_collections(), backend.count("man"), backend.describe_collection("man")) == before
    finally:
        backend.close()

    plain = _search(env)
    applied = json.loads(_run(env, "tune", "man", "--queries", str(labelled), "--apply", "--json").stdout)
    chosen = applied["chosen"]["settings"]
    info = json.loads(_run(env, "collections", "info", "man", "--json").stdout)["search"]
    assert {k: info[k] for k in chosen} == chosen and info["source"].startswith("tune, ")
    explicit = ["--hybrid", chosen["hybrid"] or "none", "--query-top-k", str(chosen["query_top_k"])]
    explicit += ["--weights", ",".join(map(str, chosen["weights"]))] if chosen["weights"] else []
    explicit += ["--rrf-k", str(chosen["rrf_k"])] if chosen["rrf_k"] else []
    assert _search(env) == _search(env, *explicit)
    assert _search(env, "--hybrid", "none", "--query-top-k", "10") == plain  # an explicit option still wins

    # The Retriever and serve read the same kept settings.
    options = {key: (tuple(value) if key == "weights" and value else value) for key, value in chosen.items()}
    options = {key: value for key, value in options.items() if key != "using"}
    options["hybrid"] = options["hybrid"] or "none"
    backend = load_backend(DEFAULT_BACKEND, data_dir=collection)
    try:
        retriever = Retriever(tiny_encoder, backend, "man")
        kept = [(h.id, round(h.score, 5)) for h in retriever.search(QUESTION, k=8)]
        assert kept == [(h.id, round(h.score, 5)) for h in retriever.search(QUESTION, k=8, **options)]
    finally:
        backend.close()
    server = start_server(tiny_model_dir, collection.parent / "server.log", "--data-dir", str(collection), "-c", "man")
    try:
        served = httpx.post(
            server.url + "/search",
            json={"query": QUESTION, "k": 8},
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=60,
        )
        assert served.status_code == 200, served.text
        assert sorted((h["id"], round(h["score"], 5)) for h in served.json()) == sorted(kept)
    finally:
        stop_server(server)


def test_known_item_mode_says_what_it_measured(collection: Path, tiny_model_dir: Path) -> None:
    env = {**clean_environment(), "SPLARE_MODEL": str(tiny_model_dir), "SPLARE_DATA_DIR": str(collection)}
    env.update(SPLARE_RUNTIME="torch", SPLARE_PRECISION="fp32")
    report = json.loads(_run(env, "tune", "man", "--max-queries", "15", "--json").stdout)
    assert report["known_item"] and report["queries"] == {"known-item": 15}
    assert any("known-item queries" in note for note in report["notes"])
    budget = json.loads(_run(env, "tune", "man", "--max-queries", "5", "--max-latency-ms", "0", "--json").stdout)
    assert budget["chosen"]["label"] == budget["default"]["label"]
    assert any("latency budget" in note for note in budget["notes"])


def test_a_static_query_side_is_measured_and_reported(collection: Path, labelled: Path, tiny_encoder: Any) -> None:
    from splare_connect.backends.discovery import describe_backend
    from splare_connect.retriever import Retriever
    from splare_connect.training.static_queries import teacher_data, untrained_table
    from splare_connect.tuning.run import tune

    texts = [text for s in labelled_queries(labelled) for text in s.queries.values()]
    table = untrained_table(tiny_encoder, teacher_data(tiny_encoder, texts))
    backend = load_backend(DEFAULT_BACKEND, data_dir=collection)
    try:
        retriever = Retriever(tiny_encoder, backend, "man")
        report = tune(
            retriever, labelled_queries(labelled), describe_backend(DEFAULT_BACKEND).capabilities, static_queries=table
        )
    finally:
        backend.close()
    assert [m.settings.query_top_k for m in report.static_side] == [10, 5, 20]
    assert set(report.encode_ms) == {"model", "static"}
    assert report.chosen.settings in [m.settings for m in report.measured]  # the static side is not chosen
    assert any("static query side is reported" in note for note in report.notes)
    assert report.to_dict()["static_query_side"][0]["settings"]["query_top_k"] == 10
