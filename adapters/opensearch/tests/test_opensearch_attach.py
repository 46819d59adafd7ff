"""Attaching to an index another application made, through the real opensearch-py client.

The recording connection (tests/opensearch_recording.py) keeps the app's index as a
small in-memory state (its mapping and documents), applies the mapping update and the
bulk partial updates the backend sends as OpenSearch documents them, and records every
request: the test then proves from the requests themselves that only the SPLARE field
and ``_splare`` were ever written, and never a whole document.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
from opensearch_recording import (
    CLUSTER_INFO,
    PLUGINS_WITH_NEURAL,
    Recorder,
    Request,
    acknowledged,
    bulk_response,
    recording_client,
    search_response,
)

from splare_connect import BackendError, ConfigError, Retriever, SplareEncoder
from splare_connect.attach import Attacher
from splare_connect.backends.schema import STATE_KEY, text_hash

pytest.importorskip("splare_connect_opensearch")
from splare_connect_opensearch import create_backend

THEIR_MAPPING = {
    "_meta": {"owner": "rag-app", "version": 3},
    "properties": {
        "page_content": {"type": "text"},
        "metadata": {"properties": {"source": {"type": "keyword"}}},
        "embedding": {"type": "knn_vector", "dimension": 4},
    },
}


def merge(stored: dict[str, Any], partial: dict[str, Any]) -> None:
    """How OpenSearch applies a partial ``doc``: objects merged key by key, recursively."""
    for key, value in partial.items():
        if isinstance(value, dict) and isinstance(stored.get(key), dict):
            merge(stored[key], value)
        else:
            stored[key] = value


def apply_update(stored: dict[str, Any], action: dict[str, Any]) -> None:
    """A bulk update: a partial ``doc`` (merged), or the backend's script (which replaces two values)."""
    if "doc" in action:
        merge(stored, action["doc"])
        return
    params = action["script"]["params"]
    if action["script"]["source"] == "ctx._source.remove(params.field); ctx._source.remove(params.state_key)":
        stored.pop(params["field"], None)
        stored.pop(params["state_key"], None)
        return
    assert action["script"]["source"] == (
        "ctx._source[params.field] = params.vector; ctx._source[params.state_key] = params.state"
    )
    stored[params["field"]] = params["vector"]
    stored[params["state_key"]] = params["state"]


class AppIndex:
    """The app's index ``kb``: a mapping and documents, updated the way OpenSearch applies the requests."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.mapping = copy.deepcopy(THEIR_MAPPING)
        self.docs = {
            f"doc-{i}": {
                "page_content": r["text"][:40],
                "metadata": {"source": r["id"]},
                "record_id": f"app-{i}",  # a key of the app's own that splare-connect's records also use
                "embedding": [float(x) for x in np.random.default_rng(i).standard_normal(4)],
            }
            for i, r in enumerate(records)
        }
        self.docs["no-text"] = {"metadata": {"source": "none"}, "embedding": [0.5] * 4}
        self.deleted_before_write: set[str] = set()
        self.search_hits: list[tuple[str, float, dict[str, Any]]] = []

    def __call__(self, request: Request) -> tuple[int, Any]:
        method, path = request.method, request.path
        if path == "/" and method == "GET":
            return 200, CLUSTER_INFO
        if path == "/_cat/plugins":
            return 200, PLUGINS_WITH_NEURAL
        if path == "/kb/_mapping" and method == "GET":
            return 200, {"kb": {"mappings": copy.deepcopy(self.mapping)}}
        if path == "/kb/_mapping" and method == "PUT":
            # _meta is replaced whole; properties are merged (new fields added, existing ones kept).
            self.mapping["_meta"] = request.body["_meta"]
            for name, field in request.body["properties"].items():
                self.mapping["properties"].setdefault(name, field)
            return acknowledged()
        if path == "/kb/_search" and "scroll" in request.params:
            fields = request.body["_source"]
            hits = [
                {
                    "_index": "kb",
                    "_id": doc_id,
                    "_score": None,
                    "_source": {k: v for k, v in doc.items() if k in fields},
                    **({"_routing": "tenant-a"} if doc_id == "doc-0" else {}),  # a custom-routed document
                }
                for doc_id, doc in self.docs.items()
            ]
            return 200, {"_scroll_id": "scroll-1", "hits": {"total": {"value": len(hits)}, "hits": hits}}
        if path == "/_search/scroll" and method == "DELETE":
            return 200, {"succeeded": True, "num_freed": 1}
        if path == "/_bulk":
            refuse = {}
            for line in request.ndjson:
                if "update" in line:
                    doc_id = line["update"]["_id"]
                    if doc_id in self.deleted_before_write or doc_id not in self.docs:
                        refuse[doc_id] = (404, {"type": "document_missing_exception", "reason": "document missing"})
            for meta, action in zip(request.ndjson[::2], request.ndjson[1::2], strict=True):
                doc_id = meta["update"]["_id"]
                if doc_id not in refuse:
                    apply_update(self.docs[doc_id], action)
            return bulk_response(request, refuse)
        if path == "/kb/_refresh":
            return 200, {"_shards": {"total": 1, "successful": 1, "failed": 0}}
        if path.startswith("/_search/pipeline/"):
            return acknowledged()
        if path == "/kb/_search":
            return search_response(self.search_hits)
        if path == "/kb-*/_mapping":
            return 200, {
                "kb-1": {"mappings": copy.deepcopy(self.mapping)},
                "kb-2": {"mappings": copy.deepcopy(self.mapping)},
            }
        if path == "/kb/_mget":
            return 200, {
                "docs": [
                    {"_id": i, "found": i in self.docs, "_source": self.docs.get(i, {})} for i in request.body["ids"]
                ]
            }
        raise AssertionError(f"unexpected request {method} {path}")


@pytest.fixture
def index(example_records: list[dict]) -> AppIndex:
    return AppIndex(example_records[:6])


def connect(index: AppIndex) -> tuple[Any, Recorder]:
    recorder = Recorder(index)
    return create_backend(client=recording_client(recorder), backoff_seconds=0.001), recorder


def writes(recorder: Recorder) -> list[Request]:
    return [r for r in recorder.requests if r.method in ("PUT", "POST", "DELETE") and "_search" not in r.path]


def test_attach_adds_a_field_and_writes_only_partial_updates(index: AppIndex, tiny_encoder: SplareEncoder) -> None:
    theirs_before = {doc_id: copy.deepcopy(doc) for doc_id, doc in index.docs.items()}
    backend, recorder = connect(index)
    report = Attacher(tiny_encoder, backend, "kb", text_field="page_content", doc_id_field="metadata.source").run()
    assert (report.attached_now, report.points, report.encoded) == (True, 7, 6)
    assert report.skipped == [("no-text", "no text: payload field 'page_content' is missing or null")]

    [mapping_put] = recorder.find("PUT", "/kb/_mapping")
    assert mapping_put.body["_meta"]["owner"] == "rag-app" and mapping_put.body["_meta"]["version"] == 3
    assert mapping_put.body["_meta"]["splare_connect"]["text_field"] == "page_content"
    assert mapping_put.body["properties"] == {
        "splare": {"type": "rank_features"},
        STATE_KEY: {"properties": {"hash": {"type": "keyword"}}},
    }
    # Every write is the mapping update, partial bulk updates, or a refresh: never an index action.
    bulk_lines = [line for r in recorder.find("POST", "/_bulk") for line in r.ndjson]
    actions, docs = bulk_lines[::2], bulk_lines[1::2]
    assert {next(iter(a)) for a in actions} == {"update"}
    assert all(
        set(d) == {"script"}
        and {d["script"]["params"]["field"], d["script"]["params"]["state_key"]} == {"splare", STATE_KEY}
        for d in docs
    )
    assert all(a["update"]["retry_on_conflict"] == 3 for a in actions)
    assert {r.path for r in writes(recorder)} == {"/kb/_mapping", "/_bulk", "/kb/_refresh"}
    # So the app's own fields are exactly as they were; SPLARE's are the encoder's.
    for doc_id, doc in index.docs.items():
        assert {k: v for k, v in doc.items() if k not in ("splare", STATE_KEY)} == theirs_before[doc_id]
    vectors = tiny_encoder.encode([index.docs[f"doc-{i}"]["page_content"] for i in range(6)], role="document").sparse
    for i, vector in enumerate(vectors):
        stored = index.docs[f"doc-{i}"]
        assert stored[STATE_KEY] == {"hash": text_hash(f"doc-{i}", stored["page_content"])}
        assert stored["splare"] == {
            str(k): v for k, v in zip(vector.indices.tolist(), vector.values.tolist(), strict=True)
        }


def test_a_rerun_writes_only_changed_documents_and_tolerates_deleted_ones(
    index: AppIndex, tiny_encoder: SplareEncoder
) -> None:
    backend, _ = connect(index)
    Attacher(tiny_encoder, backend, "kb", text_field="page_content").run()
    index.docs["doc-2"]["page_content"] = "tar packs files into an archive"
    index.docs["doc-9"] = {"page_content": "grep searches files", "metadata": {}, "embedding": [0.1] * 4}
    index.deleted_before_write.add("doc-9")  # the app deletes it between our read and our write
    del index.docs["doc-4"]
    backend, recorder = connect(index)
    report = Attacher(tiny_encoder, backend, "kb", text_field="page_content").run()
    assert (report.attached_now, report.points, report.unchanged, report.encoded, report.vanished) == (
        False,
        7,
        4,
        1,
        1,
    )
    updated = {line["update"]["_id"] for r in recorder.find("POST", "/_bulk") for line in r.ndjson if "update" in line}
    assert updated == {"doc-2", "doc-9"}
    # The new text's features replace the old ones (a partial doc would have merged them in).
    [tar] = tiny_encoder.encode(["tar packs files into an archive"], role="document").sparse
    stored = index.docs["doc-2"]["splare"]
    assert sorted(stored, key=int) == [str(i) for i in tar.indices.tolist()]
    assert [stored[str(i)] for i in tar.indices.tolist()] == pytest.approx(tar.values.tolist(), rel=1e-5)


def test_search_and_hybrid_with_the_apps_knn_field(index: AppIndex, tiny_encoder: SplareEncoder) -> None:
    backend, recorder = connect(index)
    Attacher(tiny_encoder, backend, "kb", text_field="page_content", doc_id_field="metadata.source").run()
    source = dict(index.docs["doc-1"])
    index.search_hits = [
        ("doc-1", 2.5, {k: v for k, v in source.items() if k in ("page_content", "metadata", "record_id")})
    ]
    retriever = Retriever(tiny_encoder, backend, "kb")
    [hit] = retriever.search("files", dense=[0.1, 0.2, 0.3, 0.4], using="embedding", k=1)
    assert (hit.id, hit.text, hit.doc_id) == ("doc-1", source["page_content"], source["metadata"]["source"])
    assert hit.metadata["record_id"] == "app-1"  # the app's own key, not read as splare-connect's id
    body = recorder.find("POST", "/kb/_search")[-1].body
    dense_clause = body["query"]["hybrid"]["queries"][1]
    assert dense_clause["knn"]["embedding"]["vector"] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert {"embedding", STATE_KEY} <= set(body["_source"]["excludes"])
    with pytest.raises(BackendError, match="holds 4"):
        retriever.search("files", dense=[0.1, 0.2], using="embedding")
    with pytest.raises(BackendError, match="no knn_vector field 'nope'"):
        retriever.search("files", dense=[0.1, 0.2, 0.3, 0.4], using="nope")
    with pytest.raises(BackendError, match="splare-connect does not drop it"):
        backend.drop_collection("kb")
    assert not recorder.find("DELETE", "/kb")


def test_an_app_index_is_not_read_as_ours(index: AppIndex, tiny_encoder: SplareEncoder) -> None:
    backend, recorder = connect(index)
    with pytest.raises(BackendError, match=r"not created by splare-connect .* splare-connect attach --text-field"):
        Retriever(tiny_encoder, backend, "kb")
    with pytest.raises(BackendError, match="does not drop it"):
        backend.drop_collection("kb")
    assert not writes(recorder)


def test_documents_keep_their_custom_routing(index: AppIndex, tiny_encoder: SplareEncoder) -> None:
    backend, recorder = connect(index)
    Attacher(tiny_encoder, backend, "kb", text_field="page_content").run()
    actions = {
        line["update"]["_id"]: line["update"]
        for r in recorder.find("POST", "/_bulk")
        for line in r.ndjson
        if "update" in line
    }
    assert actions["doc-0"]["routing"] == "tenant-a" and "routing" not in actions["doc-1"]


def test_an_alias_or_pattern_over_several_indexes_is_refused(index: AppIndex, tiny_encoder: SplareEncoder) -> None:
    backend, recorder = connect(index)
    with pytest.raises(BackendError, match=r"'kb-\*' names 2 indexes \(kb-1, kb-2\); name one index"):
        Attacher(tiny_encoder, backend, "kb-*", text_field="page_content").run()
    with pytest.raises(BackendError, match="names 2 indexes"):
        backend.drop_collection("kb-*")
    assert not writes(recorder)


def test_a_document_that_lost_its_vector_is_encoded_and_one_without_text_is_cleared(
    index: AppIndex, tiny_encoder: SplareEncoder
) -> None:
    backend, _ = connect(index)
    Attacher(tiny_encoder, backend, "kb", text_field="page_content").run()
    index.docs["doc-1"].pop("splare")  # the app re-indexed it with the _source it read, less our field
    index.docs["doc-3"].pop("page_content")  # ...and removed another's text
    backend, recorder = connect(index)
    report = Attacher(tiny_encoder, backend, "kb", text_field="page_content").run()
    assert (report.encoded, report.cleared, report.unchanged) == (1, 1, 4)
    assert "splare" in index.docs["doc-1"]
    assert "splare" not in index.docs["doc-3"] and STATE_KEY not in index.docs["doc-3"]
    scripts = [line["script"]["source"] for r in recorder.find("POST", "/_bulk") for line in r.ndjson[1::2]]
    assert "ctx._source.remove(params.field); ctx._source.remove(params.state_key)" in scripts


def test_the_apps_own_state_key_or_meta_key_is_refused_before_any_write(
    index: AppIndex, tiny_encoder: SplareEncoder
) -> None:
    index.docs["doc-2"][STATE_KEY] = {"hash": "app-own", "owner": "app"}
    backend, recorder = connect(index)
    with pytest.raises(ConfigError, match=r"point doc-2 of 'kb' already has a payload key '_splare'"):
        Attacher(tiny_encoder, backend, "kb", text_field="page_content").run()
    assert not writes(recorder)
    backend, _ = connect(index)
    Attacher(tiny_encoder, backend, "kb", text_field="page_content", state_key="_splare_state").run()
    assert index.docs["doc-2"][STATE_KEY] == {"hash": "app-own", "owner": "app"}
    assert index.mapping["_meta"]["splare_connect"]["state_key"] == "_splare_state"

    other = AppIndex([])
    other.mapping["_meta"]["splare_connect"] = "the app's own"
    backend, recorder = connect(other)
    assert backend.inspect_collection("kb").spec_key_taken
    with pytest.raises(BackendError, match="its metadata key 'splare_connect' in _meta holds the application's own"):
        Retriever(tiny_encoder, backend, "kb")
    with pytest.raises(ConfigError, match="metadata key 'splare_connect' of 'kb' is the application's own"):
        Attacher(tiny_encoder, backend, "kb", text_field="page_content").run()
    assert not writes(recorder)


@pytest.mark.parametrize(
    "source", [{"excludes": ["embedding"]}, {"includes": ["page_content", "metadata"]}, {"enabled": False}]
)
def test_an_index_whose_source_leaves_fields_out_is_refused(
    index: AppIndex, tiny_encoder: SplareEncoder, source: dict[str, Any]
) -> None:
    """A scripted update rebuilds the document from _source: fields left out of it would be lost."""
    index.mapping["_source"] = source
    backend, recorder = connect(index)
    with pytest.raises(ConfigError, match=r"cannot attach to 'kb': its _source .*(nothing was changed)"):
        Attacher(tiny_encoder, backend, "kb", text_field="page_content").run()
    assert not writes(recorder)


@pytest.mark.parametrize("where", ["mapped", "in a document"])
@pytest.mark.parametrize("name", ["splare", STATE_KEY])
def test_a_field_the_app_declared_or_stored_under_our_names_is_refused(
    index: AppIndex, tiny_encoder: SplareEncoder, where: str, name: str
) -> None:
    if where == "mapped":
        index.mapping["properties"][name] = {"type": "keyword"}
    else:  # an index with "dynamic": false keeps unmapped keys in _source only
        index.docs["doc-3"][name] = "the app's own"
    backend, recorder = connect(index)
    with pytest.raises((BackendError, ConfigError), match=rf"{name!r}.*\(nothing was changed\)"):
        Attacher(tiny_encoder, backend, "kb", text_field="page_content").run()
    assert not writes(recorder)
