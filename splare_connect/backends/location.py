"""Where a backend is: the settings that open it, kept apart from the open connection.

A :class:`BackendLocation` is plain data, so it can be sent to other processes (the
workers of a distributed ingest), and each opens its own connection with exactly the
settings the command was given. Secrets are not part of it: every process reads them
from its own environment, as the backends always do.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from splare_connect.backends.discovery import describe_backend, load_backend
from splare_connect.backends.options import parse_backend_options
from splare_connect.backends.protocol import Backend


@dataclass(frozen=True)
class BackendLocation:
    """A backend by name, with its location settings and ``KEY=VALUE`` options.

    Attributes:
        name: The backend's entry-point name.
        url: The database server's URL (None: what the backend does without one, its
            record's ``without_url``).
        data_dir: Where an embedded engine keeps its collections.
        timeout: Seconds each request to a server may take.
        options: ``KEY=VALUE`` backend settings (``--backend-option``); unknown keys are
            refused with the list of known ones.
    """

    name: str
    url: str | None = None
    data_dir: Path | None = None
    timeout: float | None = None
    options: tuple[str, ...] = ()

    def open(self) -> Backend:
        """Open the backend.

        ``url``, ``data_dir`` and ``timeout`` go only to a factory that names them:
        ``data_dir`` means something to embedded engines only, so OpenSearch never sees it.

        Raises:
            MissingDependencyError: No adapter of that name is installed (says what to install).
            ConfigError: An unknown option, or a bad URL or data directory.
        """
        record = describe_backend(self.name)  # says what to install when it is missing
        named = inspect.signature(record.create).parameters
        locations = {"url": self.url or None, "data_dir": self.data_dir, "timeout": self.timeout}
        settings: dict[str, Any] = {
            key: value for key, value in locations.items() if value is not None and key in named
        }
        settings.update(parse_backend_options(self.options, record.options, self.name))
        return load_backend(self.name, **settings)

    def for_other_machines(self) -> BackendLocation:
        """This location as a process on another machine must see it: the server URL written in.

        A backend without a URL reads its server's from the variable its record names
        (``url_env``), which a worker elsewhere does not have: taken here from this
        process's environment. Secrets stay out: each process reads those itself.
        """
        url_env = describe_backend(self.name).url_env
        from_env = (os.environ.get(url_env) or None) if url_env else None
        return self if self.url or from_env is None else replace(self, url=from_env)

    @classmethod
    def of(
        cls,
        name: str,
        url: str | None = None,
        data_dir: Path | None = None,
        timeout: float | None = None,
        options: Sequence[str] = (),
    ) -> BackendLocation:
        """The location from a command's options (``options`` as given, in any sequence)."""
        return cls(name, url or None, data_dir, timeout, tuple(options))


def accepts_concurrent_writers(backend: Backend) -> bool:
    """Whether other processes may write to the backend's collections while this one does.

    True for a database server; False for an embedded engine, which one process holds
    at a time, and for any backend that does not say (``concurrent_writers``): one writer
    is always safe.
    """
    return bool(getattr(backend, "concurrent_writers", False))
