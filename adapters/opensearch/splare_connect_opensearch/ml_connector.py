"""An OpenSearch ML Commons connector to the service, so OpenSearch itself calls the encoder.

With a remote model registered on this connector, a ``sparse_encoding`` ingest processor
encodes documents as they are indexed and a ``neural_sparse`` query with ``model_id``
encodes its query text, both through ``POST <service>/encode``. Encoding is role-specific
(queries and documents get different prefixes and pruning) and one connector sends one
role, so a cluster registers two models: ``role="document"`` for the ingest pipeline and
``role="query"`` for queries.

How a request travels (ML Commons, ``protocol: http``):

1. OpenSearch hands the texts to the ``predict`` action as ``text_docs``. The built-in
   pre-process function ``connector.pre_process.default.embedding`` turns them into the
   parameter ``input``, a JSON array of strings (JSON-encoded by OpenSearch in Java: a
   Painless script would have to escape each text by string concatenation).
2. ``request_body`` places that array in our ``/encode`` body:
   ``{"texts": ${parameters.input}, "role": "document", "sparse": true, "dense": false}``.
3. The header ``Authorization: Bearer ${credential.api_key}`` carries the key, which ML
   Commons stores encrypted with the connector (never in the body of the action).
4. :data:`POST_PROCESS_FUNCTION` (Painless) maps our response to the model tensor the
   neural-search plugin reads: ``{"name": "output", "dataAsMap": {"response": [{token:
   weight, ...}, ...]}}``, one map per text (:data:`SPARSE_ENCODING_MAPPING` documents both
   shapes).

The token names are the ones the OpenSearch adapter stores in its ``rank_features``
field (:func:`splare_connect_opensearch.bodies.features`): a latent's id as a decimal
string, weights below ``Float.MIN_NORMAL`` dropped (Lucene refuses them). OpenSearch
cannot run Python, so the rule is restated in Painless here; the tests check it against
the adapter's function.

What is verified, and what is not (no OpenSearch cluster runs in this project's tests):
the request bodies that :func:`register_remote_model` sends go through the real
opensearch-py client to a recording transport; the mapping is checked by a Python
transcription of the Painless script, line by line, applied to real ``/encode`` answers
of a running service. The Painless script itself has not been compiled or run by
OpenSearch, and ML Commons' handling of the pre-process, headers and credential is taken
from its documentation and source, not observed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from splare_connect.errors import BackendError, ConfigError
from splare_connect.redaction import safe_message

API_KEY_ENV = "SPLARE_API_KEY"
ROLES = ("document", "query")
PRE_PROCESS_FUNCTION = "connector.pre_process.default.embedding"
# Float.MIN_NORMAL as a double: the adapter drops weights below it (FLOAT_MIN_NORMAL in its bodies module).
MIN_WEIGHT = 1.1754943508222875e-38

# The Painless post-process function. ``params`` is our /encode response, parsed by ML
# Commons; numbers may arrive as Double or Long, so each goes through Number. It returns
# one model tensor as JSON. Kept plain so the tests can transcribe it line by line.
POST_PROCESS_FUNCTION = """
def vectors = params.sparse;
if (vectors == null) {
  throw new IllegalArgumentException('the splare-connect service returned no sparse vectors');
}
StringBuilder out = new StringBuilder('{"name":"output","dataAsMap":{"response":[');
for (int i = 0; i < vectors.size(); ++i) {
  if (i > 0) {
    out.append(',');
  }
  def ids = vectors[i].indices;
  def weights = vectors[i].values;
  out.append('{');
  boolean first = true;
  for (int j = 0; j < ids.size(); ++j) {
    double weight = ((Number) weights[j]).doubleValue();
    if (weight < 1.1754943508222875E-38) {
      continue;
    }
    if (!first) {
      out.append(',');
    }
    first = false;
    out.append('"').append(Long.toString(((Number) ids[j]).longValue())).append('":').append(Double.toString(weight));
  }
  out.append('}');
}
out.append(']}}');
return out.toString();
""".strip()

# The mapping the post-process function implements, as JSON shapes ("<...>" marks a value).
SPARSE_ENCODING_MAPPING: dict[str, Any] = {
    "service_response": {
        "sparse": [{"indices": ["<int latent id>", "..."], "values": ["<float weight>", "..."]}, "..."],
        "...": "other fields (dense, dim, fingerprint_digest, ...) are ignored",
    },
    "model_tensor": {
        "name": "output",
        "dataAsMap": {"response": [{"<str(latent id)>": "<float weight>", "...": "..."}, "..."]},
    },
    "rules": [
        "one token map per text, in the order of the texts",
        "token = the latent id in decimal ('1234'), as the OpenSearch adapter's rank_features field",
        "weights below Float.MIN_NORMAL (1.1754943508222875e-38) are dropped, as the adapter drops them",
        "weights are not rescaled: log1p activations stay far below Lucene's bound of 64",
    ],
}


def request_body_template(role: str) -> str:
    """The action's ``request_body``: our ``/encode`` body around the pre-processed texts."""
    _check_role(role)
    return '{"texts": ${parameters.input}, "role": "' + role + '", "sparse": true, "dense": false}'


def connector_blueprint(
    service_url: str,
    *,
    role: str = "document",
    api_key: str | None = None,
    name: str | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """The body of ``POST /_plugins/_ml/connectors/_create`` for a service at ``service_url``.

    Args:
        service_url: The service's base URL as OpenSearch reaches it (it must match the
            cluster's ``plugins.ml_commons.trusted_connector_endpoints_regex``).
        role: ``"document"`` (for a ``sparse_encoding`` ingest processor) or ``"query"``
            (for ``neural_sparse`` queries with ``model_id``).
        api_key: The service's key; stored by ML Commons as the connector's credential and
            sent as ``Authorization: Bearer ${credential.api_key}``. ``None``: a service
            without a key (no credential, no header).
        name: Connector name; default ``"splare-connect <role> encoder"``.
        description: Connector description.

    Raises:
        ConfigError: A URL that is not http(s), or an unknown role.
    """
    _check_role(role)
    base = _check_url(service_url)
    headers = {"content-type": "application/json"}
    body: dict[str, Any] = {
        "name": name or f"splare-connect {role} encoder",
        "description": description or f"splare-connect encoder service at {base}: {role} sparse vectors",
        "version": 1,
        "protocol": "http",
        "parameters": {},
        "actions": [
            {
                "action_type": "predict",
                "method": "POST",
                "url": f"{base}/encode",
                "headers": headers,
                "request_body": request_body_template(role),
                "pre_process_function": PRE_PROCESS_FUNCTION,
                "post_process_function": POST_PROCESS_FUNCTION,
            }
        ],
    }
    if api_key is not None:
        body["credential"] = {"api_key": api_key}
        headers["Authorization"] = "Bearer ${credential.api_key}"
    return body


@dataclass(frozen=True)
class RemoteModel:
    """A model registered (and deployed) on a connector to the service."""

    connector_id: str
    model_id: str
    role: str


def register_remote_model(
    client: Any,
    service_url: str,
    *,
    role: str = "document",
    api_key: str | None = None,
    name: str | None = None,
    model_group_id: str | None = None,
    deploy: bool = True,
    wait_s: float = 60.0,
) -> RemoteModel:
    """Create the connector, register a ``remote`` model on it, and deploy it.

    Args:
        client: An ``opensearchpy.OpenSearch`` client (its transport sends the requests).
        service_url: The service's base URL as the cluster reaches it.
        role: ``"document"`` or ``"query"`` (see :func:`connector_blueprint`).
        api_key: The service's key; default ``$SPLARE_API_KEY`` (none if unset).
        name: Model (and connector) name; default ``"splare-connect <role> encoder"``.
        model_group_id: The model group to register into (the cluster's default otherwise).
        deploy: Deploy the model (a remote model must be deployed before use).
        wait_s: How long to wait for ML Commons' registration and deployment tasks.

    Returns:
        The connector and model ids: use ``model_id`` in a ``sparse_encoding`` processor
        (:func:`ingest_pipeline_body`) or a ``neural_sparse`` query (:func:`neural_sparse_query`).

    Raises:
        BackendError: OpenSearch refused a request or a task failed (one line, redacted).
    """
    key = api_key if api_key is not None else (os.environ.get(API_KEY_ENV) or None)
    label = name or f"splare-connect {role} encoder"
    blueprint = connector_blueprint(service_url, role=role, api_key=key, name=label)
    connector = _send(client, "POST", "/_plugins/_ml/connectors/_create", blueprint)
    connector_id = _field(connector, "connector_id", "connector creation")
    register: dict[str, Any] = {
        "name": label,
        "function_name": "remote",
        "description": f"splare-connect {role} encoder (sparse_encoding)",
        "connector_id": connector_id,
    }
    if model_group_id is not None:
        register["model_group_id"] = model_group_id
    registered = _send(client, "POST", "/_plugins/_ml/models/_register", register)
    model_id = registered.get("model_id") or _wait_for_task(client, registered, "model_id", wait_s, "registration")
    if deploy:
        deployed = _send(client, "POST", f"/_plugins/_ml/models/{model_id}/_deploy", None)
        if str(deployed.get("status", "")).upper() != "COMPLETED":
            _wait_for_task(client, deployed, None, wait_s, "deployment")
    return RemoteModel(connector_id=connector_id, model_id=str(model_id), role=role)


def ingest_pipeline_body(model_id: str, field_map: Mapping[str, str], description: str | None = None) -> dict[str, Any]:
    """``PUT /_ingest/pipeline/<name>``: encode ``text field -> rank_features field`` through the model."""
    return {
        "description": description or "splare-connect: sparse vectors from the encoder service",
        "processors": [{"sparse_encoding": {"model_id": model_id, "field_map": dict(field_map)}}],
    }


def neural_sparse_query(field: str, text: str, model_id: str) -> dict[str, Any]:
    """A ``neural_sparse`` query clause whose text the (query-role) model encodes."""
    return {"neural_sparse": {field: {"query_text": text, "model_id": model_id}}}


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ConfigError(f"role must be 'document' or 'query', got {role!r}")


def _check_url(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"the service URL must look like http(s)://host:port, got {safe_message(url)!r}")
    if parts.username or parts.password:
        raise ConfigError("put the service's API key in api_key (stored as a connector credential), not in the URL")
    return url.rstrip("/")


def _send(client: Any, method: str, path: str, body: Any) -> dict[str, Any]:
    try:
        answer = client.transport.perform_request(method, path, body=body)
    except Exception as error:  # opensearch-py's errors; the core does not import the client to name them
        status = getattr(error, "status_code", None)
        where = f"{method} {path}" + (f" answered {status}" if status else " failed")
        raise BackendError(f"OpenSearch ML Commons: {where}: {safe_message(str(error), limit=400)}") from None
    return answer if isinstance(answer, dict) else {}


def _field(answer: Mapping[str, Any], key: str, what: str) -> str:
    value = answer.get(key)
    if not value:
        raise BackendError(f"OpenSearch ML Commons: the {what} answer has no {key}: {safe_message(str(answer))}")
    return str(value)


def _wait_for_task(client: Any, answer: Mapping[str, Any], key: str | None, wait_s: float, what: str) -> str:
    """Poll an ML Commons task until it completes; return the ``key`` it reports (e.g. ``model_id``)."""
    task_id = _field(answer, "task_id", what)
    deadline = time.monotonic() + wait_s
    while True:
        task = _send(client, "GET", f"/_plugins/_ml/tasks/{task_id}", None)
        state = str(task.get("state", "")).upper()
        if state == "COMPLETED":
            return _field(task, key, what) if key else task_id
        if state in ("FAILED", "CANCELLED", "COMPLETED_WITH_ERROR"):
            raise BackendError(f"OpenSearch ML Commons: the {what} task {task_id} {state.lower()}: {task.get('error')}")
        if time.monotonic() >= deadline:
            raise BackendError(f"OpenSearch ML Commons: the {what} task {task_id} is still {state or 'pending'}")
        time.sleep(0.5)
