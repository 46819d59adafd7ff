"""Registered models: a packaged LoRA adapter built beside its base model, and rebuilt when it changes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from splare_connect import SplareEncoder
from splare_connect.models import registry
from splare_connect.models.packaged_adapter import adapter_digest, build_with_adapter, is_current


def save_lora(base_model_dir: Path, target: Path, seed: int) -> None:
    """A real peft LoRA adapter on the tiny backbone, randomly initialised (so it changes the vectors)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel

    torch.manual_seed(seed)
    backbone = AutoModel.from_pretrained(base_model_dir / "backbone")
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"], init_lora_weights=False)
    get_peft_model(backbone, lora).save_pretrained(target, safe_serialization=True)
    (target / "MODEL_CARD.md").write_text("# tiny-tuned\n", encoding="utf-8")


@pytest.fixture
def registered(tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Registers ``tiny-base`` (a copy of the tiny model) and ``tiny-tuned`` (it plus a packaged
    adapter) in a fresh cache; returns the packaged adapter's directory."""
    from splare_connect.models import packaged_adapter

    monkeypatch.setenv(registry.CACHE_ENV, str(tmp_path / "cache"))
    adapters = tmp_path / "package-adapters"
    save_lora(tiny_model_dir, adapters / "tiny-tuned", seed=0)
    monkeypatch.setattr(packaged_adapter, "LORA_DIR", adapters)
    base = registry.ModelDescription("tiny-base", "tiny base", build=lambda t: shutil.copytree(tiny_model_dir, t))
    tuned = registry.ModelDescription(
        "tiny-tuned",
        "tiny fine-tuned",
        build=lambda t: build_with_adapter(t, name="tiny-tuned", base_dir=registry.resolve_model("tiny-base")),
        is_current=lambda d: is_current(d, "tiny-tuned"),
    )
    monkeypatch.setitem(registry.MODELS, "tiny-base", base)
    monkeypatch.setitem(registry.MODELS, "tiny-tuned", tuned)
    return adapters / "tiny-tuned"


def test_a_packaged_adapter_is_built_beside_its_base_and_changes_the_vectors(registered: Path) -> None:
    model_dir = registry.resolve_model("tiny-tuned")
    assert model_dir == registry.cache_dir() / "tiny-tuned" and (model_dir / "MODEL_CARD.md").is_file()
    tuned = SplareEncoder.from_pretrained("tiny-tuned", device="cpu")
    base = SplareEncoder.from_pretrained("tiny-base", device="cpu")
    assert tuned.config.backbone == str(Path("..") / "tiny-base" / "backbone") and tuned.config.lora == "adapter"
    texts = ["list the files in a directory", "copy a file"]
    assert tuned.encode_documents(texts) != base.encode_documents(texts)
    assert tuned.fingerprint["digest"] != base.fingerprint["digest"]


def test_a_changed_packaged_adapter_is_rebuilt(registered: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    model_dir = registry.resolve_model("tiny-tuned")
    before = SplareEncoder.from_pretrained("tiny-tuned", device="cpu").fingerprint["digest"]
    shutil.rmtree(registered)
    save_lora(tiny_model_dir, registered, seed=1)  # a "new release" of the weights
    assert not is_current(model_dir, "tiny-tuned")
    assert registry.resolve_model("tiny-tuned") == model_dir
    assert adapter_digest(model_dir / "adapter") == adapter_digest(registered)
    assert SplareEncoder.from_pretrained("tiny-tuned", device="cpu").fingerprint["digest"] != before


def test_every_packaged_model_ships_its_adapter_and_model_card() -> None:
    from splare_connect.models.packaged_adapter import LORA_DIR, MODEL_CARD, packaged_adapter

    shipped = sorted(directory.name for directory in LORA_DIR.iterdir() if directory.is_dir())
    packaged = sorted(name for name in registry.MODELS if name != registry.ZERO_SHOT_MODEL)
    assert shipped == packaged and registry.DEFAULT_MODEL in packaged and registry.MANPAGES_MODEL in packaged
    for name in packaged:
        card = (packaged_adapter(name) / MODEL_CARD).read_text(encoding="utf-8")
        assert card.startswith(f"# {name}\n")
