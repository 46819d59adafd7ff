"""What both Qdrant drivers share: every engine call ends as one line, never a traceback; one refusal."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from splare_connect.backends.schema import SPEC_KEY
from splare_connect.errors import BackendError, RecordsRejectedError

T = TypeVar("T")


def call_engine(
    action: str, function: Callable[[], T], *, rejects_data: Callable[[BaseException], bool] | None = None
) -> T:
    """Run an engine call; turn anything it raises, Rust panics included, into BackendError.

    Qdrant Edge reports some bad input with ``pyo3_runtime.PanicException``, a
    ``BaseException`` that ``except Exception`` doesn't catch. The message is one line
    and redacted: a server's error body may span lines and echo the ``api-key`` header.
    Writes pass ``rejects_data``: errors it accepts mean the engine refused the records
    themselves and become :class:`RecordsRejectedError`.
    """
    from splare_connect.redaction import safe_message

    try:
        return function()
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BackendError:
        raise
    except BaseException as exc:
        message = safe_message(f"{action} failed: {type(exc).__name__}: {exc}")
        if rejects_data is not None and rejects_data(exc):
            raise RecordsRejectedError(message) from exc
        raise BackendError(message) from exc


def not_ours_message(name: str, spec_key_taken: bool = False) -> str:
    """Why a collection splare-connect didn't make can't be synced or searched as it is, and what to do."""
    if spec_key_taken:
        return (
            f"collection {name!r} exists but was not created by splare-connect: its metadata key {SPEC_KEY!r} "
            "holds the application's own data, so splare-connect can neither use nor attach to it"
        )
    return (
        f"collection {name!r} exists but was not created by splare-connect (no {SPEC_KEY!r} metadata); "
        f"attach it first: splare-connect attach --text-field FIELD {name}"
    )
