"""The evaluation harness on a tiny BEIR dataset built from real man pages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from splare_connect import ConfigError
from splare_connect.evaluation import evaluate, load_beir
from splare_connect.evaluation.systems import Bm25, dbsf, rrf, strict_ranking


def test_tied_scores_are_ranked_one_way_for_every_metric() -> None:
    """trec_eval (nDCG) and the RR@10 provider break ties differently: the relevant document
    tied for first was second for nDCG@10 (0.631) and first for RR@10 (1.0)."""
    import ir_measures

    from splare_connect.evaluation.run import METRIC_NAMES

    run = {"q": {"z": 1.0, "a": 1.0, "b": 0.5}, "p": {"x": 2.0, "y": 1.0}}
    strict = strict_ranking(run)
    assert list(strict["q"]) == ["a", "z", "b"] and strict["q"]["a"] > strict["q"]["z"] > strict["q"]["b"]
    assert list(strict["p"]) == ["x", "y"]
    metrics = [ir_measures.parse_measure(name) for name in METRIC_NAMES]
    scored = [ir_measures.ScoredDoc(q, d, s) for q, docs in strict.items() for d, s in docs.items()]
    scores = ir_measures.calc_aggregate(metrics, [ir_measures.Qrel("q", "a", 1), ir_measures.Qrel("p", "y", 1)], scored)
    by_name = {str(measure): value for measure, value in scores.items()}
    assert by_name["RR@10"] == pytest.approx((1 + 1 / 2) / 2)
    assert by_name["nDCG@10"] == pytest.approx((1 + 1 / np.log2(3)) / 2)


def test_rrf_orders_equal_fused_scores_by_document_id() -> None:
    fused = rrf([{"q": {"b": 2.0, "a": 1.0}}, {"q": {"a": 2.0, "b": 1.0}}], k=60)
    assert list(fused["q"]) == ["a", "b"] and fused["q"]["a"] == fused["q"]["b"]


def test_rrf_adds_reciprocal_ranks() -> None:
    fused = rrf([{"q": {"a": 9.0, "b": 5.0}}, {"q": {"b": 0.9, "c": 0.1}}], k=60)
    assert fused["q"]["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert fused["q"]["a"] == pytest.approx(1 / 61) and fused["q"]["c"] == pytest.approx(1 / 62)
    assert list(fused["q"]) == ["b", "a", "c"]


def test_dbsf_maps_a_lone_or_flat_run_to_one_half() -> None:
    fused = dbsf([{"q": {"a": 3.0}}, {"q": {"a": 0.2, "b": 0.2}}])
    assert fused["q"] == {"a": 1.0, "b": 0.5}
    # Three equal scores whose float mean is not exactly 0.1: still flat (as in Qdrant's server).
    assert dbsf([{"q": {"a": 0.1, "b": 0.1, "c": 0.1}}])["q"] == {"a": 0.5, "b": 0.5, "c": 0.5}


def test_a_hybrid_asked_for_alone_is_scored(tiny_encoder, tiny_dataset: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dataset = load_beir(tiny_dataset)
    alone = evaluate(tiny_encoder, dataset, systems=("hybrid-dbsf",), cache_dir=tmp_path / "cache", doc_pruning=())
    everything = evaluate(tiny_encoder, dataset, cache_dir=tmp_path / "cache", doc_pruning=())
    assert set(alone.scores["en-dev"]) == {"hybrid-dbsf"}
    assert alone.scores["en-dev"]["hybrid-dbsf"] == everything.scores["en-dev"]["hybrid-dbsf"]


def test_bm25_finds_a_document_from_its_own_words(example_records: list[dict]) -> None:
    texts = [r["text"] for r in example_records[:50]]
    ids = [r["id"] for r in example_records[:50]]
    run = Bm25(texts, ids).run([texts[7][:200]], ["q"], k=5)
    assert next(iter(run["q"])) == ids[7]


def test_evaluate_reports_every_system_and_caches_the_corpus(tiny_encoder, tiny_dataset: Path, tmp_path: Path) -> None:
    dataset = load_beir(tiny_dataset)
    first = evaluate(tiny_encoder, dataset, cache_dir=tmp_path / "cache", doc_pruning=(10,))
    scores = first.scores["en-dev"]
    assert set(scores) == {"sparse", "sparse@10", "dense", "hybrid", "hybrid-dbsf", "bm25"}
    assert all(0.0 <= value <= 1.0 for system in scores.values() for value in system.values())
    assert scores["bm25"]["R@100"] == 1.0  # 24 documents: everything is within the top 100
    assert first.sparsity["document_nnz_mean@10"] <= 10 and first.timing["corpus_from_cache"] == 0.0
    second = evaluate(tiny_encoder, dataset, cache_dir=tmp_path / "cache", doc_pruning=(10,))
    assert second.timing["corpus_from_cache"] == 1.0 and second.scores == first.scores
    assert json.loads(json.dumps(second.to_dict()))["model"] == "tiny"


def test_dataset_errors_name_what_is_missing(tmp_path: Path, tiny_dataset: Path) -> None:
    with pytest.raises(ConfigError, match=r"corpus\.jsonl is missing"):
        load_beir(tmp_path)
    with pytest.raises(ConfigError, match=r"no query set \['xx-dev'\]"):
        load_beir(tiny_dataset, ["xx-dev"])


def test_a_baseline_encoder_joins_the_same_table(tiny_encoder, tiny_dataset: Path, tmp_path: Path) -> None:
    dataset = load_beir(tiny_dataset)
    # The encoder as its own baseline: its baseline rows must repeat its own rows exactly.
    result = evaluate(tiny_encoder, dataset, cache_dir=tmp_path / "cache", doc_pruning=(), baseline=tiny_encoder)
    scores = result.scores["en-dev"]
    assert set(scores) == {"sparse", "dense", "hybrid", "hybrid-dbsf", "bm25", "baseline-sparse", "baseline-dense"}
    assert scores["baseline-sparse"] == scores["sparse"] and scores["baseline-dense"] == scores["dense"]
    assert result.to_dict()["baseline"] == {"model": "tiny", "fingerprint": dict(tiny_encoder.fingerprint)}
