"""``tune`` on a collection attached to an app's own Qdrant points, with the app's own dense vectors.

The app's field ``openai`` holds a vector per point; its query vectors here are its own
documents' vectors, so fusing with them can only help, and ``tune`` must find a hybrid
with them and keep it naming the field. A later search with the app's query vector then
fuses as kept; one without it searches sparse (the setting needs the app's vector).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qdrant_attach_app import App, app_vector

from splare_connect.attach import Attacher
from splare_connect.backends.settings import keep_search_settings
from splare_connect.retriever import Retriever
from splare_connect.tuning.queries import QuerySet
from splare_connect.tuning.run import tune
from splare_connect_qdrant import BACKEND


def test_tune_fuses_with_the_apps_own_vectors_and_keeps_the_field(
    tmp_path: Path, tiny_encoder: Any, example_records: list[dict]
) -> None:
    records = example_records[:30]
    application = App("edge", tmp_path)
    application.create(records)
    backend = application.backend()
    try:
        Attacher(tiny_encoder, backend, "kb", text_field="page_content", doc_id_field="metadata.source").run()
        queries = QuerySet("app", {f"q{i}": r["title"] + " manual page" for i, r in enumerate(records)}, {})
        queries = QuerySet("app", queries.queries, {f"q{i}": {r["id"]: 1} for i, r in enumerate(records)})
        vectors = {f"q{i}": app_vector(i) for i in range(len(records))}  # the app's vector for each answer
        retriever = Retriever(tiny_encoder, backend, "kb")
        report = tune(retriever, [queries], BACKEND.capabilities, query_dense=vectors, using="openai")
        assert any(m.settings.fusion is not None for m in report.measured)
        assert report.chosen.settings.fusion is not None  # the app's vectors find every answer
        assert report.chosen.mean["nDCG@10"] > report.default.mean["nDCG@10"]

        kept = keep_search_settings(backend, "kb", report.kept_settings("today"))
        assert kept.search is not None and kept.search.using == "openai"
        retriever = Retriever(tiny_encoder, backend, "kb")
        question = queries.queries["q3"]
        chosen = report.chosen.settings
        fused = retriever.search(question, k=5, dense=app_vector(3))
        explicit = retriever.search(
            question,
            k=5,
            dense=app_vector(3),
            using="openai",
            hybrid=chosen.hybrid,
            weights=chosen.weights,
            rrf_k=chosen.rrf_k,
            query_top_k=chosen.query_top_k,
        )
        assert [h.id for h in fused] == [h.id for h in explicit]
        sparse = retriever.search(question, k=5)  # no app vector: the hybrid setting can't apply
        assert [h.id for h in sparse] == [
            h.id for h in retriever.search(question, k=5, hybrid="none", query_top_k=chosen.query_top_k)
        ]
    finally:
        backend.close()
