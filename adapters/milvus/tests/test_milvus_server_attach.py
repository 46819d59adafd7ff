"""Attach on a Milvus server, against a recording fake of ``MilvusClient``: **not run against a Milvus server**.

No Milvus server runs here, and Milvus Lite refuses ``add_collection_field``, so the server
path is driven through the real :class:`~splare_connect.attach.Attacher` (with the tiny
test model) against :class:`milvus_recording.RecordingMilvus`, which keeps the app's
collection in memory with the semantics Milvus documents and records every call. Each
row written goes through pymilvus 3.0.2's own request builder, so the rows are ones the
real client sends. The tests assert on the exact calls: the nullable fields added, the
index, the property, ``partial_update=True`` and only splare-connect's fields in each
row; and that nothing of the app's rows changed.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from milvus_recording import RecordingMilvus
from pymilvus import DataType, MilvusClient

from splare_connect import BackendError, ConfigError, Retriever, SparseVector, SplareEncoder
from splare_connect.attach import Attacher
from splare_connect.backends.schema import SPEC_KEY, STATE_KEY, text_hash
from splare_connect.filters import Condition
from splare_connect_milvus import create_backend
from splare_connect_milvus.app_schema import SPARSE_MARK, STATE_MARK, parse_version

OURS = ("splare", STATE_KEY)
INT64_MAX = 2**63 - 1


def app_schema(*, pk_is_str: bool = False, auto_id: bool = False, dense: bool = True, dynamic: bool = True) -> Any:
    """An app's schema, as a RAG stack makes it: its own key, dense vector, text and metadata."""
    schema = MilvusClient.create_schema(auto_id=auto_id, enable_dynamic_field=dynamic)
    if pk_is_str:
        schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=64)
    else:
        schema.add_field("pk", DataType.INT64, is_primary=True)
    if dense:
        schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=4)
    schema.add_field("page_content", DataType.VARCHAR, max_length=2000, nullable=True)
    schema.add_field("metadata", DataType.JSON, nullable=True)
    return schema


def app_rows(records: list[dict[str, Any]], *, pk_is_str: bool = False) -> list[dict[str, Any]]:
    """Six rows with text, one without; ``tenant`` is a key of the dynamic field."""
    rows = [
        {
            "pk": f"doc-{i}" if pk_is_str else 100 + i,
            "embedding": [0.1 * (i + 1), 0.2, 0.3, 0.4],
            "page_content": record["text"][:80],
            "metadata": {"source": record["id"]},
            "tenant": "acme",
        }
        for i, record in enumerate(records[:6])
    ]
    rows.append({"pk": "no-text" if pk_is_str else 900, "embedding": [0.5] * 4, "page_content": None, "metadata": {}})
    return rows


def make_app(records: list[dict[str, Any]], **options: Any) -> RecordingMilvus:
    shape = {key: options.pop(key) for key in ("pk_is_str", "auto_id", "dense", "dynamic") if key in options}
    rows = app_rows(records, pk_is_str=shape.get("pk_is_str", False))
    if not shape.get("dense", True):
        for row in rows:
            row.pop("embedding")
    options.setdefault("properties", {"owner": "rag-app"})
    options.setdefault("indexes", {"embedding": {"index_name": "embedding", "metric_type": "COSINE"}})
    return RecordingMilvus(app_schema(**shape), rows, **options)


def connect(app: RecordingMilvus, page_size: int | None = None) -> Any:
    backend = create_backend(client=app, backoff_seconds=0.001, max_attempts=2)
    assert not backend.lite  # an app's own MilvusClient that isn't Milvus Lite: the server path
    if page_size:
        backend.page_size = page_size
    return backend


def attach(encoder: SplareEncoder, backend: Any, **options: Any) -> Any:
    return Attacher(encoder, backend, "kb", text_field="page_content", **options).run()


def theirs(app: RecordingMilvus) -> dict[Any, dict[str, Any]]:
    """The app's rows without splare-connect's fields."""
    return {key: {k: v for k, v in row.items() if k not in OURS} for key, row in app.rows.items()}


@pytest.fixture
def records(example_records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return example_records[:6]


def test_attach_adds_nullable_fields_and_writes_only_partial_upserts(
    records: list[dict[str, Any]], tiny_encoder: SplareEncoder
) -> None:
    app = make_app(records)
    before = copy.deepcopy(theirs(app))
    report = attach(tiny_encoder, connect(app, page_size=3), doc_id_field="metadata.source")
    assert (report.attached_now, report.points, report.encoded, report.unchanged) == (True, 7, 6, 0)
    assert report.skipped == [("900", "no text: payload field 'page_content' is missing or null")]

    # The schema changes: two nullable fields, marked as ours, then the index, then the spec.
    assert [(args, kwargs) for args, kwargs in app.calls_to("add_collection_field")] == [
        (("kb", "splare", DataType.SPARSE_FLOAT_VECTOR), {"desc": SPARSE_MARK, "nullable": True, "timeout": 30.0}),
        (("kb", STATE_KEY, DataType.JSON), {"desc": STATE_MARK, "nullable": True, "timeout": 30.0}),
    ]
    [(index_args, _)] = app.calls_to("create_index")
    assert index_args == (
        "kb",
        [{"field_name": "splare", "index_type": "SPARSE_INVERTED_INDEX", "index_name": "", "metric_type": "IP"}],
    )
    [(property_args, _)] = app.calls_to("alter_collection_properties")
    assert list(property_args[1]) == [SPEC_KEY]  # only our key is set ...
    assert app.properties["owner"] == "rag-app"  # ... the app's own stay
    stored_spec = json.loads(app.properties[SPEC_KEY])
    assert (stored_spec["text_field"], stored_spec["doc_id_field"], stored_spec["state_key"]) == (
        "page_content",
        "metadata.source",
        STATE_KEY,
    )
    assert stored_spec["sparse_vector_name"] == "splare" and stored_spec["idf"] is False

    # Every row write is a partial upsert of the primary key and our two fields, nothing else.
    upserts = app.calls_to("upsert")
    assert upserts and all(kwargs["partial_update"] is True for _, kwargs in upserts)
    assert all(set(row) == {"pk", *OURS} for args, _ in upserts for row in args[1])
    # pymilvus's own requests: our fields, and an empty dynamic part (merged into the rows' own, per Milvus).
    for request in app.requests:
        assert request.partial_update is True
        assert {f.field_name for f in request.fields_data} == {"pk", *OURS, "$meta"}
        [meta] = [f for f in request.fields_data if f.field_name == "$meta"]
        assert set(meta.scalars.json_data.data) == {b"{}"}
    assert set(app.writes()) == {"add_collection_field", "create_index", "alter_collection_properties", "upsert"}

    # So the app's rows are exactly as they were, its dynamic keys included; ours hold the encoder's vectors.
    assert theirs(app) == before
    texts = [app.rows[100 + i]["page_content"] for i in range(6)]
    vectors = Attacher(tiny_encoder, connect(app), "kb", text_field="page_content")._encode(texts)  # as written
    for i, vector in enumerate(vectors):
        row = app.rows[100 + i]
        assert row[STATE_KEY] == {"hash": text_hash(100 + i, row["page_content"])}
        assert row["splare"] == dict(zip(vector.indices.tolist(), vector.values.tolist(), strict=True))
    assert app.rows[900]["splare"] is None and app.rows[900][STATE_KEY] is None

    # Rows are read in primary-key pages (3 here), with Strong consistency.
    scans = [kwargs for _, kwargs in app.calls_to("query") if kwargs.get("iterator") == "True"]
    assert [s["filter"] for s in scans[-3:]] == [f"pk <= {INT64_MAX}", "pk > 102", "pk > 105"]
    assert all(s["consistency_level"] == "Strong" and s["limit"] == 3 for s in scans)
    assert scans[-1]["output_fields"] == [STATE_KEY, "page_content", "splare"]
    checks = [kwargs for _, kwargs in app.calls_to("query") if " in [" in kwargs["filter"]]
    assert checks and checks[0]["filter"].startswith("pk in [100, 101")


def test_a_rerun_writes_only_what_changed_and_skips_rows_the_app_deleted(
    records: list[dict[str, Any]], tiny_encoder: SplareEncoder
) -> None:
    app = make_app(records)
    attach(tiny_encoder, connect(app))
    app.rows[102]["page_content"] = "tar packs files into an archive"
    app.rows[106] = {"pk": 106, "embedding": [0.1] * 4, "page_content": "grep searches files", "metadata": None}
    app.rows[107] = {"pk": 107, "embedding": [0.2] * 4, "page_content": "ls lists files", "metadata": None}
    app.vanish_before_write = {107}  # the app deletes it between our existence check and our write
    del app.rows[104]
    app.calls.clear()
    before = copy.deepcopy(theirs(app))
    report = attach(tiny_encoder, connect(app))
    assert (report.attached_now, report.points, report.unchanged, report.encoded, report.vanished) == (
        False,
        8,
        4,
        2,
        1,
    )
    assert not app.calls_to("add_collection_field") and not app.calls_to("create_index")
    # The refused request (107 lacked the app's required dense vector) was sent again without it.
    written = [[row["pk"] for row in args[1]] for args, _ in app.calls_to("upsert")]
    assert written == [[102, 106, 107], [102, 106]]
    assert 107 not in app.rows  # never inserted again
    assert theirs(app) == {key: row for key, row in before.items() if key != 107}
    [tar] = tiny_encoder.encode(["tar packs files into an archive"], role="document").sparse
    assert sorted(app.rows[102]["splare"]) == tar.indices.tolist()  # the new text's features replace the old


def test_a_row_that_lost_its_text_or_its_vector(records: list[dict[str, Any]], tiny_encoder: SplareEncoder) -> None:
    app = make_app(records)
    attach(tiny_encoder, connect(app))
    app.rows[101]["page_content"] = None  # its old vector would still match the old text
    app.rows[103]["splare"] = None  # the app rewrote the row without our field: the state alone isn't trusted
    app.calls.clear()
    report = attach(tiny_encoder, connect(app))
    assert (report.encoded, report.cleared) == (1, 1)
    cleared = [args[1] for args, _ in app.calls_to("upsert") if args[1][0]["splare"] is None]
    assert cleared == [[{"pk": 101, "splare": None, STATE_KEY: None}]]
    assert app.rows[101]["splare"] is None and app.rows[101][STATE_KEY] is None
    assert app.rows[103]["splare"] and app.rows[103][STATE_KEY]["hash"] == text_hash(103, app.rows[103]["page_content"])


def test_a_varchar_primary_key_pages_by_string(records: list[dict[str, Any]], tiny_encoder: SplareEncoder) -> None:
    app = make_app(records, pk_is_str=True, dynamic=False)
    report = attach(tiny_encoder, connect(app, page_size=2))
    assert (report.points, report.encoded) == (7, 6)
    scans = [kwargs["filter"] for _, kwargs in app.calls_to("query") if kwargs.get("iterator") == "True"]
    assert scans[-4:] == ['pk != ""', 'pk > "doc-1"', 'pk > "doc-3"', 'pk > "doc-5"']
    assert all({f.field_name for f in r.fields_data} == {"pk", *OURS} for r in app.requests)  # no dynamic part
    assert app.rows["doc-0"][STATE_KEY] == {"hash": text_hash("doc-0", app.rows["doc-0"]["page_content"])}


def test_search_reads_the_apps_rows_by_their_own_keys(
    records: list[dict[str, Any]], tiny_encoder: SplareEncoder
) -> None:
    app = make_app(records)
    backend = connect(app)
    attach(tiny_encoder, backend, doc_id_field="metadata.source")
    hits = Retriever(tiny_encoder, backend, "kb").search(app.rows[103]["page_content"], k=2, explain=True)
    assert len(hits) == 2
    for hit in hits:  # the app's own key, its text, its doc id field; the features from the stored vector
        row = app.rows[int(hit.id)]
        assert (hit.text, hit.doc_id) == (row["page_content"], row["metadata"]["source"]) and hit.features
        assert hit.metadata == {"metadata": row["metadata"]}
    [(_, search)] = app.calls_to("search")
    assert search["anns_field"] == "splare" and search["output_fields"] == ["page_content", "metadata"]
    [(_, fetched)] = app.calls_to("get")
    assert fetched["ids"] == [int(h.id) for h in hits] and fetched["output_fields"] == ["splare"]
    backend.search(
        "kb", SparseVector.from_pairs({1: 1.0}, tiny_encoder.dim), k=1, filter=[Condition("source", "eq", "tar")]
    )
    assert app.calls_to("search")[-1][1]["filter"] == 'metadata["source"] == "tar"'
    with pytest.raises(BackendError, match="belongs to another application; splare-connect does not drop it"):
        backend.drop_collection("kb")
    assert "drop_collection" not in app.writes()


def refused(app: RecordingMilvus, encoder: SplareEncoder, match: str) -> None:
    """Attach refuses in one line, before anything of the app's is written."""
    with pytest.raises(ConfigError) as error:
        attach(encoder, connect(app))
    message = str(error.value)
    assert "\n" not in message and "nothing was changed" in message
    assert match in message, message
    assert app.writes() == []


@pytest.mark.parametrize(
    ("version", "match"),
    [
        ("v2.5.14", "Milvus v2.5.14 has no partial upserts"),
        ("2.6.1", "Milvus 2.6.1 has no partial upserts"),
        ("Zilliz Cloud", "doesn't read as a Milvus version"),
    ],
)
def test_a_server_without_partial_upserts_is_refused(
    records: list[dict[str, Any]], tiny_encoder: SplareEncoder, version: str, match: str
) -> None:
    refused(make_app(records, version=version), tiny_encoder, match)


def test_collections_where_an_upsert_would_rewrite_or_add_rows_are_refused(
    records: list[dict[str, Any]], tiny_encoder: SplareEncoder
) -> None:
    refused(make_app(records, auto_id=True), tiny_encoder, "generated by Milvus (auto_id)")
    refused(make_app(records, dense=False), tiny_encoder, "every field but its primary key is nullable")
    refused(make_app(records, partitions=("_default", "tenant_b")), tiny_encoder, "partitions besides '_default'")


def test_names_the_app_already_uses_are_refused(records: list[dict[str, Any]], tiny_encoder: SplareEncoder) -> None:
    app = make_app(records)
    app.rows[103][STATE_KEY] = {"mine": True}  # a key of the app's dynamic field
    with pytest.raises(ConfigError, match=f"already has a payload key '{STATE_KEY}'"):
        attach(tiny_encoder, connect(app))
    assert app.writes() == []

    schema = app_schema()
    schema.add_field("splare", DataType.VARCHAR, max_length=10, nullable=True)
    app = RecordingMilvus(schema, app_rows(records))
    with pytest.raises(BackendError, match="already declares a field named 'splare'"):
        attach(tiny_encoder, connect(app))
    assert app.writes() == []

    app = make_app(records, properties={SPEC_KEY: "the app's own"})
    with pytest.raises(ConfigError, match="is the application's own"):
        attach(tiny_encoder, connect(app))
    assert app.writes() == []


def test_a_server_that_cannot_add_a_vector_field_changes_nothing(
    records: list[dict[str, Any]], tiny_encoder: SplareEncoder
) -> None:
    app = make_app(records)
    app.refuse_vector_fields = True
    with pytest.raises(BackendError) as error:
        attach(tiny_encoder, connect(app))
    message = str(error.value)
    assert "\n" not in message and "adding the nullable field 'splare'" in message
    assert "needs a recent Milvus 2.6.x; nothing was changed" in message
    assert app.field("splare") is None and SPEC_KEY not in app.properties


def test_a_first_run_killed_before_storing_the_spec_is_completed_by_the_next(
    records: list[dict[str, Any]], tiny_encoder: SplareEncoder
) -> None:
    app = make_app(records)
    app.fail_properties_once = True
    with pytest.raises(KeyboardInterrupt):
        attach(tiny_encoder, connect(app))
    assert app.field("splare") is not None and SPEC_KEY not in app.properties  # our marked fields, no spec
    layout = connect(app).inspect_collection("kb")
    assert layout is not None and layout.sparse == () and "splare" not in layout.payload_fields
    app.calls.clear()
    report = attach(tiny_encoder, connect(app))
    assert report.attached_now and report.encoded == 6
    assert not app.calls_to("add_collection_field") and not app.calls_to("create_index")
    assert SPEC_KEY in app.properties


def test_idf_and_clashing_names_are_refused_before_anything_changes(
    records: list[dict[str, Any]], tiny_encoder: SplareEncoder
) -> None:
    app = make_app(records)
    with pytest.raises(ConfigError, match="no IDF weighting"):
        attach(tiny_encoder, connect(app), idf=True)
    with pytest.raises(ConfigError, match="Milvus field name"):
        attach(tiny_encoder, connect(app), sparse_vector_name="bad-name")
    with pytest.raises(ConfigError, match="can't both be named"):
        attach(tiny_encoder, connect(app), sparse_vector_name="_state", state_key="_state")
    assert app.writes() == []


def test_versions_read() -> None:
    assert parse_version("v2.6.2") == (2, 6, 2) and parse_version("2.6.10-rc1") == (2, 6, 10)
    assert parse_version("milvus_lite-3.2.2") is None
