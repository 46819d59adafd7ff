"""The server path without a server: URL and token rules, the client pymilvus is asked for, retries, errors."""

from __future__ import annotations

from typing import Any, ClassVar

import grpc
import pytest
from pymilvus.exceptions import MilvusException, MilvusUnavailableException, ParamError

import splare_connect_milvus
from splare_connect import BackendError, ConfigError
from splare_connect.backends import load_backend
from splare_connect.backends.discovery import describe_backend
from splare_connect.choices import Fusion
from splare_connect.errors import RecordsRejectedError
from splare_connect_milvus import BACKEND, create_backend
from splare_connect_milvus.errors import call_engine, is_retryable, refuses_data

SECRET = "s3cr3t-token-value"


class FakeClient:
    """Records how pymilvus's MilvusClient was built; answers nothing."""

    made: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, **kwargs: Any) -> None:
        FakeClient.made.append(kwargs)

    def close(self) -> None:
        pass


@pytest.fixture
def fake_client(monkeypatch: pytest.MonkeyPatch) -> type[FakeClient]:
    import pymilvus

    FakeClient.made = []
    monkeypatch.setattr(pymilvus, "MilvusClient", FakeClient)
    monkeypatch.delenv("MILVUS_URL", raising=False)
    monkeypatch.delenv("MILVUS_TOKEN", raising=False)
    return FakeClient


def test_the_record_describes_milvus() -> None:
    record = describe_backend("milvus")
    assert record is BACKEND and record.distribution == "splare-connect-milvus"
    assert record.url_env == "MILVUS_URL" and record.secret_env == ("MILVUS_TOKEN",)
    capabilities = record.capabilities
    assert capabilities.fusions == {Fusion.RRF, Fusion.WEIGHTED} and capabilities.weighted_fusions == {Fusion.WEIGHTED}
    # A server 2.6.2+ attaches; Milvus Lite refuses in one line (test_milvus_lite, test_milvus_server_attach).
    assert capabilities.attachable and capabilities.weight_bits is None and capabilities.transport == "grpc"


def test_a_url_connects_with_the_token_from_the_environment_only(fake_client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MILVUS_TOKEN", SECRET)
    backend = create_backend(url="http://milvus.example:19530", timeout=5)
    assert fake_client.made == [{"uri": "http://milvus.example:19530", "timeout": 5.0, "token": SECRET}]
    assert backend.concurrent_writers and not backend.lite and backend.retry_deadline == 120.0
    assert backend.where == " on http://milvus.example:19530"
    monkeypatch.delenv("MILVUS_TOKEN")
    create_backend(url="https://milvus.example:443", db_name="rag")
    assert fake_client.made[-1] == {"uri": "https://milvus.example:443", "timeout": 30.0, "db_name": "rag"}


def test_the_url_can_come_from_the_environment(fake_client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MILVUS_URL", "http://from-env:19530")
    load_backend("milvus")
    assert fake_client.made[-1]["uri"] == "http://from-env:19530"
    monkeypatch.setenv("MILVUS_URL", "ftp://from-env:19530")
    with pytest.raises(ConfigError, match=r"^\$MILVUS_URL 'ftp://from-env:19530' is not valid: unsupported scheme"):
        create_backend()


def test_credentials_in_the_url_are_refused_and_masked(fake_client) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as refused:
        create_backend(url=f"http://root:{SECRET}@milvus.example:19530")
    message = str(refused.value)
    assert SECRET not in message and "carries credentials" in message and "MILVUS_TOKEN" in message
    assert fake_client.made == []


def test_conflicting_locations_are_refused(fake_client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="data_dir is for Milvus Lite"):
        create_backend(url="http://milvus.example:19530", data_dir=tmp_path)
    with pytest.raises(ConfigError, match="only one of url and client"):
        create_backend(url="http://milvus.example:19530", client=FakeClient())
    with pytest.raises(ConfigError, match="db_name is for a Milvus server"):
        create_backend(data_dir=tmp_path, db_name="x")
    with pytest.raises(ConfigError, match="timeout must be a positive"):
        create_backend(url="http://milvus.example:19530", timeout=0)


def test_an_apps_client_is_shared_and_left_open() -> None:
    client = FakeClient()
    closed = []
    client.close = lambda: closed.append(1)  # type: ignore[method-assign]
    backend = create_backend(client=client)
    assert backend.client is client and backend.retry is not None
    backend.close()
    assert closed == []


class RpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code


@pytest.mark.parametrize(
    ("error", "retry"),
    [
        (RpcError(grpc.StatusCode.UNAVAILABLE), True),
        (RpcError(grpc.StatusCode.DEADLINE_EXCEEDED), True),
        (RpcError(grpc.StatusCode.INVALID_ARGUMENT), False),
        (MilvusUnavailableException(message="server unavailable"), True),
        (MilvusException(code=8, message="rate limit exceeded"), True),
        (MilvusException(code=grpc.StatusCode.UNAVAILABLE, message="Retry run out of 75 retry times"), True),
        (MilvusException(code=1100, message="invalid parameter", is_input_error=True), False),
        (MilvusException(code=100, message="collection not found"), False),
        (ParamError(message="bad"), False),
        (TimeoutError("slow"), True),
        (ValueError("bad input"), False),
    ],
)
def test_retry_classification(error: BaseException, retry: bool) -> None:
    assert is_retryable(error) is retry


def test_refused_records_are_told_apart_from_other_failures() -> None:
    assert refuses_data(MilvusException(code=6, message="sparse vector must contain at least one nonzero"))
    assert refuses_data(MilvusException(code=1100, message="invalid parameter"))
    assert refuses_data(ParamError(message="sparse vector index must be positive"))
    assert not refuses_data(MilvusException(code=8, message="rate limit"))
    assert not refuses_data(MilvusException(code=grpc.StatusCode.UNAVAILABLE, message="gone"))


class FlakyClient(FakeClient):
    """A server that fails ``failures`` times, then counts 7 points."""

    def __init__(self, failures: list[BaseException]) -> None:
        self.failures = failures
        self.calls = 0

    def query(self, *args: Any, **kwargs: Any) -> list[dict[str, int]]:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return [{"count(*)": 7}]


def ready(client: FlakyClient, **options: Any):  # type: ignore[no-untyped-def]
    from splare_connect.backends import CollectionSpec

    backend = create_backend(client=client, backoff_seconds=0.001, **options)
    backend._specs["docs"] = CollectionSpec("docs", sparse_dim=8, fingerprint={"name": "t", "digest": "d"})
    backend._loaded.add("docs")
    return backend


def test_transient_failures_are_retried_then_succeed() -> None:
    client = FlakyClient([MilvusException(code=8, message="rate limit"), RpcError(grpc.StatusCode.UNAVAILABLE)])
    assert ready(client).count("docs") == 7 and client.calls == 3


def test_failures_become_one_redacted_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MILVUS_TOKEN", SECRET)
    client = FlakyClient([MilvusException(code=100, message=f"denied for token {SECRET}\nsecond line")])
    with pytest.raises(BackendError) as failed:
        ready(client).count("docs")
    message = str(failed.value)
    assert message.startswith("counting 'docs' failed: MilvusException (code 100): denied for token ")
    assert SECRET not in message and "\n" not in message and client.calls == 1
    busy = FlakyClient([MilvusUnavailableException(message="down")] * 10)
    with pytest.raises(BackendError, match=r"counting 'docs' failed: gave up after 3 attempts"):
        ready(busy, max_attempts=3).count("docs")
    assert busy.calls == 3


def test_writes_the_server_refuses_are_records_rejected() -> None:
    def refuse() -> None:
        raise MilvusException(code=1100, message="vector field 'dense' expected dim 8, got 7", is_input_error=True)

    with pytest.raises(RecordsRejectedError, match="expected dim 8"):
        call_engine("writing", refuse, rejects_data=refuses_data)
    with pytest.raises(BackendError) as plain:
        call_engine("reading", refuse)
    assert not isinstance(plain.value, RecordsRejectedError)


def test_the_module_exports() -> None:
    assert set(splare_connect_milvus.__all__) >= {"BACKEND", "BACKEND_OPTIONS", "create_backend", "MilvusBackend"}
    assert set(splare_connect_milvus.BACKEND_OPTIONS) <= set(create_backend.__code__.co_varnames)
