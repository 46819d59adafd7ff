"""Checking a server URL before any client is built.

Client libraries report a bad URL late (at the first request) and verbosely (a
traceback that quotes the URL, password included), or accept it silently: qdrant-client
drops ``user:password@`` without a word, opensearch-py turns it into basic auth. The
factories call :func:`check_url` first, so a bad URL is one line naming the problem,
with credentials masked, and secrets only ever come from the environment.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit

from splare_connect.errors import ConfigError
from splare_connect.redaction import MASK, redact

__all__ = ["check_url"]

_SCHEMES = ("http", "https")
_ANY_USERINFO = re.compile(r"://.*@")  # greedy: hides even a password holding "/" or "?"


def _shown(url: str) -> str:
    """The URL as an error message may show it: any userinfo masked, whatever its characters."""
    return redact(_ANY_USERINFO.sub(f"://{MASK}@", url, count=1))


def _port_problem(parts: SplitResult) -> str | None:
    try:
        port = parts.port
    except ValueError:
        port = 0
    return "its port is not a number between 1 and 65535" if port == 0 else None


def _has_credentials(parts: SplitResult, url: str) -> bool:
    """``user:password@`` in the authority, or an "@" after a "/" in the password ("u:p/w@host")."""
    return "@" in parts.netloc or (_port_problem(parts) is not None and bool(_ANY_USERINFO.search(url)))


def _problem(parts: SplitResult, url: str, credentials_hint: str | None) -> str | None:
    """What is wrong with a parsed URL (every problem found, "; "-separated), or None."""
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        return "it contains whitespace or control characters"
    if not parts.scheme or not parts.netloc:
        return "it has no scheme: write it as http://host:port or https://host:port"
    if parts.scheme.lower() not in _SCHEMES:
        return f"unsupported scheme {parts.scheme!r} (use http or https)"
    problems = []
    if _has_credentials(parts, url):
        hint = f" ({credentials_hint})" if credentials_hint else ""
        problems.append(f"it carries credentials (user:password@); secrets are read from the environment only{hint}")
        if "@" not in parts.netloc:  # "u:p/w@host": the host and port parsed are parts of the password
            return problems[0]
    if not parts.hostname:
        problems.append("it has no host name")
    elif port_problem := _port_problem(parts):
        problems.append(port_problem)
    return "; ".join(problems) or None


def check_url(url: str, *, env_name: str | None = None, credentials_hint: str | None = None) -> str:
    """Validate a server URL and return it stripped of surrounding whitespace.

    Args:
        url: The URL, from ``--url`` or an environment variable.
        env_name: The environment variable it came from, named in the error.
        credentials_hint: Where credentials belong instead (e.g. "set QDRANT_API_KEY"),
            added to the error when the URL carries ``user:password@`` (always refused).

    Raises:
        ConfigError: One line naming the problem; the URL in it has credentials masked.
    """
    url = url.strip()
    source = f"${env_name}" if env_name else "the URL"
    try:
        problem = _problem(urlsplit(url), url, credentials_hint)
    except ValueError as exc:  # urlsplit refuses some forms outright ("http://[::1")
        problem = f"it can't be parsed ({exc})"
    if problem:
        raise ConfigError(f"{source} {_shown(url)!r} is not valid: {problem}")
    return url
