"""Attach writes only what splare-connect owns, and converges on the truth of each point.

Reproductions of a hostile test round (issue 33), on the real Qdrant engines: an app's
own ``_splare`` payload key or ``splare_connect`` metadata key, a point re-upserted
without its SPLARE vector, a text removed, an unnamed-vector collection, and a shard in
splare-connect's layout that splare-connect did not make.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from splare_connect import BackendError, ConfigError, Retriever, SplareEncoder, Syncer
from splare_connect.attach import Attacher
from splare_connect.backends.schema import STATE_KEY, text_hash
from splare_connect.documents import read_iterable

pytest.importorskip("splare_connect_qdrant")
from qdrant_attach_app import DENSE, ENGINES, App, app_id, app_vector, short

from splare_connect_qdrant import create_backend


@pytest.fixture(params=ENGINES)
def app(request: pytest.FixtureRequest, tmp_path: Path, example_records: list[dict]) -> Iterator[App]:
    application = App(request.param, tmp_path)
    application.create(example_records[:6])
    yield application
    application.close()


def attach(encoder: SplareEncoder, backend: Any, **options: Any) -> Any:
    return Attacher(encoder, backend, "kb", text_field="page_content", **options).run()


def vector_of(app: App, point: Any) -> dict[str, Any] | None:
    return app.points()[str(point)][1].get("splare")


@pytest.mark.parametrize("theirs", [{"hash": "app-own", "owner": "app"}, "a string"])
def test_an_apps_own_state_key_is_refused_untouched_and_another_key_can_be_chosen(
    app: App, tiny_encoder: SplareEncoder, example_records: list[dict], theirs: Any
) -> None:
    app.set_payload(app_id(1), {STATE_KEY: theirs})
    before = app.snapshot_of_everything()
    backend = app.backend()
    with pytest.raises(ConfigError, match=r"point 1 of 'kb' already has a payload key '_splare'.*--state-key"):
        attach(tiny_encoder, backend)
    backend.close()
    assert app.snapshot_of_everything() == before  # nothing written: no vector, no spec, no key

    backend = app.backend()
    report = attach(tiny_encoder, backend, state_key="_splare_state")
    assert report.encoded == 6
    again = attach(tiny_encoder, backend)  # later runs find the key in the stored spec without being told
    assert (again.encoded, again.unchanged) == (0, 6)
    with pytest.raises(ConfigError, match="attached with state_key='_splare_state', not '_splare'"):
        attach(tiny_encoder, backend, state_key="_splare")
    hits = Retriever(tiny_encoder, backend, "kb").search(short(example_records[1]), k=6)
    [hit] = [hit for hit in hits if hit.id == "1"]
    assert hit.metadata[STATE_KEY] == theirs and "_splare_state" not in hit.metadata
    backend.close()
    payload, vectors = app.points()["1"]
    assert payload[STATE_KEY] == theirs and payload["_splare_state"] == {
        "hash": text_hash(1, short(example_records[1]))
    }
    assert "splare" in vectors


def test_a_point_re_upserted_without_its_vector_or_copied_is_encoded_again(
    app: App, tiny_encoder: SplareEncoder, example_records: list[dict]
) -> None:
    backend = app.backend()
    attach(tiny_encoder, backend)
    backend.close()
    # The app re-embeds point 1: it upserts the payload it read with its own vector only.
    payload, vectors = app.points()["1"]
    app.put(1, {"openai": vectors["openai"]}, payload)
    # ...and copies point 3 to a new id, payload (our key included) and its own vector.
    payload3, vectors3 = app.points()["3"]
    app.put(4242, {"openai": vectors3["openai"]}, payload3)
    assert vector_of(app, 1) is None and vector_of(app, 4242) is None

    backend = app.backend()
    report = attach(tiny_encoder, backend)
    assert (report.encoded, report.unchanged) == (2, 5)
    hits = Retriever(tiny_encoder, backend, "kb").search(short(example_records[1]), k=9)
    assert "1" in [hit.id for hit in hits]
    backend.close()
    [expected] = tiny_encoder.encode([short(example_records[1])], role="document").sparse
    assert vector_of(app, 1)["indices"] == expected.indices.tolist()
    assert vector_of(app, 4242)["indices"] == vector_of(app, 3)["indices"]


@pytest.mark.parametrize("change", ["removed", "a number", "too long"])
def test_a_point_whose_text_goes_away_loses_its_vector_and_state(
    app: App, tiny_encoder: SplareEncoder, example_records: list[dict], change: str
) -> None:
    backend = app.backend()
    attach(tiny_encoder, backend)
    backend.close()
    if change == "removed":
        app.delete_payload_key(1, "page_content")
    else:
        app.set_payload(1, {"page_content": 7 if change == "a number" else "x" * 100})
    before = app.snapshot_of_theirs()

    backend = app.backend()
    limits = (
        None
        if change != "too long"
        else __import__("splare_connect.record_rules").record_rules.RecordLimits(max_text_chars=50)
    )
    report = attach(tiny_encoder, backend, **({"limits": limits} if limits else {}))
    assert report.cleared == 1 and "1" in dict(report.skipped)
    hits = Retriever(tiny_encoder, backend, "kb").search(short(example_records[1]), k=10)
    assert "1" not in [hit.id for hit in hits]
    again = attach(tiny_encoder, backend, **({"limits": limits} if limits else {}))
    assert again.cleared == 0  # nothing left to clear
    backend.close()
    payload, vectors = app.points()["1"]
    assert STATE_KEY not in payload and "splare" not in vectors
    assert app.snapshot_of_theirs() == before


def test_an_unnamed_vector_collection_is_refused_unless_asked(tmp_path: Path, tiny_encoder: SplareEncoder) -> None:
    from qdrant_client import QdrantClient, models

    client = QdrantClient(":memory:")
    client.create_collection("kb", vectors_config=models.VectorParams(size=DENSE, distance=models.Distance.COSINE))
    client.upsert("kb", [models.PointStruct(id=1, vector=app_vector(1), payload={"page_content": "ls lists files"})])
    backend = create_backend(client=client)
    with pytest.raises(ConfigError, match=r"unnamed dense vector.*--allow-unnamed-vector"):
        attach(tiny_encoder, backend)
    [record] = client.retrieve("kb", [1], with_vectors=True)
    assert isinstance(record.vector, list)  # untouched: the app still reads a list
    assert backend.inspect_collection("kb").spec is None

    report = attach(tiny_encoder, backend, allow_unnamed_vector=True)
    assert report.encoded == 1
    [record] = client.retrieve("kb", [1], with_vectors=True)
    assert set(record.vector) == {"", "splare"}  # what the flag accepts, as documented
    assert attach(tiny_encoder, backend).unchanged == 1  # later runs need no flag


def test_an_unnamed_vector_edge_shard_is_refused_unless_asked(tmp_path: Path, tiny_encoder: SplareEncoder) -> None:
    import qdrant_edge as edge

    shard = edge.EdgeShard.create(
        str(tmp_path / "kb"), edge.EdgeConfig(vectors=edge.EdgeVectorParams(size=DENSE, distance=edge.Distance.Dot))
    )
    shard.update(edge.UpdateOperation.upsert_points([edge.Point(1, app_vector(1), {"page_content": "ls lists"})]))
    shard.close()
    backend = create_backend(data_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"unnamed dense vector.*--allow-unnamed-vector"):
        attach(tiny_encoder, backend)
    assert not (tmp_path / "kb" / "splare_connect.json").exists()
    assert attach(tiny_encoder, backend, allow_unnamed_vector=True).encoded == 1
    backend.close()


@pytest.mark.parametrize("theirs", ["a string", ["a", "list"], {"owner": "app"}, {"sparse_dim": "wide"}])
def test_an_apps_own_metadata_key_named_like_ours_is_left_alone_and_reported(
    tiny_encoder: SplareEncoder, theirs: Any
) -> None:
    from qdrant_client import QdrantClient, models

    client = QdrantClient(":memory:")
    client.create_collection(
        "kb",
        vectors_config={"openai": models.VectorParams(size=DENSE, distance=models.Distance.COSINE)},
        metadata={"splare_connect": theirs},
    )
    client.upsert("kb", [models.PointStruct(id=1, vector={"openai": app_vector(1)}, payload={"page_content": "ls"})])
    backend = create_backend(client=client)
    assert backend.list_collections() == ["kb"]
    assert backend.inspect_collection("kb").spec is None
    with pytest.raises(BackendError, match="its metadata key 'splare_connect' holds the application's own data"):
        backend.describe_collection("kb")
    with pytest.raises(BackendError, match="its metadata key 'splare_connect' holds the application's own data"):
        Retriever(tiny_encoder, backend, "kb")
    with pytest.raises(ConfigError, match="metadata key 'splare_connect' of 'kb' is the application's"):
        attach(tiny_encoder, backend)
    info = client.get_collection("kb")
    assert info.config.metadata == {"splare_connect": theirs} and not info.config.params.sparse_vectors


def _foreign_shard(data_dir: Path, points: int) -> Path:
    """A Qdrant Edge shard at ``data_dir/kb/shard`` without splare-connect's ``collection.json``."""
    import qdrant_edge as edge

    shard_dir = data_dir / "kb" / "shard"
    shard_dir.parent.mkdir(parents=True)
    config = edge.EdgeConfig(vectors={"openai": edge.EdgeVectorParams(size=DENSE, distance=edge.Distance.Cosine)})
    shard = edge.EdgeShard.create(str(shard_dir), config)
    shard.update(
        edge.UpdateOperation.upsert_points(
            [edge.Point(i, {"openai": app_vector(i)}, {"page_content": f"text {i}"}) for i in range(points)]
        )
    )
    shard.close()
    return shard_dir


def _shard_count(shard_dir: Path) -> int:
    import qdrant_edge as edge

    shard = edge.EdgeShard.load(str(shard_dir))
    try:
        return int(shard.count(edge.CountRequest(exact=True)))
    finally:
        shard.close()


def test_a_shard_in_our_layout_that_we_did_not_make_is_never_deleted(
    tmp_path: Path, tiny_encoder: SplareEncoder, example_records: list[dict]
) -> None:
    shard_dir = _foreign_shard(tmp_path, 100)
    backend = create_backend(data_dir=tmp_path)
    message = r"kb/shard is a Qdrant Edge shard that splare-connect did not create.*--data-dir .*kb"
    with pytest.raises(BackendError, match=message):
        Syncer(tiny_encoder, backend, "kb").run(read_iterable(example_records[:1]))
    with pytest.raises(BackendError, match=message):
        backend.describe_collection("kb")
    with pytest.raises(BackendError, match=message):
        Attacher(tiny_encoder, backend, "kb", text_field="page_content").run()
    backend.close()
    assert _shard_count(shard_dir) == 100

    # The way the message names: attach to it as the app's shard it is.
    backend = create_backend(data_dir=tmp_path / "kb")
    report = Attacher(tiny_encoder, backend, "shard", text_field="page_content").run()
    backend.close()
    assert report.encoded == 100 and _shard_count(shard_dir) == 100


def test_the_ingest_command_leaves_a_foreign_shard_alone(
    tmp_path: Path, tiny_model_dir: Path, example_records: list[dict]
) -> None:
    shard_dir = _foreign_shard(tmp_path / "data", 100)
    source = tmp_path / "one.jsonl"
    source.write_text(json.dumps(example_records[0]) + "\n", encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SPLARE_", "QDRANT_"))}
    env["SPLARE_MODEL"] = str(tiny_model_dir)
    command = [sys.executable, "-m", "splare_connect.cli", "ingest", str(source), "-c", "kb"]
    done = subprocess.run(
        [*command, "--data-dir", str(tmp_path / "data")], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 1, done.stdout
    assert done.stderr.count("\n") == 1 and "splare-connect did not create" in done.stderr
    assert _shard_count(shard_dir) == 100


def test_a_create_killed_before_its_description_is_cleared_by_the_next(
    tmp_path: Path, tiny_encoder: SplareEncoder, example_records: list[dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our own half-made collection (proof written, then killed) is still cleared and made again."""
    from splare_connect_qdrant import edge_driver

    write = edge_driver.write_json_atomically

    def killed_before_the_description(path: Path, data: dict) -> None:
        if path.name == "collection.json":
            raise KeyboardInterrupt  # stands for kill -9 just before collection.json is written
        write(path, data)

    backend = create_backend(data_dir=tmp_path)
    monkeypatch.setattr(edge_driver, "write_json_atomically", killed_before_the_description)
    with pytest.raises(KeyboardInterrupt):
        Syncer(tiny_encoder, backend, "kb").run(read_iterable(example_records[:1]))
    monkeypatch.undo()
    backend.close()
    assert (tmp_path / "kb" / "shard").is_dir() and not (tmp_path / "kb" / "collection.json").exists()

    backend = create_backend(data_dir=tmp_path)
    Syncer(tiny_encoder, backend, "kb").run(read_iterable(example_records[:2]))
    Syncer(tiny_encoder, backend, "fresh").run(read_iterable(example_records[:2]))
    assert backend.count("kb") == backend.count("fresh") > 0
    backend.close()


def test_state_values_are_exactly_ours_once_we_own_the_key(app: App, tiny_encoder: SplareEncoder) -> None:
    """An app that writes into our key after we own it gets it overwritten with the truth, never trusted."""
    backend = app.backend()
    attach(tiny_encoder, backend)
    backend.close()
    [text_3] = [payload["page_content"] for point, (payload, _) in app.points().items() if point == "3"]
    app.set_payload(3, {STATE_KEY: {"hash": "made-up"}, "page_content": "tar packs files"})
    payload, vectors = app.points()["3"]
    app.put(3, {"openai": vectors["openai"]}, {**payload, STATE_KEY: {"hash": text_hash(3, "tar packs files")}})
    backend = app.backend()
    report = attach(tiny_encoder, backend)
    backend.close()
    assert report.encoded == 1
    [expected] = tiny_encoder.encode(["tar packs files"], role="document").sparse
    assert vector_of(app, 3)["indices"] == expected.indices.tolist() and text_3 != "tar packs files"
    np.testing.assert_allclose(vector_of(app, 3)["values"], expected.values, rtol=1e-6)


def test_a_state_copied_from_another_point_is_not_trusted(app: App, tiny_encoder: SplareEncoder) -> None:
    """An app copying point 1's payload onto point 3 (which keeps its vector) gets 3 encoded for its new text."""
    backend = app.backend()
    attach(tiny_encoder, backend)
    backend.close()
    payload_1, _ = app.points()["1"]
    app.set_payload(3, payload_1)  # page_content and our state of point 1; point 3 keeps its old vector
    backend = app.backend()
    report = attach(tiny_encoder, backend)
    backend.close()
    assert report.encoded == 1
    assert vector_of(app, 3)["indices"] == vector_of(app, 1)["indices"]


def test_a_folder_holding_files_we_did_not_make_is_neither_filled_nor_dropped(
    tmp_path: Path, tiny_encoder: SplareEncoder, example_records: list[dict]
) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("the user's own notes")
    backend = create_backend(data_dir=tmp_path)
    with pytest.raises(BackendError, match=r"docs holds files splare-connect did not make \(notes.txt\)"):
        Syncer(tiny_encoder, backend, "docs").run(read_iterable(example_records[:1]))
    assert sorted(p.name for p in (tmp_path / "docs").iterdir()) == ["notes.txt"]

    Syncer(tiny_encoder, backend, "ours").run(read_iterable(example_records[:1]))
    backend.close()
    (tmp_path / "ours" / "keep.txt").write_text("put here later by hand")
    backend = create_backend(data_dir=tmp_path)
    with pytest.raises(BackendError, match=r"holds files splare-connect did not make \(keep.txt\)"):
        backend.drop_collection("ours")
    backend.close()
    assert (tmp_path / "ours" / "keep.txt").is_file() and (tmp_path / "ours" / "shard").is_dir()


def test_a_create_that_finds_the_collection_locked_leaves_no_proof(tmp_path: Path) -> None:
    """The proof is written under the lock: a create refused at the lock leaves nothing that could vouch later."""
    from splare_connect_qdrant.lock import CollectionLock

    (tmp_path / "kb").mkdir()
    held = CollectionLock(tmp_path / "kb", "kb")
    held.acquire()
    try:
        child = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from splare_connect_qdrant import create_backend; "
                "from splare_connect.backends import CollectionSpec; "
                "b = create_backend(data_dir=sys.argv[1]); "
                "b.create_collection(CollectionSpec(name='kb', sparse_dim=8, fingerprint={'digest': 'x'}))",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        held.release()
    assert child.returncode != 0 and "in use" in child.stderr
    assert not (tmp_path / "kb" / "creating.json").exists()


def test_clearing_a_point_the_app_deleted_meanwhile_clears_the_others(app: App, tiny_encoder: SplareEncoder) -> None:
    backend = app.backend()
    attach(tiny_encoder, backend)
    backend.clear_sparse("kb", [app_id(1), 424242])  # 424242: deleted by the app between the read and the write
    backend.close()
    payload, vectors = app.points()["1"]
    assert STATE_KEY not in payload and "splare" not in vectors
