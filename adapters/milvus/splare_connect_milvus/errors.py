"""How pymilvus's errors read: which to retry, which mean refused records, and one line for each.

pymilvus reports a server's refusal as ``MilvusException`` (a ``code``, a
``compatible_code`` from the older ``common.ErrorCode`` enum, ``is_input_error`` and
``retriable`` from the server's status), its own checks as ``ParamError`` /
``DataNotMatchException``, and a gRPC failure it gave up retrying as a
``MilvusException`` whose ``code`` is the ``grpc.StatusCode``. pymilvus retries gRPC
failures and rate limits itself within each call's ``timeout``; the core's retry loop
(:func:`splare_connect.backends.retrying.retry_call`) wraps that, bounding the whole
request in attempts and time like the other adapters.

pymilvus also logs every failed call at ERROR with a traceback; the adapter reports
those failures itself, in one line, so :func:`quiet_pymilvus_errors` drops those records.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import TypeVar

from splare_connect.backends.engine_calls import call_engine as engine_call
from splare_connect.backends.retrying import ErrorRules

T = TypeVar("T")

_RETRY_GRPC = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED"}
# common.ErrorCode values (compatible_code) worth retrying: RateLimit, NotShardLeader,
# NoReplicaAvailable, TimeTickLongDelay, NotReadyServe, NotReadyCoordActivating.
_RETRY_COMPATIBLE = {49, 45, 46, 55, 56, 57}
_RATE_LIMIT = 8  # pymilvus.exceptions.ErrorCode.RATE_LIMIT
# Refused input: common.ErrorCode IllegalArgument (5), IllegalDimension (7), IllegalRowRecord (11);
# Milvus Lite's invalid-argument code (6); a server's parameter errors (merr 1100-1199).
_INPUT_CODES = {5, 6, 7, 11}


def _grpc_code_name(code: object) -> str | None:
    name = getattr(code, "name", None)
    return name if isinstance(name, str) else None


def is_retryable(error: BaseException) -> bool:
    """Timeouts, an unavailable server, rate limits and a busy cluster are transient; refused input is not."""
    import grpc
    from pymilvus.exceptions import MilvusException, MilvusUnavailableException

    if isinstance(error, grpc.RpcError):
        return _grpc_code_name(error.code()) in _RETRY_GRPC  # type: ignore[attr-defined]
    if isinstance(error, MilvusUnavailableException):
        return True
    if isinstance(error, MilvusException):
        if error.is_input_error:
            return False
        if _grpc_code_name(error.code) in _RETRY_GRPC:
            return True
        return bool(error.retriable) or error.code == _RATE_LIMIT or error.compatible_code in _RETRY_COMPATIBLE
    return isinstance(error, (TimeoutError, ConnectionError))


def refuses_data(error: BaseException) -> bool:
    """An answer to a write saying the records themselves are wrong (a value, a width, a length)."""
    from pymilvus.exceptions import DataNotMatchException, DataTypeNotMatchException, MilvusException, ParamError

    if isinstance(error, (ParamError, DataNotMatchException, DataTypeNotMatchException)):
        return True
    if not isinstance(error, MilvusException) or _grpc_code_name(error.code) is not None:
        return False
    code = error.code if isinstance(error.code, int) else -1
    return bool(error.is_input_error) or code in _INPUT_CODES or 1100 <= code < 1200


def describe(error: BaseException) -> str:
    """A short, one-line description of a failure (pymilvus's own messages may span lines)."""
    from pymilvus.exceptions import MilvusException

    if isinstance(error, MilvusException):
        text = f"{type(error).__name__} (code {getattr(error.code, 'name', error.code)}): {error.message}"
    else:
        text = f"{type(error).__name__}: {error}"
    return " ".join(str(text).split())


MILVUS_ERRORS = ErrorRules(is_retryable, describe=describe)


def call_engine(
    action: str, function: Callable[[], T], *, rejects_data: Callable[[BaseException], bool] | None = None
) -> T:
    """The core's :func:`~splare_connect.backends.engine_calls.call_engine`, with pymilvus's errors in words."""
    return engine_call(action, function, rejects_data=rejects_data, describe=describe)


class _DropRpcErrorLogs(logging.Filter):
    """Drops pymilvus's ERROR records with tracebacks of failed calls (the adapter reports them itself)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.funcName != "_log_rpc_error"


class _DropLiteTimestampErrors(logging.Filter):
    """Drops the gRPC server's traceback for Milvus Lite's missing ``AllocTimestamp``.

    Milvus Lite serves pymilvus over a gRPC server in this process and implements no
    ``AllocTimestamp``; pymilvus asks for one while waiting for a new index, gets
    "Method not implemented", and goes on. Only that record is dropped: any other error
    of any gRPC server in the process is logged as before.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, NotImplementedError) or "Method not implemented" not in record.getMessage():
            return True
        frames = traceback.extract_tb(error.__traceback__)
        return not any(frame.name == "AllocTimestamp" for frame in frames)


_FILTER = _DropRpcErrorLogs()
_LITE_FILTER = _DropLiteTimestampErrors()


def quiet_pymilvus_errors() -> None:
    """Install the filter once on pymilvus's decorator logger (idempotent)."""
    logger = logging.getLogger("pymilvus.decorators")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)


def quiet_lite_timestamp_errors() -> None:
    """Install :class:`_DropLiteTimestampErrors` once on the gRPC server logger (idempotent)."""
    logger = logging.getLogger("grpc._server")
    if _LITE_FILTER not in logger.filters:
        logger.addFilter(_LITE_FILTER)
