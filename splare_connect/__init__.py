"""splare-connect: SAE-latent learned-sparse retrieval for the vector databases you run.

Importing the package is cheap: torch, transformers and database clients load only
when something that needs them is used (``SplareEncoder``, a backend ...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from splare_connect.errors import (
    BackendError,
    BadInputError,
    BadRecordError,
    CheckpointError,
    CollectionNotAttachedError,
    CollectionNotFoundError,
    ConfigError,
    EncoderMismatchError,
    MissingDependencyError,
    PartialWriteError,
    RecordsRejectedError,
    SplareError,
)

if TYPE_CHECKING:
    from splare_connect.backends import load_backend
    from splare_connect.documents import read_iterable, read_source
    from splare_connect.encoding.config import EncoderConfig
    from splare_connect.encoding.encoder import EncodeResult, SplareEncoder
    from splare_connect.filters import Condition
    from splare_connect.retriever import Retriever, SearchHit
    from splare_connect.sparse_vector import SparseVector
    from splare_connect.sync import Syncer

    __version__: str

__all__ = [
    "BackendError",
    "BadInputError",
    "BadRecordError",
    "CheckpointError",
    "CollectionNotAttachedError",
    "CollectionNotFoundError",
    "Condition",
    "ConfigError",
    "EncodeResult",
    "EncoderConfig",
    "EncoderMismatchError",
    "MissingDependencyError",
    "PartialWriteError",
    "RecordsRejectedError",
    "Retriever",
    "SearchHit",
    "SparseVector",
    "SplareEncoder",
    "SplareError",
    "Syncer",
    "__version__",
    "load_backend",
    "read_iterable",
    "read_source",
]

# What a RAG application needs, in one import, loaded on first use (torch comes with the
# encoder, numpy with SparseVector: a command that only talks to a service needs neither).
_LAZY = {
    "SparseVector": "splare_connect.sparse_vector",
    "SplareEncoder": "splare_connect.encoding.encoder",
    "EncodeResult": "splare_connect.encoding.encoder",
    "EncoderConfig": "splare_connect.encoding.config",
    "Retriever": "splare_connect.retriever",
    "SearchHit": "splare_connect.retriever",
    "Syncer": "splare_connect.sync",
    "load_backend": "splare_connect.backends",
    "read_source": "splare_connect.documents",
    "read_iterable": "splare_connect.documents",
    "Condition": "splare_connect.filters",
}


def _installed_version() -> str:
    """The installed distribution's version: pyproject.toml is the one place it is written."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("splare-connect")
    except PackageNotFoundError:  # a source tree on sys.path that was never installed
        return "0+unknown"


def __getattr__(name: str) -> Any:
    """Import heavy names (numpy- and torch-backed) on first access.

    ``__version__`` is read from the installed metadata on first access too:
    ``importlib.metadata`` costs more to import than the rest of the package.
    """
    if name == "__version__":
        globals()["__version__"] = value = _installed_version()
        return value
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'splare_connect' has no attribute {name!r}")
