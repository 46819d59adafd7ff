"""The ML Commons connector blueprint: request bodies through the real opensearch-py client, and the
response mapping against the real service.

No OpenSearch cluster runs here. The requests :func:`register_remote_model` sends go to
a recording transport (tests/opensearch_recording.py). The post-process function is
Painless, which cannot run here either: :func:`post_process` below transcribes it line
by line, and is applied to real ``/encode`` answers; its token maps must be the ones the
OpenSearch adapter stores (:func:`splare_connect_opensearch.bodies.features`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from splare_connect.errors import BackendError, ConfigError
from splare_connect.sparse_vector import SparseVector
from splare_connect.testing.service import API_KEY, RunningServer, start_server, stop_server
from splare_connect_opensearch.ml_connector import (
    POST_PROCESS_FUNCTION,
    PRE_PROCESS_FUNCTION,
    SPARSE_ENCODING_MAPPING,
    connector_blueprint,
    ingest_pipeline_body,
    neural_sparse_query,
    register_remote_model,
    request_body_template,
)

pytest.importorskip("splare_connect_opensearch")

from opensearch_recording import Recorder, Request, recording_client

from splare_connect_opensearch.bodies import features

SERVICE = "http://encoder.internal:8000"


# ----------------------------------------------------- the Painless script, transcribed


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """``splare-connect serve --no-search``: the /encode endpoint ML Commons calls, no database."""
    running = start_server(tiny_model_dir, tmp_path_factory.mktemp("connector-log") / "server.log", "--no-search")
    yield running
    stop_server(running)


def java_double_to_string(value: float) -> str:
    """``Double.toString`` (JDK 19+): the shortest digits that read back as the same double, in Java's layout."""
    shortest = repr(value)
    if 1e-3 <= abs(value) < 1e7:  # plain decimal in Java; Python's repr is plain there too
        return shortest
    number = Decimal(shortest)
    digits = "".join(map(str, number.as_tuple().digits)).rstrip("0") or "0"
    sign = "-" if value < 0 else ""
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{number.adjusted()}"


def post_process(params: dict[str, Any]) -> str:
    """POST_PROCESS_FUNCTION, statement by statement (its Painless is quoted above each line)."""
    # def vectors = params.sparse;
    vectors = params.get("sparse")
    # if (vectors == null) { throw new IllegalArgumentException(...); }
    if vectors is None:
        raise ValueError("the splare-connect service returned no sparse vectors")
    # StringBuilder out = new StringBuilder('{"name":"output","dataAsMap":{"response":[');
    out = ['{"name":"output","dataAsMap":{"response":[']
    # for (int i = 0; i < vectors.size(); ++i) {
    for i in range(len(vectors)):
        # if (i > 0) { out.append(','); }
        if i > 0:
            out.append(",")
        # def ids = vectors[i].indices; def weights = vectors[i].values;
        ids = vectors[i]["indices"]
        weights = vectors[i]["values"]
        # out.append('{'); boolean first = true;
        out.append("{")
        first = True
        # for (int j = 0; j < ids.size(); ++j) {
        for j in range(len(ids)):
            # double weight = ((Number) weights[j]).doubleValue();
            weight = float(weights[j])
            # if (weight < 1.1754943508222875E-38) { continue; }
            if weight < 1.1754943508222875e-38:
                continue
            # if (!first) { out.append(','); } first = false;
            if not first:
                out.append(",")
            first = False
            # out.append('"').append(Long.toString(((Number) ids[j]).longValue())).append('":')
            #    .append(Double.toString(weight));
            out.append('"' + str(int(ids[j])) + '":' + java_double_to_string(weight))
        # out.append('}');
        out.append("}")
    # out.append(']}}'); return out.toString();
    out.append("]}}")
    return "".join(out)


def token_weight_maps(tensor_json: str) -> list[dict[str, float]]:
    """What neural-search reads from the tensor: ``dataAsMap.response``, weights as Java floats."""
    tensor = json.loads(tensor_json)
    return [{token: float(np.float32(weight)) for token, weight in m.items()} for m in tensor["dataAsMap"]["response"]]


def adapter_maps(vectors: list[SparseVector]) -> list[dict[str, float]]:
    return [{token: float(np.float32(weight)) for token, weight in features(v).items()} for v in vectors]


def test_the_painless_script_is_the_one_transcribed() -> None:
    """A change to the script must be made to :func:`post_process` too: its statements are pinned here."""
    statements = [line.strip() for line in POST_PROCESS_FUNCTION.splitlines() if line.strip() not in ("", "}")]
    assert statements == [
        "def vectors = params.sparse;",
        "if (vectors == null) {",
        "throw new IllegalArgumentException('the splare-connect service returned no sparse vectors');",
        """StringBuilder out = new StringBuilder('{"name":"output","dataAsMap":{"response":[');""",
        "for (int i = 0; i < vectors.size(); ++i) {",
        "if (i > 0) {",
        "out.append(',');",
        "def ids = vectors[i].indices;",
        "def weights = vectors[i].values;",
        "out.append('{');",
        "boolean first = true;",
        "for (int j = 0; j < ids.size(); ++j) {",
        "double weight = ((Number) weights[j]).doubleValue();",
        "if (weight < 1.1754943508222875E-38) {",
        "continue;",
        "if (!first) {",
        "out.append(',');",
        "first = false;",
        """out.append('"').append(Long.toString(((Number) ids[j]).longValue())).append('":')"""
        ".append(Double.toString(weight));",
        "out.append('}');",
        "out.append(']}}');",
        "return out.toString();",
    ]
    assert float("1.1754943508222875E-38") == float(np.finfo(np.float32).tiny)  # the adapter's FLOAT_MIN_NORMAL


# --------------------------------------------------------- mapping against the service
@pytest.mark.parametrize("role", ["document", "query"])
@pytest.mark.parametrize("numbers", ["as-sent", "gson-doubles"])
def test_service_answers_map_to_the_adapters_token_maps(
    server: RunningServer,
    tiny_encoder,
    example_records,
    role: str,
    numbers: str,  # type: ignore[no-untyped-def]
) -> None:
    texts = [r["text"][:400] for r in example_records[:6]] + ['quotes " and \\ backslashes', ""]
    # 1. connector.pre_process.default.embedding: text_docs -> parameters.input, a JSON array of strings.
    parameters = {"input": json.dumps(texts)}
    # 2. request_body with ${parameters.input} substituted: must be our /encode body.
    body_text = request_body_template(role).replace("${parameters.input}", parameters["input"])
    assert json.loads(body_text) == {"texts": texts, "role": role, "sparse": True, "dense": False}
    # 3. The action's headers, ${credential.api_key} substituted.
    headers = connector_blueprint(SERVICE, role=role, api_key=API_KEY)["actions"][0]["headers"]
    headers = {key: value.replace("${credential.api_key}", API_KEY) for key, value in headers.items()}
    response = httpx.post(server.url + "/encode", content=body_text.encode(), headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    # 4. ML Commons parses the answer (Gson reads every number as a Double) and runs the script.
    params = json.loads(response.text, parse_int=float if numbers == "gson-doubles" else int)
    maps = token_weight_maps(post_process(params))
    assert maps == adapter_maps(tiny_encoder.encode(texts, role=role).sparse)
    assert maps[-1] == {} and all(token.isdigit() for m in maps for token in m)


def test_weights_below_float_min_normal_are_dropped_as_the_adapter_drops_them() -> None:
    vector = SparseVector(np.array([3, 9, 12, 40_000]), np.array([1e-39, 2.5, 1.2e-38, 3.5e-7], np.float32))
    answer = {"sparse": [{"indices": vector.indices.tolist(), "values": vector.values.tolist()}], "dense": None}
    maps = token_weight_maps(post_process(json.loads(json.dumps(answer), parse_int=float)))
    assert (
        maps
        == adapter_maps([vector])
        == [{"9": 2.5, "12": float(np.float32(1.2e-38)), "40000": float(np.float32(3.5e-7))}]
    )
    assert json.loads(post_process({"sparse": []})) == {"name": "output", "dataAsMap": {"response": []}}
    with pytest.raises(ValueError, match="no sparse vectors"):
        post_process({"sparse": None, "dense": [[0.1]]})


def test_java_double_layout() -> None:
    cases = {2.0: "2.0", 1.863711953163147: "1.863711953163147", 0.001: "0.001", 1e-05: "1.0E-5"}
    cases |= {3.5e-7: "3.5E-7", 12345678.0: "1.2345678E7", 1.2e-38: "1.2E-38"}
    assert {value: java_double_to_string(value) for value in cases} == cases


# ------------------------------------------------------------ the blueprint's shape
def test_blueprint_names_the_service_the_role_and_the_key_placeholder() -> None:
    body = connector_blueprint(SERVICE + "/", role="query", api_key=API_KEY)
    [action] = body["actions"]
    assert body["protocol"] == "http" and body["credential"] == {"api_key": API_KEY}
    assert action == {
        "action_type": "predict",
        "method": "POST",
        "url": f"{SERVICE}/encode",
        "headers": {"content-type": "application/json", "Authorization": "Bearer ${credential.api_key}"},
        "request_body": '{"texts": ${parameters.input}, "role": "query", "sparse": true, "dense": false}',
        "pre_process_function": PRE_PROCESS_FUNCTION,
        "post_process_function": POST_PROCESS_FUNCTION,
    }
    assert API_KEY not in json.dumps(body["actions"])  # the key travels only as the encrypted credential
    open_body = connector_blueprint(SERVICE)
    assert "credential" not in open_body and "Authorization" not in open_body["actions"][0]["headers"]
    assert '"role": "document"' in open_body["actions"][0]["request_body"]
    json.dumps(SPARSE_ENCODING_MAPPING)  # the documented shapes are JSON
    with pytest.raises(ConfigError, match="role must be"):
        connector_blueprint(SERVICE, role="passage")
    with pytest.raises(ConfigError, match="not in the URL"):
        connector_blueprint("http://user:pw@encoder.internal:8000")
    with pytest.raises(ConfigError, match="http"):
        connector_blueprint("encoder.internal:8000")


def test_pipeline_and_query_bodies() -> None:
    assert ingest_pipeline_body("m-doc", {"text": "splare"}) == {
        "description": "splare-connect: sparse vectors from the encoder service",
        "processors": [{"sparse_encoding": {"model_id": "m-doc", "field_map": {"text": "splare"}}}],
    }
    assert neural_sparse_query("splare", "list files", "m-query") == {
        "neural_sparse": {"splare": {"query_text": "list files", "model_id": "m-query"}}
    }


# ------------------------------------------------ registration through opensearch-py
def ml_commons(model_in_register: bool = True, deploy_status: str = "COMPLETED"):  # type: ignore[no-untyped-def]
    """Answers shaped like ML Commons' documented ones."""

    def respond(request: Request) -> tuple[int, Any]:
        if request.path == "/_plugins/_ml/connectors/_create":
            return 200, {"connector_id": "conn-1"}
        if request.path == "/_plugins/_ml/models/_register":
            answer = {"task_id": "task-register", "status": "CREATED"}
            return 200, {**answer, "model_id": "model-1"} if model_in_register else answer
        if request.path == "/_plugins/_ml/tasks/task-register":
            return 200, {"model_id": "model-2", "task_type": "REGISTER_MODEL", "state": "COMPLETED"}
        if request.path.endswith("/_deploy"):
            return 200, {"task_id": "task-deploy", "task_type": "DEPLOY_MODEL", "status": deploy_status}
        if request.path == "/_plugins/_ml/tasks/task-deploy":
            return 200, {"model_id": "model-2", "task_type": "DEPLOY_MODEL", "state": "COMPLETED"}
        return 404, {"error": "unexpected request"}

    return respond


def test_register_creates_the_connector_registers_and_deploys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPLARE_API_KEY", API_KEY)
    recorder = Recorder(ml_commons())
    model = register_remote_model(recording_client(recorder), SERVICE, role="document", model_group_id="group-7")
    assert (model.connector_id, model.model_id, model.role) == ("conn-1", "model-1", "document")
    create, register, deploy = recorder.requests
    assert (create.method, create.path) == ("POST", "/_plugins/_ml/connectors/_create")
    assert create.body == connector_blueprint(SERVICE, role="document", api_key=API_KEY)
    assert (register.method, register.path) == ("POST", "/_plugins/_ml/models/_register")
    assert register.body == {
        "name": "splare-connect document encoder",
        "function_name": "remote",
        "description": "splare-connect document encoder (sparse_encoding)",
        "connector_id": "conn-1",
        "model_group_id": "group-7",
    }
    assert (deploy.method, deploy.path, deploy.body) == ("POST", "/_plugins/_ml/models/model-1/_deploy", None)


def test_register_waits_for_ml_commons_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPLARE_API_KEY", raising=False)
    recorder = Recorder(ml_commons(model_in_register=False, deploy_status="CREATED"))
    model = register_remote_model(recording_client(recorder), SERVICE, role="query", name="q")
    assert model.model_id == "model-2"
    assert [(r.method, r.path) for r in recorder.requests] == [
        ("POST", "/_plugins/_ml/connectors/_create"),
        ("POST", "/_plugins/_ml/models/_register"),
        ("GET", "/_plugins/_ml/tasks/task-register"),
        ("POST", "/_plugins/_ml/models/model-2/_deploy"),
        ("GET", "/_plugins/_ml/tasks/task-deploy"),
    ]
    assert "credential" not in recorder.requests[0].body  # no key in the environment: an open service


def test_a_refusal_is_one_redacted_line() -> None:
    def refuse(request: Request) -> tuple[int, Any]:
        error = {
            "type": "illegal_argument_exception",
            "reason": f"Connector URL is not matching trusted endpoints; api_key={API_KEY}",
        }
        return 400, {"error": {"root_cause": [error], **error}, "status": 400}

    with pytest.raises(BackendError) as raised:
        register_remote_model(recording_client(Recorder(refuse)), SERVICE, api_key=API_KEY)
    message = str(raised.value)
    assert "POST /_plugins/_ml/connectors/_create answered 400" in message and "trusted endpoints" in message
    assert API_KEY not in message and "\n" not in message
