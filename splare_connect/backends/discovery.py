"""Find backends through the ``splare_connect.backends`` entry-point group.

A backend distribution declares, in its ``pyproject.toml``::

    [project.entry-points."splare_connect.backends"]
    qdrant = "splare_connect_qdrant:create_backend"

and ``load_backend("qdrant", **options)`` calls that factory. The built-in adapters
are found exactly like a third party's.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from splare_connect.backends.options import BackendOption
from splare_connect.backends.protocol import Backend
from splare_connect.errors import ConfigError, MissingDependencyError

ENTRY_POINT_GROUP = "splare_connect.backends"

# Backends the project publishes, so a missing one gets an exact install command.
KNOWN_DISTRIBUTIONS = {
    "qdrant": "splare-connect-qdrant",
    "opensearch": "splare-connect-opensearch",
}


def available_backends() -> dict[str, EntryPoint]:
    """Installed backends by name."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def backend_options(name: str) -> Mapping[str, BackendOption]:
    """The settings backend ``name`` declares for the CLI (its package's ``BACKEND_OPTIONS``)."""
    import importlib

    entry_point = available_backends().get(name)
    if entry_point is None:
        return {}
    return getattr(importlib.import_module(entry_point.module), "BACKEND_OPTIONS", {})


def load_backend(name: str, **options: Any) -> Backend:
    """Create a backend by name, passing ``options`` to its factory.

    Raises:
        MissingDependencyError: No installed distribution provides ``name``; the
            message says what to install.
        ConfigError: The factory returned something that is not a Backend.
    """
    installed = available_backends()
    if name not in installed:
        have = ", ".join(sorted(installed)) or "none"
        if name in KNOWN_DISTRIBUTIONS:
            raise MissingDependencyError(
                f"backend {name!r} is not installed: pip install {KNOWN_DISTRIBUTIONS[name]} "
                f"(installed backends: {have})"
            )
        raise MissingDependencyError(
            f"no backend named {name!r}; installed backends: {have}. A third-party backend registers "
            f"itself under the entry-point group {ENTRY_POINT_GROUP!r}"
        )
    factory = installed[name].load()
    backend = factory(**options)
    if not isinstance(backend, Backend):
        raise ConfigError(f"backend {name!r} ({installed[name].value}) does not implement the Backend protocol")
    return backend
