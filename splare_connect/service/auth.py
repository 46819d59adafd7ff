"""The optional API key: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``.

When the server's environment sets ``SPLARE_API_KEY``, every endpoint except
``/healthz`` and the API schema (``/openapi.json``, ``/docs``) requires the key.
Those stay open on purpose: a load balancer or orchestrator probes ``/healthz`` without
credentials, and the schema describes the API (the same as the published docs), not
any data; it also shows clients how to authenticate.

The key is compared in constant time (:func:`hmac.compare_digest`) and never logged or
echoed: a refusal says only that the key is missing or wrong.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import HTTPException, Security
from fastapi.security import APIKeyHeader, HTTPBearer

BEARER_DESCRIPTION = "The server's API key (SPLARE_API_KEY), as Authorization: Bearer <key>."
HEADER_DESCRIPTION = "The server's API key (SPLARE_API_KEY), as X-API-Key: <key>."


def key_matches(offered: str | None, expected: str) -> bool:
    """Whether ``offered`` is the key, compared in constant time (on UTF-8 bytes, so any key works)."""
    if offered is None:
        return False
    return hmac.compare_digest(offered.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


def api_key_dependency(expected: str) -> Callable[..., Awaitable[None]]:
    """A FastAPI dependency that refuses requests without the key (401).

    Declared through FastAPI's security classes, so ``/openapi.json`` lists both ways
    of sending the key as security schemes.
    """
    bearer_scheme = HTTPBearer(auto_error=False, description=BEARER_DESCRIPTION)
    header_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description=HEADER_DESCRIPTION)

    # Defaults, not Annotated[...]: these schemes are local, and with postponed annotations
    # FastAPI resolves annotation strings in the module's globals only.
    async def require_api_key(
        bearer: Any = Security(bearer_scheme),  # noqa: B008
        header: Any = Security(header_scheme),  # noqa: B008
    ) -> None:
        offered = bearer.credentials if bearer is not None else header
        if not key_matches(offered, expected):
            raise HTTPException(
                status_code=401,
                detail="missing or wrong API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return require_api_key
