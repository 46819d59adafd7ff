"""Attaching SPLARE vectors to collections another application made, on the real Qdrant engines.

The "application" writes its collection with the engine's own API, as a RAG stack
does: a named dense vector ``openai``, a payload of ``page_content`` + ``metadata``,
its own point ids (integers and UUIDs). Every test then checks that nothing of the
app's changed, byte for byte, while SPLARE vectors appear beside it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from splare_connect import BackendError, ConfigError, EncoderMismatchError, Retriever, SplareEncoder, Syncer
from splare_connect.attach import Attacher, _max_pooled
from splare_connect.backends import SparseUpdate
from splare_connect.backends.schema import STATE_KEY, text_hash
from splare_connect.chunking import chunk_document, content_window
from splare_connect.documents import Document, read_iterable

pytest.importorskip("splare_connect_qdrant")
from qdrant_attach_app import ENGINES, App, app_id, app_vector, short

from splare_connect_qdrant import create_backend


@pytest.fixture(params=ENGINES)
def app(request: pytest.FixtureRequest, tmp_path: Path, example_records: list[dict]) -> Iterator[App]:
    application = App(request.param, tmp_path)
    application.create(example_records[:12])
    yield application
    application.close()


def attach(encoder: SplareEncoder, backend: Any, **options: Any) -> Any:
    options.setdefault("doc_id_field", "metadata.source")
    return Attacher(encoder, backend, "kb", text_field="page_content", **options).run()


def test_attach_adds_splare_vectors_and_leaves_everything_of_theirs_untouched(
    app: App, tiny_encoder: SplareEncoder, example_records: list[dict]
) -> None:
    before = app.snapshot_of_theirs()
    backend = app.backend()
    report = attach(tiny_encoder, backend)
    backend.close()

    assert report.attached_now and report.points == 14 and report.encoded == 12 and report.unchanged == 0
    assert dict(report.skipped) == {
        "9001": "no text: payload field 'page_content' is missing or null",
        "9002": "payload field 'page_content' is a int, not a string",
    }
    assert app.snapshot_of_theirs() == before  # ids, payloads, dense vectors: byte for byte
    points = app.points()
    expected = tiny_encoder.encode([short(r) for r in example_records[:12]], role="document").sparse
    for i, vector in enumerate(expected):
        payload, vectors = points[str(app_id(i))]
        assert payload[STATE_KEY] == {"hash": text_hash(app_id(i), short(example_records[i]))}
        assert vectors["splare"]["indices"] == vector.indices.tolist()
        np.testing.assert_allclose(vectors["splare"]["values"], vector.values, rtol=1e-6)
    for skipped in ("9001", "9002"):
        assert "splare" not in points[skipped][1] and STATE_KEY not in points[skipped][0]


def test_a_rerun_encodes_only_what_the_app_changed_added_or_kept(app: App, tiny_encoder: SplareEncoder) -> None:
    backend = app.backend()
    attach(tiny_encoder, backend)
    again = attach(tiny_encoder, backend)
    assert (again.attached_now, again.encoded, again.unchanged) == (False, 0, 12)
    backend.close()

    app.set_text(app_id(3), "grep searches files for lines matching a pattern")
    app.upsert([(777, app_vector(777), {"page_content": "tar packs files into an archive", "metadata": {}})])
    app.delete(app_id(4))
    changed_before = app.snapshot_of_theirs()

    backend = app.backend()
    report = attach(tiny_encoder, backend)
    backend.close()
    assert (report.points, report.encoded, report.unchanged, report.vanished) == (14, 2, 10, 0)
    points = app.points()
    [grep, tar] = tiny_encoder.encode(
        ["grep searches files for lines matching a pattern", "tar packs files into an archive"], role="document"
    ).sparse
    assert points[str(app_id(3))][1]["splare"]["indices"] == grep.indices.tolist()
    assert points["777"][1]["splare"]["indices"] == tar.indices.tolist()
    assert app.snapshot_of_theirs() == changed_before


def test_points_the_app_deletes_mid_run_are_skipped_and_the_rest_written(app: App, tiny_encoder: SplareEncoder) -> None:
    backend = app.backend()
    attach(tiny_encoder, backend)
    [vector] = tiny_encoder.encode(["a new text"], role="document").sparse
    updates = [SparseUpdate(app_id(1), vector, {"hash": "h1"}), SparseUpdate(123456, vector, {"hash": "gone"})]
    assert backend.update_sparse("kb", updates) == [123456]
    [record] = backend.driver.retrieve("kb", [app_id(1)], [STATE_KEY], "splare")
    assert record.payload[STATE_KEY] == {"hash": "h1"}
    backend.close()


def test_search_reads_the_apps_points_and_fuses_with_its_own_dense_vectors(
    app: App, tiny_encoder: SplareEncoder, example_records: list[dict]
) -> None:
    backend = app.backend()
    attach(tiny_encoder, backend)
    retriever = Retriever(tiny_encoder, backend, "kb")

    query = short(example_records[5])
    [hit] = retriever.search(query, k=1)
    [query_vector] = tiny_encoder.encode_queries([query])
    documents = tiny_encoder.encode_documents([short(r) for r in example_records[:12]])
    scores = {str(app_id(i)): query_vector.dot(documents[i]) for i in range(12)}
    assert hit.score == pytest.approx(max(scores.values()), rel=1e-5)
    assert scores[hit.id] == pytest.approx(max(scores.values()), rel=1e-5)  # ties may pick either
    best = next(i for i in range(12) if str(app_id(i)) == hit.id)
    assert hit.text == short(example_records[best]) and hit.doc_id == example_records[best]["id"]
    assert hit.metadata == {
        "metadata": {"source": example_records[best]["id"], "title": example_records[best]["title"]},
        "record_id": f"app-{best}",
    }
    [explained] = retriever.search(query, k=1, explain=True)  # the stored vector is found by the app's id
    assert explained.features and sum(f.weight for f in explained.features) == pytest.approx(explained.score, rel=1e-4)

    # The app's own query vector for point 7, all weight on the dense side: point 7 first.
    fused = retriever.search("anything", dense=app_vector(7), using="openai", weights=(0.0, 1.0), k=3)
    assert fused[0].id == "7" and len(fused) == 3
    dbsf = retriever.search("anything", dense=app_vector(7), using="openai", hybrid="dbsf", k=3)
    assert len(dbsf) == 3

    with pytest.raises(BackendError, match=r"no dense vector 'nope' \(its dense vectors: 'openai'\)"):
        retriever.search("x", dense=app_vector(7), using="nope")
    with pytest.raises(BackendError, match="dense vector must be 8 finite floats"):
        retriever.search("x", dense=[0.5] * 3, using="openai")
    with pytest.raises(ConfigError, match="pass the query's vector for it as dense"):
        retriever.search("x", using="openai")
    with pytest.raises(ConfigError, match="no dense vectors of splare-connect's"):
        retriever.search("x", hybrid="rrf")
    backend.close()


def test_the_apps_collection_is_never_ingested_into_or_dropped(
    app: App, tiny_encoder: SplareEncoder, example_records: list[dict]
) -> None:
    backend = app.backend()
    with pytest.raises(BackendError, match=r"not created by splare-connect .* splare-connect attach --text-field"):
        Retriever(tiny_encoder, backend, "kb")
    with pytest.raises(BackendError, match="not created by splare-connect"):
        Syncer(tiny_encoder, backend, "kb").run(read_iterable(example_records[:2]))
    with pytest.raises(BackendError, match="belongs to another application; splare-connect does not drop it"):
        backend.drop_collection("kb")
    attach(tiny_encoder, backend)
    with pytest.raises(ConfigError, match="an ingest would replace its points"):
        Syncer(tiny_encoder, backend, "kb").run(read_iterable(example_records[:2]))
    with pytest.raises(BackendError, match="does not drop it"):
        backend.drop_collection("kb")
    assert backend.count("kb") == 14
    backend.close()


def test_attach_refuses_what_it_must_not_touch(
    app: App, tiny_encoder: SplareEncoder, other_tiny_model_dir: Path, example_records: list[dict]
) -> None:
    backend = app.backend()
    with pytest.raises(BackendError, match="does not exist"):
        Attacher(tiny_encoder, backend, "nope", text_field="page_content").run()
    with pytest.raises(BackendError, match="already has a vector named 'openai' that splare-connect did not make"):
        attach(tiny_encoder, backend, sparse_vector_name="openai")
    attach(tiny_encoder, backend)
    other = SplareEncoder.from_pretrained(other_tiny_model_dir, device="cpu")
    with pytest.raises(EncoderMismatchError):
        attach(other, backend)
    with pytest.raises(ConfigError, match="attached with sparse_vector_name='splare', not 'other'"):
        attach(tiny_encoder, backend, sparse_vector_name="other")
    with pytest.raises(ConfigError, match="attached with idf=False, not True"):
        attach(tiny_encoder, backend, idf=True)
    backend.close()


def test_a_mistyped_text_field_changes_nothing_and_the_text_field_may_change_later(
    app: App, tiny_encoder: SplareEncoder, example_records: list[dict]
) -> None:
    backend = app.backend()
    with pytest.raises(ConfigError, match=r"none of the first 14 points of 'kb' has a string at 'page_contnet'"):
        Attacher(tiny_encoder, backend, "kb", text_field="page_contnet").run()
    layout = backend.inspect_collection("kb")
    assert layout.spec is None and "splare" not in layout.sparse
    attach(tiny_encoder, backend)
    # Later the app wants its titles encoded instead: every point whose title differs from its text is redone.
    retitled = Attacher(tiny_encoder, backend, "kb", text_field="metadata.title").run()
    assert (retitled.encoded, retitled.unchanged, len(retitled.skipped)) == (12, 0, 2)  # 9001 and 9002 have no title
    assert backend.describe_collection("kb").text_field == "metadata.title"
    assert backend.describe_collection("kb").doc_id_field == "metadata.source"  # kept from the first run
    backend.close()


def test_a_collection_splare_connect_made_is_synced_not_attached(
    tmp_path: Path, tiny_encoder: SplareEncoder, example_records: list[dict]
) -> None:
    backend = create_backend(data_dir=tmp_path)
    Syncer(tiny_encoder, backend, "ours").run(read_iterable(example_records[:2]))
    with pytest.raises(ConfigError, match="was made by splare-connect; keep it in sync with `ingest`"):
        Attacher(tiny_encoder, backend, "ours", text_field="text").run()
    backend.close()


def test_a_first_run_killed_after_storing_the_spec_is_completed_by_the_next(
    app: App, tiny_encoder: SplareEncoder
) -> None:
    backend = app.backend()
    attacher = Attacher(tiny_encoder, backend, "kb", text_field="page_content")
    backend.driver.store_spec(attacher.spec_for(None))  # the first half of attaching, then "killed"
    report = attacher.run()
    assert report.encoded == 12 and "splare" in backend.inspect_collection("kb").sparse
    backend.close()


def test_long_texts_are_encoded_whole_by_max_pooling_windows(
    tmp_path: Path, tiny_encoder: SplareEncoder, example_records: list[dict]
) -> None:
    from qdrant_client import QdrantClient, models

    long_text = " ".join(r["text"] for r in example_records[:30])
    window = content_window(tiny_encoder)
    windows = [
        c.text for c in chunk_document(Document("-", long_text), tiny_encoder.tokenizer, window, min(64, window // 4))
    ]
    assert len(windows) > 2
    client = QdrantClient(":memory:")
    client.create_collection("kb", vectors_config={})
    client.upsert("kb", [models.PointStruct(id=1, vector={}, payload={"body": {"text": long_text}})])
    backend = create_backend(client=client)
    Attacher(tiny_encoder, backend, "kb", text_field="body.text").run()
    stored = backend.fetch_sparse("kb", ["1"])["1"]
    expected = _max_pooled(tiny_encoder.encode(windows, role="document").sparse, tiny_encoder.config.document_top_k)
    truncated = tiny_encoder.encode([long_text], role="document").sparse[0]
    assert stored.indices.tolist() == expected.indices.tolist()
    np.testing.assert_allclose(stored.values, expected.values, rtol=1e-6)
    assert stored != truncated  # the tail of the text counts
    backend.close()


def test_the_attach_command_reports_progress_a_summary_and_json(
    tmp_path: Path, tiny_model_dir: Path, example_records: list[dict]
) -> None:
    import os
    import subprocess
    import sys

    application = App("edge", tmp_path)
    application.create(example_records[:12])
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SPLARE_", "QDRANT_"))}
    env["SPLARE_MODEL"] = str(tiny_model_dir)

    def cli(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "splare_connect.cli", *args, "--data-dir", str(tmp_path / "edge")]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)

    first = cli("attach", "kb", "--text-field", "page_content", "--doc-id-field", "metadata.source", "--json")
    assert first.returncode == 3, first.stderr  # finished, with skipped points
    summary = json.loads(first.stdout)
    assert (summary["attached_now"], summary["points"], summary["encoded"]) == (True, 14, 12)
    assert "skipped point 9001: no text: payload field 'page_content' is missing or null" in first.stderr
    assert "progress: 14 points read, 12 encoded" in first.stderr

    again = cli("attach", "kb", "--text-field", "page_content", "--doc-id-field", "metadata.source")
    assert again.returncode == 3 and again.stdout.startswith("14 points: 0 encoded, 12 unchanged")

    found = cli("search", short(example_records[2]), "-c", "kb", "-k", "2", "--json")
    assert found.returncode == 0, found.stderr
    assert len(json.loads(found.stdout)) == 2

    missing = cli("attach", "nope", "--text-field", "page_content")
    assert missing.returncode == 1 and missing.stderr.strip() == "error: collection 'nope' does not exist"


def test_threads_sharing_an_encoder_may_chunk_and_encode_at_once(
    tmp_path: Path, tiny_encoder: SplareEncoder, example_records: list[dict]
) -> None:
    """Chunking uses the encoder's tokenizer, whose settings encode() changes: both take the encoder's lock.

    Without it, a chunking call between encode()'s tokenizer set-up and its batch leaves
    the batch untruncated (a tensor-size error, or other vectors): seen within seconds.
    """
    import time
    from concurrent.futures import ThreadPoolExecutor

    from qdrant_client import QdrantClient, models

    client = QdrantClient(":memory:")
    client.create_collection("kb", vectors_config={})
    client.upsert("kb", [models.PointStruct(id=1, vector={}, payload={"text": "x"})])
    backend = create_backend(client=client)
    attacher = Attacher(tiny_encoder, backend, "kb", text_field="text")
    syncer = Syncer(tiny_encoder, backend, "other")
    pages = [r["text"] for r in example_records[:8]]
    long_text = " ".join(pages)
    expected_pages = tiny_encoder.encode(pages, role="document").sparse
    expected_chunks = [c.text for c in syncer._chunks(Document("d", long_text))]
    expected_pooled = attacher._encode([long_text])
    deadline = time.monotonic() + 6

    def encode_loop() -> int:
        rounds = 0
        while time.monotonic() < deadline:
            assert tiny_encoder.encode(pages, role="document").sparse == expected_pages
            rounds += 1
        return rounds

    def chunk_loop() -> int:
        rounds = 0
        while time.monotonic() < deadline:
            assert [c.text for c in syncer._chunks(Document("d", long_text))] == expected_chunks
            if rounds % 20 == 0:
                assert attacher._encode([long_text]) == expected_pooled
            rounds += 1
        return rounds

    with ThreadPoolExecutor(2) as pool:
        encodes, chunkings = pool.submit(encode_loop), pool.submit(chunk_loop)
        assert encodes.result() > 0 and chunkings.result() > 0


def test_a_point_the_app_deletes_during_a_run_is_counted_and_the_run_goes_on(
    app: App, tiny_encoder: SplareEncoder
) -> None:
    backend = app.backend()
    written: list[Any] = []
    update_sparse = backend.update_sparse

    def recording_update_sparse(collection: str, updates: list[SparseUpdate]) -> list[Any]:
        written.extend(u.point_id for u in updates)
        return update_sparse(collection, updates)

    backend.update_sparse = recording_update_sparse
    victims: list[Any] = []

    def app_deletes_one(report: Any) -> None:  # after the first write: the app deletes a point read, not written
        if not victims:
            victims.append(next(app_id(i) for i in range(12) if app_id(i) not in written))
            backend.driver.delete("kb", victims)

    report = Attacher(tiny_encoder, backend, "kb", text_field="page_content", points_per_write=4).run(
        on_progress=app_deletes_one
    )
    assert (report.points, report.encoded, report.vanished, len(report.skipped)) == (14, 11, 1, 2)
    assert backend.count("kb") == 13
    backend.close()
