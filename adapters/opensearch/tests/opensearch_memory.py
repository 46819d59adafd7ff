"""An in-memory index behind the recording connection, so OpenSearch can join the congruence suite.

:mod:`tests.opensearch_recording` answers from a script; this responder keeps what the
backend writes (index mappings, ``_bulk`` documents) and answers the requests the
backend sends with the documented semantics of the clauses it uses. It is a tested fake,
as qdrant-client's local mode is for Qdrant: it checks that the backend asks for the
right thing (field names, query tokens, filters, paging, ids) and reads the reply
right, not that OpenSearch scores as documented.

Documented behaviour it follows:

- ``rank_features`` keeps 9 significant bits of each weight (Lucene's ``FeatureField``
  stores ``floatToIntBits(w) >>> 15``), and ``neural_sparse`` / linear ``rank_feature``
  scores are the sum of query weight times stored weight (:func:`stored_weight`);
- ``term`` / ``terms`` compare a value's keyword spelling (``8`` matches ``"8"``),
  ``range`` compares numbers, and ``bool`` combines ``must`` (scored), ``filter``,
  ``must_not`` and ``should``;
- ``_source`` takes a list of fields to include or ``{"excludes": [patterns]}``;
  ``_mget`` takes ``_source_includes``; deleting a missing document is a 404 item.

Anything else (pipelines, ``knn``, ``hybrid``) fails the test loudly.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import Any

import numpy as np
from opensearch_recording import (
    CLUSTER_INFO,
    PLUGINS_WITH_NEURAL,
    Recorder,
    Request,
    acknowledged,
    index_not_found,
    recording_client,
)

from splare_connect.backends.schema import payload_value


def stored_weight(weight: float) -> float:
    """A feature weight as ``rank_features`` keeps it: the float32 with its low 15 bits cleared."""
    bits = np.array([weight], np.float32).view(np.uint32) >> np.uint32(15) << np.uint32(15)
    return float(bits.view(np.float32)[0])


def _keyword(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_RANGES = {"gt": float.__gt__, "gte": float.__ge__, "lt": float.__lt__, "lte": float.__le__}


class MemoryCluster:
    """An OpenSearch 3.3 cluster with neural-search, holding its indexes in memory."""

    def __init__(self) -> None:
        self.mappings: dict[str, dict[str, Any]] = {}
        self.documents: dict[str, dict[str, dict[str, Any]]] = {}

    def client(self) -> Any:
        """A real opensearch-py client whose requests this cluster answers."""
        return recording_client(Recorder(self))

    def __call__(self, request: Request) -> tuple[int, Any]:
        method, parts = request.method, [p for p in request.path.split("/") if p]
        if not parts:
            return 200, CLUSTER_INFO
        if parts == ["_cat", "plugins"]:
            return 200, PLUGINS_WITH_NEURAL
        if parts == ["_bulk"]:
            return 200, self._bulk(request)
        index = parts[0]
        if len(parts) == 1 and method == "PUT":
            if index in self.mappings:
                error = {"type": "resource_already_exists_exception", "reason": f"index [{index}] already exists"}
                return 400, {"error": error, "status": 400}
            self.mappings[index] = request.body["mappings"]
            self.documents[index] = {}
            return acknowledged(index)
        if len(parts) == 1 and method == "DELETE":
            if index not in self.mappings:
                return index_not_found(index)
            del self.mappings[index], self.documents[index]
            return acknowledged()
        if parts[1:] == ["_mapping"] and index == "*":
            return 200, {name: {"mappings": mapping} for name, mapping in self.mappings.items()}
        if index not in self.mappings:
            return index_not_found(index)
        documents = self.documents[index]
        action = parts[1] if len(parts) > 1 else ""
        if action == "_mapping":
            return 200, {index: {"mappings": self.mappings[index]}}
        if action == "_refresh":
            return 200, {"_shards": {"total": 1, "successful": 1, "failed": 0}}
        if action == "_count":
            return 200, {"count": len(documents)}
        if action == "_mget":
            includes = request.params.get("_source_includes", "").split(",")
            return 200, {"docs": [self._get(index, doc_id, includes) for doc_id in request.body["ids"]]}
        if action == "_search":
            if "search_pipeline" in request.params:
                raise AssertionError("search pipelines are not modelled: check their requests instead")
            return 200, self._search(index, request.body)
        raise AssertionError(f"unexpected request {method} {request.path}")

    def _bulk(self, request: Request) -> dict[str, Any]:
        lines = request.ndjson
        items = []
        position = 0
        while position < len(lines):
            ((operation, meta),) = lines[position].items()
            documents = self.documents.setdefault(meta["_index"], {})
            if operation == "delete":
                position += 1
                found = documents.pop(meta["_id"], None) is not None
                result = {"_id": meta["_id"], "status": 200 if found else 404}
            else:
                documents[meta["_id"]] = lines[position + 1]
                position += 2
                result = {"_id": meta["_id"], "status": 201, "result": "created"}
            items.append({operation: {"_index": meta["_index"], **result}})
        return {"took": 1, "errors": False, "items": items}

    def _get(self, index: str, doc_id: str, includes: list[str]) -> dict[str, Any]:
        source = self.documents[index].get(doc_id)
        if source is None:
            return {"_index": index, "_id": doc_id, "found": False}
        kept = {k: source[k] for k in includes if k in source}
        return {"_index": index, "_id": doc_id, "found": True, "_source": kept}

    def _search(self, index: str, body: Mapping[str, Any]) -> dict[str, Any]:
        scored = []
        for doc_id, source in self.documents[index].items():
            score = self._score(body["query"], source)
            if score is not None:
                scored.append((score, doc_id, source))
        if "sort" in body:
            ((field, order),) = body["sort"][0].items()
            assert order == "asc"
            scored.sort(key=lambda item: item[2][field])
            if "search_after" in body:
                scored = [item for item in scored if item[2][field] > body["search_after"][0]]
        else:
            scored.sort(key=lambda item: -item[0])
        hits = [
            {
                "_index": index,
                "_id": doc_id,
                "_score": score,
                "_source": _filter_source(source, body.get("_source")),
                **({"sort": [source[next(iter(body["sort"][0]))]]} if "sort" in body else {}),
            }
            for score, doc_id, source in scored[: body.get("size", 10)]
        ]
        total = {"value": len(scored), "relation": "eq"}
        return {"took": 1, "timed_out": False, "hits": {"total": total, "hits": hits}}

    def _score(self, query: Mapping[str, Any], source: Mapping[str, Any]) -> float | None:
        """The document's score for a query clause, or None when it doesn't match."""
        ((kind, clause),) = query.items()
        if kind == "match_all":
            return 1.0
        if kind == "neural_sparse":
            ((field, options),) = clause.items()
            stored = source.get(field) or {}
            matched = [token for token in options["query_tokens"] if token in stored]
            if not matched:
                return None
            return sum(options["query_tokens"][t] * stored_weight(stored[t]) for t in matched)
        if kind == "bool":
            return self._bool(clause, source)
        if kind == "term":
            ((field, value),) = clause.items()
            return 0.0 if _keyword(payload_value(source, field)) == value else None
        if kind == "terms":
            ((field, values),) = clause.items()
            return 0.0 if _keyword(payload_value(source, field)) in values else None
        if kind == "range":
            ((field, bounds),) = clause.items()
            value = payload_value(source, field)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                return None
            keep = all(_RANGES[op](float(value), float(bound)) for op, bound in bounds.items())
            return 0.0 if keep else None
        raise AssertionError(f"query clause {kind!r} is not modelled")

    def _bool(self, clause: Mapping[str, Any], source: Mapping[str, Any]) -> float | None:
        total = 0.0
        for part in clause.get("must", []):
            score = self._score(part, source)
            if score is None:
                return None
            total += score
        if any(self._score(part, source) is None for part in clause.get("filter", [])):
            return None
        if any(self._score(part, source) is not None for part in clause.get("must_not", [])):
            return None
        should = [s for s in (self._score(part, source) for part in clause.get("should", [])) if s is not None]
        if clause.get("should") and not should and not (clause.get("must") or clause.get("filter")):
            return None
        return total + sum(should)


def _filter_source(source: Mapping[str, Any], wanted: Any) -> dict[str, Any]:
    if wanted is None:
        return dict(source)
    if isinstance(wanted, list):
        return {k: v for k, v in source.items() if k in wanted}
    patterns = wanted.get("excludes", [])
    return {k: v for k, v in source.items() if not any(fnmatch.fnmatchcase(k, p) for p in patterns)}
