"""A recording connection for the real opensearch-py client.

The client, its transport, JSON serialisation and bulk helpers run unchanged; only the
last step, the HTTP exchange, is replaced: each request is recorded (method, path,
query parameters, decoded body) and answered from a script of responses shaped like
OpenSearch's documented ones. This is not an OpenSearch server and keeps no index
state; tests use it to check what the backend sends and how it reads replies.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from opensearchpy import Connection, OpenSearch


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]
    body: Any

    @property
    def ndjson(self) -> list[dict[str, Any]]:
        """The lines of a bulk body."""
        return [json.loads(line) for line in self.body.splitlines() if line.strip()]


Responder = Callable[[Request], tuple[int, Any]]


@dataclass
class Recorder:
    """Holds the requests seen and the function that answers them."""

    respond: Responder
    requests: list[Request] = field(default_factory=list)

    def find(self, method: str, path_part: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and path_part in r.path]


class RecordingConnection(Connection):
    def __init__(self, recorder: Recorder | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        assert recorder is not None
        self.recorder = recorder

    def close(self) -> None:
        """Nothing to release: no socket is ever opened (the backend's close() calls this)."""

    def perform_request(
        self,
        method: str,
        url: str,
        params: Any = None,
        body: Any = None,
        timeout: Any = None,
        ignore: Any = (),
        headers: Any = None,
    ) -> tuple[int, dict[str, str], str]:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        # opensearch-py passes list parameters joined into bytes (b"a,b"): decoded as a server would.
        query.update({k: v.decode("utf-8") if isinstance(v, bytes) else str(v) for k, v in (params or {}).items()})
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        try:
            decoded = json.loads(text) if text else None
        except json.JSONDecodeError:
            decoded = text  # NDJSON (bulk) stays text
        request = Request(method, parts.path, query, decoded)
        self.recorder.requests.append(request)
        status, payload = self.recorder.respond(request)
        raw = payload if isinstance(payload, str) else json.dumps(payload)
        if not 200 <= status < 300 and status not in (ignore or ()):
            self._raise_error(status, raw, "application/json")
        return status, {"content-type": "application/json"}, raw


def recording_client(recorder: Recorder) -> OpenSearch:
    """A real OpenSearch client whose HTTP exchanges go to ``recorder``."""
    return OpenSearch(
        hosts=[{"host": "cluster.test", "port": 9200}],
        connection_class=RecordingConnection,
        recorder=recorder,
        max_retries=0,
    )


# Responses as documented for OpenSearch 3.x.
CLUSTER_INFO = {
    "name": "node-1",
    "cluster_name": "opensearch",
    "cluster_uuid": "1wNyhZYkTOS9h0UlD86g3Q",
    "version": {
        "distribution": "opensearch",
        "number": "3.3.0",
        "build_type": "tar",
        "lucene_version": "10.3.0",
        "minimum_wire_compatibility_version": "2.19.0",
        "minimum_index_compatibility_version": "2.0.0",
    },
    "tagline": "The OpenSearch Project: https://opensearch.org/",
}
PLUGINS_WITH_NEURAL = [
    {"name": "node-1", "component": "opensearch-knn", "version": "3.3.0.0"},
    {"name": "node-1", "component": "opensearch-ml", "version": "3.3.0.0"},
    {"name": "node-1", "component": "opensearch-neural-search", "version": "3.3.0.0"},
]


def index_not_found(index: str) -> tuple[int, dict[str, Any]]:
    error = {
        "type": "index_not_found_exception",
        "reason": f"no such index [{index}]",
        "index": index,
        "resource.id": index,
        "resource.type": "index_or_alias",
        "index_uuid": "_na_",
    }
    return 404, {"error": {"root_cause": [error], **error}, "status": 404}


def acknowledged(index: str | None = None) -> tuple[int, dict[str, Any]]:
    body: dict[str, Any] = {"acknowledged": True}
    if index:
        body.update({"shards_acknowledged": True, "index": index})
    return 200, body


def bulk_response(request: Request, refuse: dict[str, tuple[int, dict[str, Any]]] | None = None) -> tuple[int, Any]:
    """A ``_bulk`` reply: one item per action; ``refuse`` maps _id -> (status, error)."""
    refuse = refuse or {}
    lines = request.ndjson
    items = []
    position = 0
    while position < len(lines):
        ((operation, meta),) = lines[position].items()
        position += 1 if operation == "delete" else 2
        doc_id = meta["_id"]
        if doc_id in refuse:
            status, error = refuse[doc_id]
            items.append({operation: {"_index": meta["_index"], "_id": doc_id, "status": status, "error": error}})
        else:
            status = 200 if operation == "delete" else 201
            result = "deleted" if operation == "delete" else "created"
            items.append(
                {
                    operation: {
                        "_index": meta["_index"],
                        "_id": doc_id,
                        "_version": 1,
                        "result": result,
                        "_shards": {"total": 2, "successful": 1, "failed": 0},
                        "_seq_no": position,
                        "_primary_term": 1,
                        "status": status,
                    }
                }
            )
    errors = any("error" in next(iter(item.values())) for item in items)
    return 200, {"took": 12, "errors": errors, "items": items}


def search_response(hits: list[tuple[str, float, dict[str, Any]]]) -> tuple[int, dict[str, Any]]:
    return 200, {
        "took": 5,
        "timed_out": False,
        "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
        "hits": {
            "total": {"value": len(hits), "relation": "eq"},
            "max_score": max((s for _, s, _ in hits), default=None),
            "hits": [
                {"_index": "docs", "_id": doc_id, "_score": score, "_source": source, "sort": [source.get("record_id")]}
                for doc_id, score, source in hits
            ],
        },
    }
