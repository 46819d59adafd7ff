"""splare-connect inside the RAG frameworks people already write their apps in.

One module per framework, each an optional extra that keeps its users' code as it is:

- :mod:`splare_connect.integrations.langchain` (``pip install "splare-connect[langchain]"``):
  a ``SparseEmbeddings`` for langchain-qdrant's ``QdrantVectorStore`` and a ``BaseRetriever``;
- :mod:`splare_connect.integrations.llama_index` (``[llamaindex]``): ``sparse_doc_fn`` /
  ``sparse_query_fn`` for llama-index's ``QdrantVectorStore`` and a ``BaseRetriever``;
- :mod:`splare_connect.integrations.haystack` (``[haystack]``): sparse text and document
  embedder components for qdrant-haystack's ``QdrantDocumentStore``.

Importing a module whose framework is missing raises
:class:`~splare_connect.errors.MissingDependencyError` naming the install command.
Encoders are loaded once per process and shared (:func:`shared_encoder`).
"""

from __future__ import annotations

import importlib
import threading
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from splare_connect.errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:
    from splare_connect.encoding.encoder import SplareEncoder

__all__ = ["encoder_from", "require", "shared_encoder"]

_ENCODERS: dict[tuple[Any, ...], SplareEncoder] = {}
_ENCODERS_LOCK = threading.Lock()


def require(module: str, extra: str) -> ModuleType:
    """Import a framework module, or say exactly what to install.

    Raises:
        MissingDependencyError: ``module`` is not installed, or is installed but fails to
            import (a version another package broke); the message names the extra.
    """
    install = f'pip install "splare-connect[{extra}]"'
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        if exc.name is None or exc.name == top or exc.name.startswith(f"{top}.") or module.startswith(f"{exc.name}."):
            raise MissingDependencyError(f"{module} is not installed; install the integration with: {install}") from exc
        raise MissingDependencyError(
            f"{module} is installed but cannot be imported ({exc}); reinstall the integration with: {install}"
        ) from exc


def shared_encoder(model: str | Path | None = None, **options: Any) -> SplareEncoder:
    """The process's encoder for ``model`` (and ``options``), loaded on first use and then shared.

    Loading takes seconds and hundreds of megabytes; an app that builds an embedder, a
    document embedder and a retriever must not pay it three times. Encoders are
    thread-safe (their calls take turns), so one instance serves every thread.

    Args:
        model: A registered name, a model directory, or None for the default model.
        **options: Passed to :meth:`SplareEncoder.from_pretrained` (``device``,
            ``precision``, ...); they are part of the cache key.
    """
    key = (None if model is None else str(model), *sorted((name, repr(value)) for name, value in options.items()))
    with _ENCODERS_LOCK:
        if key not in _ENCODERS:
            from splare_connect.encoding.encoder import SplareEncoder

            _ENCODERS[key] = SplareEncoder.from_pretrained(model, **options)
        return _ENCODERS[key]


def encoder_from(encoder: SplareEncoder | str | Path | None, **options: Any) -> SplareEncoder:
    """An encoder given as itself, or loaded (once per process) from a model name or directory.

    Raises:
        ConfigError: Loading ``options`` given with an encoder that is already loaded.
    """
    if encoder is None or isinstance(encoder, (str, Path)):
        return shared_encoder(encoder, **options)
    if options:
        raise ConfigError(
            f"loading options {sorted(options)} apply only when a model name is given, not an encoder instance"
        )
    return encoder
