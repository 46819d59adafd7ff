"""Every request body the OpenSearch backend sends, as pure functions.

Kept apart from the client code so that tests check them against the documented API and
the README can show exactly what goes over the wire.

Field conventions:

- ``rank_features`` (exact scoring, the default): feature names are plain integer
  strings (``"1234"``), because the ``rank_feature`` query splits a field name at its last
  dot. Lucene stores each weight with 9 significant bits (``floatToIntBits >>> 15``), a
  relative error of about 0.4 %; weights below ``Float.MIN_NORMAL`` are rejected, so
  they are dropped here (they score nothing anyway).
- ``neural_sparse`` query weights must lie in (0, 64]: a query whose largest weight is
  above 64 is scaled down uniformly, which leaves the ranking unchanged.
- ``sparse_vector`` (SEISMIC, OpenSearch 3.3+, optional): ids must be below 32,768 (the
  field folds them into 15 bits) and weights are byte-quantized up to a ceiling.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from splare_connect.backends import CollectionSpec
from splare_connect.backends.schema import (
    METADATA,
    PAYLOAD_FIELDS,
    SPEC_KEY,
    STATE_HASH,
    metadata_path,
    stored_payload,
)
from splare_connect.errors import ConfigError
from splare_connect.filters import Condition
from splare_connect.sparse_vector import SparseVector

FLOAT_MIN_NORMAL = float(np.finfo(np.float32).tiny)  # 1.1754944e-38
MAX_QUERY_WEIGHT = 64.0
SEISMIC_ID_LIMIT = 32_768
DEFAULT_MAX_CLAUSES = 1024  # indices.query.bool.max_clause_count


def payload_properties(spec: CollectionSpec) -> dict[str, Any]:
    """Mapping properties of the stored payload, one per :data:`~splare_connect.backends.schema.PAYLOAD_FIELDS`.

    Each field's kind (keyword, integer, text, object) is also its OpenSearch type;
    ``metadata`` maps the collection's indexed fields as keywords (the others are mapped
    dynamically when first written).
    """
    properties: dict[str, Any] = {}
    for stored in PAYLOAD_FIELDS:
        properties[stored.name] = {"type": stored.kind}
        if stored.name == METADATA:
            properties[stored.name]["properties"] = {field: {"type": "keyword"} for field in spec.indexed_fields}
    return properties


def ann_field(spec: CollectionSpec) -> str:
    """Name of the optional SEISMIC ``sparse_vector`` field."""
    return f"{spec.sparse_vector_name}_ann"


def features(vector: SparseVector) -> dict[str, float]:
    """``{"<feature id>": weight}`` for a ``rank_features`` / ``sparse_vector`` field."""
    keep = vector.values >= FLOAT_MIN_NORMAL
    return dict(zip(map(str, vector.indices[keep].tolist()), vector.values[keep].tolist(), strict=True))


def query_tokens(vector: SparseVector) -> tuple[dict[str, float], float]:
    """``neural_sparse`` query tokens, scaled into (0, 64] if needed; returns (tokens, scale)."""
    tokens = features(vector)
    largest = max(tokens.values(), default=0.0)
    scale = MAX_QUERY_WEIGHT / largest if largest > MAX_QUERY_WEIGHT else 1.0
    if scale != 1.0:
        tokens = {key: value * scale for key, value in tokens.items()}
    return tokens, scale


def index_body(
    spec: CollectionSpec,
    *,
    shards: int = 1,
    replicas: int = 1,
    approximate: bool = False,
    seismic: Mapping[str, Any] | None = None,
    quantization_ceiling: float | None = None,
) -> dict[str, Any]:
    """Settings and mappings for ``PUT /<index>``; the spec goes into ``_meta``.

    Raises:
        ConfigError: ``approximate`` on a model whose latent ids don't fit SEISMIC's
            15-bit id range, or without a weight ceiling to quantize with.
    """
    properties: dict[str, Any] = {spec.sparse_vector_name: {"type": "rank_features"}, **payload_properties(spec)}
    settings: dict[str, Any] = {"number_of_shards": shards, "number_of_replicas": replicas}
    if spec.dense_dim:
        settings["knn"] = True
        properties[spec.dense_vector_name] = {
            "type": "knn_vector",
            "dimension": spec.dense_dim,
            "method": {"name": "hnsw", "space_type": "cosinesimil", "engine": "lucene"},
        }
    if approximate:
        if spec.sparse_dim > SEISMIC_ID_LIMIT:
            raise ConfigError(
                f"the model has {spec.sparse_dim} latent features but OpenSearch's sparse_vector field folds "
                f"ids into 15 bits (ids >= {SEISMIC_ID_LIMIT} collide); use the exact rank_features field only"
            )
        ceiling = quantization_ceiling if quantization_ceiling is not None else spec.max_weight
        if ceiling is None or not ceiling > 0:
            raise ConfigError(
                "an approximate (SEISMIC) field quantizes weights up to a ceiling: pass quantization_ceiling, "
                "or create the index through a sync, which records the model's largest weight"
            )
        parameters = {
            **(seismic or {}),
            "quantization_ceiling_ingest": float(ceiling),
            "quantization_ceiling_search": float(ceiling),
        }
        settings["sparse"] = True
        properties[ann_field(spec)] = {
            "type": "sparse_vector",
            "method": {"name": "seismic", "parameters": parameters},
        }
    return {
        "settings": {"index": settings},
        "mappings": {"_meta": {SPEC_KEY: spec.to_dict()}, "properties": properties},
    }


def spec_from_meta(name: str, meta: Any) -> CollectionSpec | None:
    """The CollectionSpec stored in an index mapping's ``_meta``, or None when the value there is the app's own."""
    return CollectionSpec.parse_stored(name, meta)


def document_source(
    spec: CollectionSpec,
    record_id: str,
    sparse: SparseVector,
    dense: np.ndarray | None,
    payload: Mapping[str, Any],
    *,
    approximate: bool = False,
) -> dict[str, Any]:
    """The ``_source`` of one point."""
    source: dict[str, Any] = {**stored_payload(record_id, payload), spec.sparse_vector_name: features(sparse)}
    if approximate:
        source[ann_field(spec)] = source[spec.sparse_vector_name]
    if spec.dense_dim and dense is not None:
        source[spec.dense_vector_name] = np.asarray(dense, np.float32).tolist()
    return source


def sparse_query(
    spec: CollectionSpec,
    vector: SparseVector,
    *,
    mode: str,
    k: int,
    max_clauses: int = DEFAULT_MAX_CLAUSES,
    ann_parameters: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The sparse query clause.

    ``mode`` is ``"neural_sparse"`` (neural-search plugin, 2.14+: exact dot product on the
    ``rank_features`` field), ``"ann"`` (SEISMIC ``sparse_vector`` field, 3.3+), or
    ``"rank_feature"`` (no plugin: a bool/should of ``rank_feature`` clauses with the
    linear function, whose scores add up to the same dot product, limited to
    ``max_clauses`` features, the largest kept).
    """
    if mode == "neural_sparse":
        tokens, _ = query_tokens(vector)
        return {"neural_sparse": {spec.sparse_vector_name: {"query_tokens": tokens}}}
    if mode == "ann":
        tokens, _ = query_tokens(vector)
        parameters = {"k": k, **(ann_parameters or {})}
        return {"neural_sparse": {ann_field(spec): {"query_tokens": tokens, "method_parameters": parameters}}}
    if mode == "rank_feature":
        kept = vector.top_k(max_clauses)
        clauses = [
            {"rank_feature": {"field": f"{spec.sparse_vector_name}.{feature}", "boost": weight, "linear": {}}}
            for feature, weight in features(kept).items()
        ]
        return {"bool": {"should": clauses}}
    raise ConfigError(f"unknown sparse query mode {mode!r}")


def filter_clauses(conditions: Sequence[Condition]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Core conditions as (``filter``, ``must_not``) clauses on ``metadata.<key>``.

    Metadata is indexed as keywords, so values are compared as strings (``8`` matches
    ``"8"``), and ranges use the field's numeric value when it has one.
    """
    keep: list[dict[str, Any]] = []
    drop: list[dict[str, Any]] = []
    for condition in conditions:
        field = metadata_path(condition.key)
        if condition.op == "eq":
            keep.append({"term": {field: _keyword(condition.value)}})
        elif condition.op == "ne":
            drop.append({"term": {field: _keyword(condition.value)}})
        elif condition.op == "in":
            keep.append({"terms": {field: [_keyword(v) for v in condition.value]}})  # type: ignore[union-attr]
        else:
            keep.append({"range": {field: {condition.op: condition.value}}})
    return keep, drop


def _keyword(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def with_filter(query: dict[str, Any], filters: Any) -> dict[str, Any]:
    """Wrap a query in ``bool`` with the filter (core conditions or a raw OpenSearch clause)."""
    if not filters:
        return query
    if isinstance(filters, Sequence) and all(isinstance(c, Condition) for c in filters):
        keep, drop = filter_clauses(filters)
    elif isinstance(filters, Mapping):
        keep, drop = [dict(filters)], []
    else:
        raise ConfigError(f"unsupported filter for OpenSearch: {type(filters).__name__}")
    clause: dict[str, Any] = {"must": [query], "filter": keep}
    if drop:
        clause["must_not"] = drop
    return {"bool": clause}


def knn_query(spec: CollectionSpec, dense: np.ndarray, k: int, field: str | None = None) -> dict[str, Any]:
    """k-NN clause on the dense field: the collection's own, or ``field`` (an app's ``knn_vector``)."""
    name = field or spec.dense_vector_name
    return {"knn": {name: {"vector": np.asarray(dense, np.float32).tolist(), "k": k}}}


def attach_mapping(spec: CollectionSpec, their_meta: Mapping[str, Any]) -> dict[str, Any]:
    """``PUT /<index>/_mapping`` body adding the ``rank_features`` field and the state's hash to an app's index.

    The request replaces ``_meta`` as a whole, so the app's own ``_meta`` keys are sent
    back with the spec merged in; existing fields are not named, so they stay as they are.
    """
    return {
        "_meta": {**their_meta, SPEC_KEY: spec.to_dict()},
        "properties": {
            spec.sparse_vector_name: {"type": "rank_features"},
            spec.state_key: {"properties": {STATE_HASH: {"type": "keyword"}}},
        },
    }


# A partial update's "doc" merges objects key by key, so the features of an earlier text
# would survive in the rank_features object; a script replaces both values outright.
_SET_SPARSE_AND_STATE = "ctx._source[params.field] = params.vector; ctx._source[params.state_key] = params.state"


def sparse_update(
    spec: CollectionSpec,
    point_id: str,
    vector: SparseVector,
    state: Mapping[str, Any],
    routing: str | None = None,
) -> dict[str, Any]:
    """A bulk ``update`` action that sets the sparse field and the state key and touches nothing else.

    Scripted, not a partial ``doc``: OpenSearch merges a partial doc into the stored one
    recursively, which would keep the features of the point's previous text.
    """
    params = {"vector": features(vector), "state": dict(state)}
    return _scripted_update(spec, point_id, _SET_SPARSE_AND_STATE, params, routing)


_CLEAR_SPARSE_AND_STATE = "ctx._source.remove(params.field); ctx._source.remove(params.state_key)"


def sparse_clear(spec: CollectionSpec, point_id: str, routing: str | None = None) -> dict[str, Any]:
    """A bulk ``update`` action removing the sparse field and the state key, and nothing else."""
    return _scripted_update(spec, point_id, _CLEAR_SPARSE_AND_STATE, {}, routing)


def _scripted_update(
    spec: CollectionSpec, point_id: str, source: str, params: Mapping[str, Any], routing: str | None
) -> dict[str, Any]:
    """A bulk ``update`` action running a painless script on splare-connect's two fields.

    Retried on a version conflict (the app writing the same document meanwhile);
    ``routing`` is the document's own, when the index routes by something other than its id.
    """
    action: dict[str, Any] = {
        "_op_type": "update",
        "_index": spec.name,
        "_id": point_id,
        "retry_on_conflict": 3,
        "script": {
            "source": source,
            "lang": "painless",
            "params": {"field": spec.sparse_vector_name, "state_key": spec.state_key, **params},
        },
    }
    if routing is not None:
        action["routing"] = routing
    return action


def search_body(spec: CollectionSpec, query: dict[str, Any], k: int, app_vectors: Sequence[str] = ()) -> dict[str, Any]:
    """A search request returning payloads but not the (large) vectors.

    On an attached index the exclusions are exact names (splare-connect's field and state,
    the app's ``app_vectors``): a pattern such as ``dense*`` could hide an app's own field.
    """
    excludes = [spec.sparse_vector_name, spec.state_key, *app_vectors] if spec.attached else source_excludes(spec)
    return {"size": k, "query": query, "_source": {"excludes": excludes}}


def source_excludes(spec: CollectionSpec) -> list[str]:
    """``_source`` patterns that leave out the spec's vector fields (``splare*`` also covers ``splare_ann``).

    A pattern that would also hide a payload field (a sparse field named ``te`` would
    hide ``text``) is replaced by the exact field names.
    """
    excludes: list[str] = []
    for name, extra in ((spec.sparse_vector_name, [ann_field(spec)]), (spec.dense_vector_name, [])):
        if any(stored.name.startswith(name) for stored in PAYLOAD_FIELDS):
            excludes += [name, *extra]
        else:
            excludes.append(f"{name}*")
    return excludes


def normalized_weights(weights: tuple[float, float]) -> list[float]:
    """Weights as fractions summing to 1 (what OpenSearch's processors expect)."""
    total = sum(weights)
    if total <= 0 or min(weights) < 0:
        raise ConfigError(f"fusion weights must be >= 0 and not all 0, got {weights}")
    return [w / total for w in weights]


def rrf_pipeline(rank_constant: int, weights: tuple[float, float]) -> tuple[str, dict[str, Any]]:
    """(name, body) of a ``score-ranker-processor`` RRF pipeline (OpenSearch 2.19+)."""
    combination: dict[str, Any] = {"technique": "rrf", "rank_constant": rank_constant}
    fractions = normalized_weights(weights)
    if fractions != [0.5, 0.5]:
        combination["parameters"] = {"weights": fractions}
    name = f"splare-rrf-k{rank_constant}-w{fractions[0]:.3f}-{fractions[1]:.3f}"
    body = {
        "description": "splare-connect hybrid: reciprocal rank fusion of sparse and dense",
        "phase_results_processors": [{"score-ranker-processor": {"combination": combination}}],
    }
    return name, body


def normalization_pipeline(technique: str, weights: tuple[float, float]) -> tuple[str, dict[str, Any]]:
    """(name, body) of a ``normalization-processor`` pipeline (score-based fusion)."""
    fractions = normalized_weights(weights)
    name = f"splare-norm-{technique}-w{fractions[0]:.3f}-{fractions[1]:.3f}"
    body = {
        "description": "splare-connect hybrid: normalized score fusion of sparse and dense",
        "phase_results_processors": [
            {
                "normalization-processor": {
                    "normalization": {"technique": technique},
                    "combination": {"technique": "arithmetic_mean", "parameters": {"weights": fractions}},
                }
            }
        ],
    }
    return name, body


def two_phase_pipeline(prune_ratio: float, expansion_rate: float, max_window_size: int) -> tuple[str, dict[str, Any]]:
    """(name, body) of a ``neural_sparse_two_phase_processor`` pipeline (faster sparse queries)."""
    name = f"splare-two-phase-{prune_ratio}-{expansion_rate}-{max_window_size}"
    body = {
        "description": "splare-connect: two-phase neural sparse search",
        "request_processors": [
            {
                "neural_sparse_two_phase_processor": {
                    "tag": "splare-two-phase",
                    "enabled": True,
                    "two_phase_parameter": {
                        "prune_ratio": prune_ratio,
                        "expansion_rate": expansion_rate,
                        "max_window_size": max_window_size,
                    },
                }
            }
        ],
    }
    return name, body
