"""Every call into a database engine ends as one redacted line, never a traceback.

Adapters wrap each engine or client call in :func:`call_engine`. It catches
``BaseException`` (save interrupts and exits): Qdrant Edge reports some bad input with a
Rust panic, a ``BaseException`` that ``except Exception`` doesn't catch. The message names
what was being done, is one line, and is redacted: a server's error body may span lines
and echo the request's credentials.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from splare_connect.errors import BackendError, RecordsRejectedError
from splare_connect.redaction import safe_message

__all__ = ["call_engine"]

T = TypeVar("T")


def _type_and_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def call_engine(
    action: str,
    function: Callable[[], T],
    *,
    rejects_data: Callable[[BaseException], bool] | None = None,
    describe: Callable[[BaseException], str] = _type_and_text,
) -> T:
    """Run an engine call; anything it raises becomes :class:`BackendError` naming ``action``.

    Args:
        action: What was being done, for the message (``"searching 'docs'"``).
        function: The call.
        rejects_data: For writes: True for errors meaning the engine refused the records
            themselves, which become :class:`RecordsRejectedError`.
        describe: The error in words (an adapter may know its client's errors better).
    """
    try:
        return function()
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BackendError:
        raise
    except BaseException as exc:
        message = safe_message(f"{action} failed: {describe(exc)}")
        if rejects_data is not None and rejects_data(exc):
            raise RecordsRejectedError(message) from exc
        raise BackendError(message) from exc
