"""Find backends through the ``splare_connect.backends`` entry-point group.

A backend distribution declares, in its ``pyproject.toml``::

    [project.entry-points."splare_connect.backends"]
    mydb = "splare_connect_mydb:BACKEND"

where ``BACKEND`` is its :class:`~splare_connect.backends.descriptor.BackendDescriptor`,
and ``load_backend("mydb", **options)`` calls the record's factory. The project's own
adapters are found exactly like a third party's; nothing here knows their names.
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from splare_connect.backends.descriptor import BackendDescriptor
from splare_connect.backends.protocol import Backend
from splare_connect.errors import ConfigError, MissingDependencyError

ENTRY_POINT_GROUP = "splare_connect.backends"
# How the project names the distribution of a backend it publishes, for the install hint.
DISTRIBUTION_PATTERN = "splare-connect-{name}"


def available_backends() -> dict[str, EntryPoint]:
    """Installed backends by name (their entry points, nothing imported)."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


@cache
def _describe(entry_point: EntryPoint) -> BackendDescriptor:
    """The record an entry point names, or one made for a bare factory."""
    target = entry_point.load()
    if isinstance(target, BackendDescriptor):
        if target.name != entry_point.name:
            raise ConfigError(
                f"backend entry point {entry_point.name!r} ({entry_point.value}) describes a backend named "
                f"{target.name!r}"
            )
        return target
    if not callable(target):
        raise ConfigError(f"backend {entry_point.name!r} ({entry_point.value}) is neither a record nor a factory")
    distribution = entry_point.dist.name if entry_point.dist else entry_point.module.split(".")[0]
    module = importlib.import_module(entry_point.module)
    return BackendDescriptor.from_factory(entry_point.name, distribution, target, module)


def describe_backend(name: str) -> BackendDescriptor:
    """The record of installed backend ``name``.

    Raises:
        MissingDependencyError: No installed distribution provides ``name``; the message
            says what to install and which backends are installed.
    """
    installed = available_backends()
    if name not in installed:
        have = ", ".join(sorted(installed)) or "none"
        raise MissingDependencyError(
            f"backend {name!r} is not installed (installed backends: {have}); if it is one of the project's: "
            f"pip install {DISTRIBUTION_PATTERN.format(name=name)}. A third-party backend registers itself under "
            f"the entry-point group {ENTRY_POINT_GROUP!r}"
        )
    return _describe(installed[name])


def installed_descriptors() -> list[BackendDescriptor]:
    """The records of every installed backend, by name; one that fails to load is left out."""
    records = []
    for _, entry_point in sorted(available_backends().items()):
        try:
            records.append(_describe(entry_point))
        except Exception:
            continue
    return records


def load_backend(name: str, **options: Any) -> Backend:
    """Create a backend by name, passing ``options`` to its factory.

    Raises:
        MissingDependencyError: No installed distribution provides ``name``; the
            message says what to install.
        ConfigError: The factory returned something that is not a Backend.
    """
    record = describe_backend(name)
    backend = record.create(**options)
    if not isinstance(backend, Backend):
        raise ConfigError(f"backend {name!r} ({record.distribution}) does not implement the Backend protocol")
    return backend
