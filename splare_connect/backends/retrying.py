"""Retrying server requests: bounded in attempts and in time, polite to rate limits.

Both server backends (Qdrant, OpenSearch) retry whole requests on timeouts, dropped
connections, 429 and 5xx; writes are safe to repeat because point ids are
deterministic. The policy lives here once (a backend holds a :class:`RetryPolicy` made
from its options, and says how its client library's errors read in
:class:`ErrorRules`):

- a 429 that says ``Retry-After: N`` is retried after N seconds (capped), because
  retrying earlier only earns another 429;
- anything else retryable backs off exponentially (``backoff_seconds`` doubling,
  capped at 30 s), because the client libraries' own retries don't back off;
- it gives up after ``max_attempts`` tries or when the next sleep would end past
  ``deadline`` seconds, whichever comes first, so a command's worst case is about
  ``deadline`` plus one request timeout instead of attempts x timeout;
- each retry is logged as a warning, redacted, and giving up raises a one-line
  :class:`BackendError` that says why.

tenacity is imported when a request is made, not when this module is imported, so
``import splare_connect`` stays light.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from splare_connect.errors import BackendError, ConfigError
from splare_connect.redaction import safe_message

__all__ = [
    "DEFAULT_RETRY_DEADLINE",
    "DEFAULT_TIMEOUT",
    "MAX_BACKOFF",
    "MAX_RETRY_AFTER",
    "ErrorRules",
    "RetryPolicy",
    "check_seconds",
    "parse_retry_after",
    "retry_call",
]

LOGGER = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRY_DEADLINE = 120.0
MAX_BACKOFF = 30.0
MAX_RETRY_AFTER = 60.0  # a server asking for more is asked again after this long


def _never(error: BaseException) -> float | None:
    return None


def _plain(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def check_seconds(name: str, value: float | None, default: float) -> float:
    """A positive, finite number of seconds (a timeout, a deadline); None means ``default``.

    None is the default rather than "no limit" so that an unset CLI flag passed through
    as None can't silently remove a bound.

    Raises:
        ConfigError: Naming ``name`` and the bad value.
    """
    if value is None:
        return default
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number of seconds, got {value!r}") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
    return seconds


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date; None if absent or unreadable."""
    if not value or not value.strip():
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value.strip())
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - time.time()
    return max(seconds, 0.0) if math.isfinite(seconds) else None


def _sleep_for(
    error: BaseException | None,
    attempt: int,
    retry_after: Callable[[BaseException], float | None],
    backoff_seconds: float,
) -> float:
    """The server's Retry-After when the error carries one, else exponential backoff."""
    hinted = retry_after(error) if error is not None else None
    if hinted is not None:
        return min(max(float(hinted), 0.0), MAX_RETRY_AFTER)
    return min(backoff_seconds * 2 ** (attempt - 1), MAX_BACKOFF)


def retry_call(
    action: str,
    function: Callable[[], T],
    *,
    is_retryable: Callable[[BaseException], bool],
    retry_after: Callable[[BaseException], float | None] = _never,
    describe: Callable[[BaseException], str] = _plain,
    max_attempts: int = 6,
    backoff_seconds: float = 0.5,
    deadline: float | None = DEFAULT_RETRY_DEADLINE,
    logger: logging.Logger | None = None,
) -> T:
    """Call ``function`` until it succeeds, fails for good, or the retry budget is spent.

    Args:
        action: What is being done, for messages ("counting 'docs'").
        function: The request.
        is_retryable: Whether an error is transient (429, 5xx, timeouts ...).
        retry_after: Seconds the server asked to wait (``Retry-After``), or None.
        describe: A short description of an error for messages (it is redacted here).
        max_attempts: Tries in all, the first included.
        backoff_seconds: First backoff; doubles each retry, capped at 30 s.
        deadline: Seconds from the first try; a retry whose sleep would end later is not
            made (None: no limit).
        logger: Where the retry warnings go.

    Returns:
        What ``function`` returned.

    Raises:
        BackendError: Retries were exhausted (the last error is its ``__cause__``).
        BaseException: A non-retryable error from ``function``, unchanged, for the
            caller to describe.
    """
    from tenacity import RetryCallState, RetryError, Retrying, retry_if_exception, stop_after_attempt, stop_before_delay

    log = logger or LOGGER
    attempts = max(1, int(max_attempts))
    stop: Any = stop_after_attempt(attempts)
    if deadline is not None:
        stop = stop | stop_before_delay(deadline)

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        return _sleep_for(error, state.attempt_number, retry_after, backoff_seconds)

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        reason = describe(error) if error is not None else "no result"
        log.warning(
            "%s",
            safe_message(
                f"{action}: attempt {state.attempt_number} of {attempts} failed ({reason}); "
                f"retrying in {state.upcoming_sleep:.1f} s"
            ),
        )

    retrying = Retrying(
        stop=stop, wait=wait, retry=retry_if_exception(is_retryable), before_sleep=before_sleep, reraise=False
    )
    started = time.monotonic()
    try:
        return retrying(function)
    except RetryError as exhausted:
        last = exhausted.last_attempt
        error = last.exception()
        hinted = retry_after(error) if error is not None else None
        why = _why(last.attempt_number, attempts, deadline, hinted, time.monotonic() - started)
        last_error = describe(error) if error is not None else "no result"
        raise BackendError(safe_message(f"{action} failed: {why}; last error: {last_error}")) from error


def _why(tries: int, attempts: int, deadline: float | None, hinted: float | None, elapsed: float) -> str:
    """Why retrying stopped: the attempt count, or the deadline (and what the server asked for)."""
    why = f"gave up after {tries} attempt{'s' if tries != 1 else ''} in {elapsed:.1f} s"
    if tries < attempts and deadline is not None:
        asked = f"; the server asked to wait {hinted:g} s" if hinted is not None else ""
        why += f" (retry deadline of {deadline:g} s reached{asked})"
    return why


@dataclass(frozen=True)
class ErrorRules:
    """How one client library's errors read, for :func:`retry_call`.

    Attributes:
        is_retryable: Whether an error is transient (429, 5xx, timeouts ...).
        retry_after: Seconds the server asked to wait (``Retry-After``), or None.
        describe: A short description of an error for messages.
    """

    is_retryable: Callable[[BaseException], bool]
    retry_after: Callable[[BaseException], float | None] = _never
    describe: Callable[[BaseException], str] = _plain


@dataclass(frozen=True)
class RetryPolicy:
    """A backend's retry settings, checked once, and the one way its requests are retried.

    Args:
        rules: How the backend's client library reports errors.
        max_attempts: Tries in all, the first included.
        backoff_seconds: First backoff; doubles each retry, capped at 30 s. A 429's
            ``Retry-After`` replaces it (capped at 60 s).
        deadline: Seconds after a request's first try past which it is not retried
            (None: 120 s). Worst case per request: about this plus one timeout.
        logger: Where the retry warnings go.

    Raises:
        ConfigError: A deadline that is not a positive number of seconds.
    """

    rules: ErrorRules
    max_attempts: int = 6
    backoff_seconds: float = 0.5
    deadline: float | None = DEFAULT_RETRY_DEADLINE
    logger: logging.Logger | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "deadline", check_seconds("retry_deadline", self.deadline, DEFAULT_RETRY_DEADLINE))

    def call(self, action: str, function: Callable[[], T]) -> T:
        """:func:`retry_call` with this policy: ``function``'s result, or BackendError once retrying is over.

        Raises:
            BackendError: Retries were exhausted.
            BaseException: A non-retryable error from ``function``, unchanged.
        """
        return retry_call(
            action,
            function,
            is_retryable=self.rules.is_retryable,
            retry_after=self.rules.retry_after,
            describe=self.rules.describe,
            max_attempts=self.max_attempts,
            backoff_seconds=self.backoff_seconds,
            deadline=self.deadline,
            logger=self.logger,
        )
