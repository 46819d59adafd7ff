"""Keep secrets out of error messages and logs.

Servers echo requests back in error bodies (headers included), client libraries put
URLs in exception texts, and users paste ``http://user:password@host`` into ``--url``.
Every message splare-connect makes from such text goes through :func:`redact` first:
it masks URL userinfo, the values of credential-looking fields (``api-key``,
``Authorization``, ``password``, ``token``, ``secret`` ...) in header, JSON, Python-repr
and query-string forms, and any literal value of the credential environment variables
this project reads: its own (``SPLARE_API_KEY``) and those each installed backend's record
names (``secret_env``, and the encoded pair of ``basic_auth_env``). Over-masking a harmless
value is an acceptable price; leaking a key is not.

Importing this module is cheap (``re``, ``os``, ``base64``, ``logging`` only); the
backends' records are read the first time a message is redacted.
"""

from __future__ import annotations

import base64
import logging
import os
import re
from functools import cache
from urllib.parse import quote

__all__ = [
    "MASK",
    "OWN_SECRET_ENV_VARS",
    "RedactingFilter",
    "install_log_redaction",
    "one_line",
    "redact",
    "safe_message",
    "secret_env_vars",
]

MASK = "***"
# splare-connect's own secret variables; the backends' come from their records.
OWN_SECRET_ENV_VARS = ("SPLARE_API_KEY",)
_MIN_LITERAL = 4  # shorter values would mask ordinary text ("a", "ok") all over a message

# scheme://userinfo@ : everything up to the last "@" before a query, fragment, blank or quote
# (passwords may hold "@" or "/"); a path holding "@" gets its host masked too: the safe side.
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^\s?#\"'<>]*@")

# A credential-looking key, optionally quoted (or backslash-quoted: JSON inside JSON, bytes reprs),
# then ":" or "=", then an optional quote, an optional auth scheme, and the value.
_SECRET_FIELD = re.compile(
    r"""
    (?P<key>
        (?<![\w-])[\w.-]*?
        (?:api[-_]?key|authorization|password|passwd|pwd|secret|token|cookie|credentials?)
        (?:\\*["'])?\s*[:=]\s*
    )
    (?P<quote>\\*["'])?
    (?P<scheme>(?:basic|bearer|apikey|api-key|token|digest|negotiate)\s+)?
    (?P<value>(?(quote)[^"'\\\r\n]*|[^\s,;&"'<>{}\[\]\\]+))
    """,
    re.IGNORECASE | re.VERBOSE,
)


@cache
def secret_env_vars() -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """The variables whose values are secrets, and the ``(user, password)`` pairs sent as basic auth."""
    from splare_connect.backends.discovery import installed_descriptors

    records = installed_descriptors()
    secrets = OWN_SECRET_ENV_VARS + tuple(name for record in records for name in record.secret_env)
    pairs = tuple(record.basic_auth_env for record in records if record.basic_auth_env)
    return secrets, pairs


def _secret_literals() -> list[str]:
    """The credential values currently in the environment, in every form they may be sent in."""
    secrets, pairs = secret_env_vars()
    values = [os.environ.get(name, "") for name in secrets]
    for user_env, password_env in pairs:
        user, password = os.environ.get(user_env, ""), os.environ.get(password_env, "")
        if user and password:  # what HTTP basic auth puts on the wire
            values.append(base64.b64encode(f"{user}:{password}".encode()).decode("ascii"))
    literals = set()
    for value in values:
        if len(value) >= _MIN_LITERAL:
            literals.update({value, quote(value, safe=""), repr(value)[1:-1]})
    return sorted((v for v in literals if len(v) >= _MIN_LITERAL), key=len, reverse=True)


# A hint's placeholder after an auth scheme, as in "send Authorization: Bearer <key>": a
# lower-case word or two in angle brackets, never a credential (no key looks like "<key>").
_AUTH_SCHEMES = ("basic", "bearer", "apikey", "api-key", "token", "digest", "negotiate")
_PLACEHOLDER = re.compile(r"\s+<[a-z][a-z _-]{0,24}>")


def _mask_field(match: re.Match[str]) -> str:
    """Keep the key, quote and auth scheme (useful when debugging), mask the value.

    A scheme followed by a placeholder (``Bearer <key>``: a hint telling users what to
    send, such as the service's 401) is left as written.
    """
    if not match.group("value"):
        return match.group(0)
    scheme_alone = match.group("scheme") is None and match.group("value").lower() in _AUTH_SCHEMES
    if scheme_alone and _PLACEHOLDER.match(match.string, match.end()):
        return match.group(0)
    return f"{match.group('key')}{match.group('quote') or ''}{match.group('scheme') or ''}{MASK}"


def redact(text: str) -> str:
    """``text`` with credentials masked as ``***``.

    Masks URL userinfo (``https://user:pw@host`` -> ``https://***@host``), values of
    ``api-key``, ``x-api-key``, ``Authorization`` (Basic, Bearer, ApiKey ...),
    ``password``, ``passwd``, ``token``, ``secret`` and similar fields, and every
    non-empty value (4+ characters) of ``QDRANT_API_KEY``, ``OPENSEARCH_PASSWORD``,
    ``OPENSEARCH_API_KEY`` and ``SPLARE_API_KEY`` (the encoder service's key).
    """
    for literal in _secret_literals():
        text = text.replace(literal, MASK)
    text = _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)
    return _SECRET_FIELD.sub(_mask_field, text)


def one_line(text: str, limit: int = 600) -> str:
    """Collapse whitespace (error bodies and pydantic errors span lines) and cap the length."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def safe_message(text: str, limit: int = 600) -> str:
    """A redacted, one-line version of ``text``, fit for an error message or a log line."""
    return one_line(redact(text), limit)


class RedactingFilter(logging.Filter):
    """Redacts records of third-party loggers that print request URLs and bodies.

    opensearch-py logs whole responses at DEBUG (an error body may echo the
    ``Authorization`` header); this filter formats the record, redacts it, and stores the
    result so that handlers print the masked text, traceback included.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drops it."""
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to logging's own error handling
            return True
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = _redacted_parts(record.msg, record.args, redacted)  # type: ignore[assignment]  # logging types args loosely
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def _redacted_parts(msg: object, args: object, redacted: str) -> tuple[object, object]:
    """A record's message and arguments with secrets masked, its shape kept where possible.

    Formatters such as uvicorn's access log read ``record.args`` as a tuple, so each part
    is redacted on its own; the record is flattened to the redacted text when the parts no
    longer fit together or a secret still shows (split between the message and an argument).
    """
    if isinstance(args, tuple) and args:
        parts_msg = redact(str(msg))
        parts_args = tuple(redact(a) if isinstance(a, str) else a for a in args)
        try:
            text = parts_msg % parts_args
        except (TypeError, ValueError):
            return redacted, None
        if redact(text) == text:
            return parts_msg, parts_args
    return redacted, None


def install_log_redaction(*logger_names: str) -> None:
    """Attach one :class:`RedactingFilter` to each named logger (idempotent)."""
    for name in logger_names:
        target = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in target.filters):
            target.addFilter(RedactingFilter())
