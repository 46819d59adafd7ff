"""Layer numbering: layer=L reads blocks.L.hook_resid_post == HF hidden_states[L + 1]."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from splare_connect.encoding.backbone import load_backbone
from splare_connect.encoding.layer_reader import LayerReader, find_blocks
from splare_connect.errors import CheckpointError, ConfigError
from splare_connect.testing.tiny_models import N_LAYERS, build_bert, build_llama


@pytest.fixture(scope="module", params=["bert", "llama"])
def backbone_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    build = build_bert if request.param == "bert" else build_llama
    return build(tmp_path_factory.mktemp(request.param))


def _inputs(backbone_dir: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(backbone_dir)
    return dict(tokenizer(["list files in the directory", "copy a file"], padding=True, return_tensors="pt"))


@pytest.mark.parametrize("layer", range(N_LAYERS - 1))
def test_layer_l_is_hidden_states_l_plus_one(backbone_dir: Path, layer: int) -> None:
    reference = load_backbone(backbone_dir)
    inputs = _inputs(backbone_dir)
    with torch.no_grad():
        expected = reference.model(**inputs, output_hidden_states=True).hidden_states[layer + 1]
        truncated = load_backbone(backbone_dir)
        reader = LayerReader(truncated.model, layer)
        states, _ = reader(inputs["input_ids"], inputs["attention_mask"])
    torch.testing.assert_close(states, expected)
    # Blocks after L are gone, so they cost nothing.
    assert len(find_blocks(truncated.model)[1]) == layer + 1


def test_last_layer_is_read_before_any_final_norm(backbone_dir: Path) -> None:
    loaded = load_backbone(backbone_dir)
    inputs = _inputs(backbone_dir)
    captured = {}
    blocks = find_blocks(loaded.model)[1]
    blocks[-1].register_forward_hook(
        lambda _m, _i, out: captured.setdefault("out", out[0] if isinstance(out, tuple) else out)
    )
    with torch.no_grad():
        final = loaded.model(**inputs, output_hidden_states=True).hidden_states[-1]
        reader = LayerReader(load_backbone(backbone_dir).model, -1)
        states, _ = reader(inputs["input_ids"], inputs["attention_mask"])
    torch.testing.assert_close(states, captured["out"])
    if loaded.model.config.model_type == "llama":
        # Llama's last hidden_states entry has the final RMSNorm applied; the SAE's doesn't.
        assert not torch.allclose(states, final)
    else:
        torch.testing.assert_close(states, final)


def test_layer_out_of_range_names_the_valid_range(backbone_dir: Path) -> None:
    loaded = load_backbone(backbone_dir)
    with pytest.raises(ConfigError, match=r"layer 4 is out of range .*\(valid: 0\.\.3"):
        LayerReader(loaded.model, N_LAYERS)
    with pytest.raises(ConfigError, match="out of range"):
        LayerReader(loaded.model, -N_LAYERS - 1)


def test_missing_backbone_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="backbone directory not found"):
        load_backbone(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="cannot load backbone"):
        load_backbone(tmp_path / "empty")
