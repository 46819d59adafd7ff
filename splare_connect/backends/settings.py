"""Keeping a collection's search settings with it, on any backend that can store its spec."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from splare_connect.backends.protocol import SpecStoringBackend
from splare_connect.errors import CollectionNotFoundError, ConfigError
from splare_connect.search_settings import SearchSettings

__all__ = ["keep_search_settings"]


def keep_search_settings(backend: Any, collection: str, settings: SearchSettings | None) -> Any:
    """Keep ``settings`` with ``collection`` (None: back to the defaults); returns its new spec.

    Only the spec's ``search`` entry changes: the points, their vectors and the encoder
    fingerprint stay as they are.

    Raises:
        CollectionNotFoundError: No such collection of splare-connect's.
        ConfigError: The backend cannot store settings (it predates them), or an engine
            the settings name a fusion it lacks (its record says).
    """
    spec = backend.describe_collection(collection)
    if spec is None:
        raise CollectionNotFoundError(f"collection {collection!r} does not exist")
    if not isinstance(backend, SpecStoringBackend):
        raise ConfigError(f"this backend ({type(backend).__name__}) cannot keep search settings with a collection")
    if settings is not None and settings.fusion is not None and not spec.dense_dim and settings.using is None:
        raise ConfigError(
            f"collection {collection!r} has no dense vectors of its own: a hybrid setting needs the app's "
            "dense field (using) whose query vectors searches pass"
        )
    updated = replace(spec, search=settings)
    backend.store_spec(updated)
    return updated
