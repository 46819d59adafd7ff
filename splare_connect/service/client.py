"""``ServiceClient``: call a running ``splare-connect serve`` from Python or the CLI.

Light on purpose: standard library only (``urllib.request``, ``json``), no torch, no
numpy, no HTTP framework, so ``splare-connect search --server URL`` starts and answers
in a fraction of a second while the model stays loaded in the server.

Errors are :class:`ServiceError` with one line that says what to do: the server is not
running, the API key is missing or wrong, the request was refused (the server's own
one-line reason), the server is busy (with its ``Retry-After``), redirected, too slow
for the timeout, or answered too much or something else than the expected JSON. Every
failure is a ``ServiceError``; the HTTP exchange itself is bounded by
:mod:`~splare_connect.service.bounded_http`.

Example:
    >>> client = ServiceClient("http://127.0.0.1:8000")          # doctest: +SKIP
    >>> hits = client.search("list files", collection="man", k=3)  # doctest: +SKIP
    >>> hits[0]["doc_id"]                                           # doctest: +SKIP
    'ls.1'
"""

from __future__ import annotations

import json
import math
import os
import re
import urllib.request
from collections.abc import Sequence
from typing import Any
from urllib.parse import urljoin, urlsplit

from splare_connect.errors import SplareError
from splare_connect.redaction import safe_message
from splare_connect.service.bounded_http import Answer, ExchangeError, exchange
from splare_connect.service.hit_shape import HitShapeError, check_hits

API_KEY_ENV = "SPLARE_API_KEY"
DEFAULT_TIMEOUT = 30.0
# A search answer is a few KB per hit; 64 MiB leaves room for thousands of hits with text.
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
_SECONDS = re.compile(r"[0-9]{1,9}(\.[0-9]{1,6})?")


class ServiceError(SplareError, RuntimeError):
    """A request to the service failed; ``status`` is the HTTP status (``None``: no answer)."""

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None) -> None:
        self.status = status
        self.retry_after = retry_after
        super().__init__(message)


class ServiceClient:
    """A client for one service.

    Args:
        url: The service's base URL, e.g. ``http://127.0.0.1:8000``.
        api_key: The key the server requires; default ``$SPLARE_API_KEY`` (sent as
            ``Authorization: Bearer``). Never put in URLs or messages.
        timeout: Seconds for each whole call (connect, send, and the answer's headers and
            body); a server that trickles its answer is cut off when they run out.
        max_response_bytes: The largest answer read (default 64 MiB); a larger one is
            refused, before reading it when the server announces its length.

    Raises:
        ServiceError: The URL is not ``http(s)://host[:port]``, holds credentials, or a limit is not positive.

    Redirects are never followed (they would carry the API key to another address): a
    3xx answer is a :class:`ServiceError` naming where it pointed.
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        try:
            parts = urlsplit(url)
        except ValueError:
            parts = urlsplit("")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ServiceError(f"the service URL must look like http://host:port, got {safe_message(url)!r}")
        if parts.username or parts.password:
            raise ServiceError(f"put the API key in ${API_KEY_ENV}, not in the service URL ({safe_message(url)})")
        self.url = url.rstrip("/")
        # A proxy from the environment is for the outside world, not for a service on this machine.
        self._loopback = (parts.hostname or "") in ("127.0.0.1", "localhost", "::1")
        self._api_key = api_key if api_key is not None else (os.environ.get(API_KEY_ENV) or None)
        if not 0 < timeout < math.inf:
            raise ServiceError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if isinstance(max_response_bytes, bool) or not isinstance(max_response_bytes, int) or max_response_bytes <= 0:
            raise ServiceError(f"max_response_bytes must be a positive number of bytes, got {max_response_bytes!r}")
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes

    def __repr__(self) -> str:
        return f"ServiceClient({self.url!r})"  # never the key

    def health(self) -> dict[str, Any]:
        """``GET /healthz``: the model served (name, fingerprint digest) and whether it is ready."""
        return self._call("GET", "/healthz")

    def encode(
        self, texts: Sequence[str], *, role: str = "document", sparse: bool = True, dense: bool = False
    ) -> dict[str, Any]:
        """``POST /encode``: the response body (``sparse``, ``dense``, ``dim``, ``fingerprint_digest``...)."""
        if isinstance(texts, str):
            raise ServiceError("texts must be a list of strings, not one string")
        return self._call("POST", "/encode", {"texts": list(texts), "role": role, "sparse": sparse, "dense": dense})

    def search(
        self,
        query: str,
        *,
        collection: str | None = None,
        k: int = 10,
        filter: Sequence[str] = (),
        hybrid: str | None = None,
        explain: bool = False,
        documents: bool = False,
        weights: tuple[float, float] | None = None,
        rrf_k: int | None = None,
        query_top_k: int | None = None,
    ) -> list[dict[str, Any]]:
        """``POST /search``: the hits (``id``, ``doc_id``, ``score``, ``text``, ``metadata``, ``features``...).

        Options left None are the collection's settings on the server, else the defaults.
        """
        body: dict[str, Any] = {
            "query": query,
            "k": k,
            "filter": list(filter),
            "hybrid": None if hybrid is None else str(hybrid),
            "explain": explain,
            "documents": documents,
        }
        optional = {"weights": None if weights is None else list(weights), "rrf_k": rrf_k, "query_top_k": query_top_k}
        body.update({key: value for key, value in optional.items() if value is not None})
        if collection is not None:
            body["collection"] = collection
        try:
            return check_hits(self._call("POST", "/search", body))
        except HitShapeError as error:
            raise ServiceError(str(error)) from None

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            answer = exchange(
                request, timeout=self.timeout, max_bytes=self.max_response_bytes, use_env_proxy=not self._loopback
            )
        except ExchangeError as error:
            raise self._failure(error) from None
        if 300 <= answer.status < 400:
            raise self._redirect(answer, path)
        if answer.status >= 400:
            raise self._refusal(answer)
        try:
            return _parse_json(answer.body)
        except ValueError as error:
            raise ServiceError(f"{self.url}{path} did not answer {error}: is this a splare-connect service?") from None

    def _failure(self, error: ExchangeError) -> ServiceError:
        """Why no complete answer came, as one line that says what to change."""
        if error.kind == "late":
            return ServiceError(
                f"the service at {self.url} did not answer within {self.timeout:g} s; "
                "raise the timeout (--timeout) if it is busy or the answer is large"
            )
        if error.kind == "too_big":
            size = f"{error.declared:,} bytes, over" if error.declared is not None else "more than"
            return ServiceError(
                f"the service's answer is {size} {self.max_response_bytes:,} bytes, the client's limit "
                "(max_response_bytes); ask for fewer results (-k)"
            )
        if error.kind == "short":
            expected = f" of {error.declared:,}" if error.declared is not None else ""
            return ServiceError(
                f"the service's answer was cut short ({error.received:,}{expected} bytes came); "
                "is a proxy or a restart cutting the connection?"
            )
        return ServiceError(
            f"cannot reach the service at {self.url}: {safe_message(error.reason)}; is splare-connect serve running?"
        )

    def _redirect(self, answer: Answer, path: str) -> ServiceError:
        """A 3xx, refused: following it would send the API key to wherever it points."""
        location = answer.headers.get("Location") or ""
        try:
            target = urlsplit(urljoin(self.url + path, location))
            # Only scheme, host, port and path: a query or user info may hold a token.
            shown = f"{target.scheme}://{target.hostname or ''}{f':{target.port}' if target.port else ''}{target.path}"
        except ValueError:
            shown = "another address"
        return ServiceError(
            f"the service redirected to {safe_message(shown, limit=200)} ({answer.status}); the client does not follow "
            "redirects (they would take the API key along): point --server at the final URL",
            answer.status,
        )

    def _refusal(self, answer: Answer) -> ServiceError:
        """The server's one-line reason for a 4xx/5xx, as a :class:`ServiceError`."""
        try:
            detail = str(_parse_json(answer.body or b"{}").get("detail") or "")
        except (ValueError, AttributeError):
            detail = ""
        detail = safe_message(detail or answer.reason or "", limit=400)
        status = answer.status
        if status == 401:
            return ServiceError(f"the service refused the API key: set {API_KEY_ENV} to the server's key", status)
        if status == 503:
            return ServiceError(
                f"the service is busy: {detail}", status, _retry_after(answer.headers.get("Retry-After"))
            )
        return ServiceError(f"the service answered {status}: {detail}", status)


def _parse_json(body: bytes) -> Any:
    """``body`` as JSON (UTF-8, as the service sends it).

    Raises:
        ValueError: Not UTF-8, not JSON, or nested too deep to parse; the message says which.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("UTF-8") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise ValueError("JSON") from None
    except RecursionError:
        raise ValueError("JSON it can read (nested too deep)") from None


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds when it is a plain number (an HTTP date or anything else: None)."""
    if value is None or not _SECONDS.fullmatch(value.strip()):
        return None
    return float(value)
