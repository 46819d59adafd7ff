"""``ServiceClient``: call a running ``splare-connect serve`` from Python or the CLI.

Light on purpose: standard library only (``urllib.request``, ``json``), no torch, no
numpy, no HTTP framework, so ``splare-connect search --server URL`` starts and answers
in a fraction of a second while the model stays loaded in the server.

Errors are :class:`ServiceError` with one line that says what to do: the server is not
running, the API key is missing or wrong, the request was refused (the server's own
one-line reason), or the server is busy (with its ``Retry-After``).

Example:
    >>> client = ServiceClient("http://127.0.0.1:8000")          # doctest: +SKIP
    >>> hits = client.search("list files", collection="man", k=3)  # doctest: +SKIP
    >>> hits[0]["doc_id"]                                           # doctest: +SKIP
    'ls.1'
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from splare_connect.errors import SplareError
from splare_connect.redaction import safe_message

API_KEY_ENV = "SPLARE_API_KEY"
DEFAULT_TIMEOUT = 30.0


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
        timeout: Seconds to wait for each answer.
    """

    def __init__(self, url: str, *, api_key: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ServiceError(f"the service URL must look like http://host:port, got {safe_message(url)!r}")
        if parts.username or parts.password:
            raise ServiceError(f"put the API key in ${API_KEY_ENV}, not in the service URL ({safe_message(url)})")
        self.url = url.rstrip("/")
        # A proxy from the environment is for the outside world, not for a service on this machine.
        loopback = (parts.hostname or "") in ("127.0.0.1", "localhost", "::1")
        self._opener = urllib.request.build_opener(*([urllib.request.ProxyHandler({})] if loopback else []))
        self._api_key = api_key if api_key is not None else (os.environ.get(API_KEY_ENV) or None)
        self.timeout = timeout

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
    ) -> list[dict[str, Any]]:
        """``POST /search``: the hits (``id``, ``doc_id``, ``score``, ``text``, ``metadata``, ``features``...)."""
        body: dict[str, Any] = {
            "query": query,
            "k": k,
            "filter": list(filter),
            "hybrid": None if hybrid is None else str(hybrid),
            "explain": explain,
            "documents": documents,
        }
        if collection is not None:
            body["collection"] = collection
        return self._call("POST", "/search", body)

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
            with self._opener.open(request, timeout=self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as error:
            raise self._refusal(error) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            reason = getattr(error, "reason", error)
            raise ServiceError(
                f"cannot reach the service at {self.url}: {safe_message(str(reason))}; is splare-connect serve running?"
            ) from None
        try:
            return json.loads(payload)
        except json.JSONDecodeError:
            raise ServiceError(f"{self.url}{path} did not answer JSON: is this a splare-connect service?") from None

    def _refusal(self, error: urllib.error.HTTPError) -> ServiceError:
        """The server's one-line reason for a 4xx/5xx, as a :class:`ServiceError`."""
        try:
            detail = str(json.loads(error.read() or b"{}").get("detail") or "")
        except (json.JSONDecodeError, AttributeError, OSError):
            detail = ""
        detail = safe_message(detail or error.reason or "", limit=400)
        status = error.code
        if status == 401:
            return ServiceError(f"the service refused the API key: set {API_KEY_ENV} to the server's key", status)
        if status == 503:
            retry = error.headers.get("Retry-After") if error.headers else None
            seconds = float(retry) if retry and retry.replace(".", "", 1).isdigit() else None
            return ServiceError(f"the service is busy: {detail}", status, seconds)
        return ServiceError(f"the service answered {status}: {detail}", status)
