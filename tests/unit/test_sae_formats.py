"""Each SAE format is written with the real libraries and read back through load_sae.

The loaded module's activations are compared with a plain numpy computation written
from the format's own conventions (orientation, b_dec subtraction, scaling, rule).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from splare_connect.encoding.sae import detect_sae_format, load_sae
from splare_connect.errors import CheckpointError
from splare_connect.testing.tiny_models import random_sae_tensors, reference_activations

D_IN, D_SAE = 16, 48


@pytest.fixture
def weights() -> dict[str, np.ndarray]:
    return random_sae_tensors(D_IN, D_SAE, seed=3)


@pytest.fixture
def inputs() -> np.ndarray:
    return np.random.default_rng(7).normal(0, 1.0, (20, D_IN)).astype(np.float32)


def encode(sae_dir: Path, x: np.ndarray, sae_format: str = "auto") -> np.ndarray:
    sae = load_sae(sae_dir, sae_format)  # type: ignore[arg-type]
    with torch.no_grad():
        return sae.encode(torch.from_numpy(x)).numpy()


def test_gemma_scope_npz(tmp_path: Path, weights: dict[str, np.ndarray], inputs: np.ndarray) -> None:
    folder = tmp_path / "layer_5" / "width_16k" / "average_l0_71"
    folder.mkdir(parents=True)
    np.savez(folder / "params.npz", **weights)
    assert detect_sae_format(folder) == "gemma-scope"
    expected = reference_activations(inputs, weights, activation="jumprelu", threshold=weights["threshold"])
    np.testing.assert_allclose(encode(folder, inputs), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(encode(folder / "params.npz", inputs), expected, rtol=1e-5, atol=1e-5)
    assert load_sae(folder).config.hook_layer == 5
    assert (expected > 0).any() and (expected == 0).any()  # the threshold really bites


@pytest.mark.parametrize("act_fn", ["jumprelu", "topk"])
def test_llama_scope(tmp_path: Path, weights: dict[str, np.ndarray], inputs: np.ndarray, act_fn: str) -> None:
    (tmp_path / "checkpoints").mkdir()
    save_file(
        {
            "encoder.weight": np.ascontiguousarray(weights["W_enc"].T),
            "encoder.bias": weights["b_enc"],
            "decoder.weight": np.ascontiguousarray(weights["W_dec"].T),
            "decoder.bias": weights["b_dec"],
        },
        str(tmp_path / "checkpoints" / "final.safetensors"),
    )
    hyper = {
        "d_model": D_IN,
        "d_sae": D_SAE,
        "act_fn": act_fn,
        "jump_relu_threshold": 0.4,
        "top_k": 5,
        "norm_activation": "dataset-wise",
        "dataset_average_activation_norm": {"in": 8.0, "out": 9.0},
        "hook_point_in": "blocks.3.hook_resid_post",
    }
    (tmp_path / "hyperparams.json").write_text(json.dumps(hyper))
    scale = math.sqrt(D_IN) / 8.0
    expected = reference_activations(inputs, weights, activation=act_fn, k=5, threshold=0.4, input_scale=scale)
    np.testing.assert_allclose(encode(tmp_path, inputs), expected, rtol=1e-5, atol=1e-5)
    assert load_sae(tmp_path).config.hook_layer == 3


@pytest.mark.parametrize(
    ("architecture", "extra"),
    [
        ("standard", {"activation_fn_str": "relu"}),
        ("jumprelu", {}),
        ("topk", {"activation_fn_kwargs": {"k": 4}}),
    ],
)
def test_saelens(
    tmp_path: Path, weights: dict[str, np.ndarray], inputs: np.ndarray, architecture: str, extra: dict
) -> None:
    tensors = {key: weights[key] for key in ("W_enc", "b_enc", "W_dec", "b_dec")}
    if architecture == "jumprelu":
        tensors["threshold"] = weights["threshold"]
    save_file(tensors, str(tmp_path / "sae_weights.safetensors"))
    cfg = {
        "d_in": D_IN,
        "d_sae": D_SAE,
        "architecture": architecture,
        "apply_b_dec_to_input": True,
        "hook_name": "blocks.2.hook_resid_post",
        **extra,
    }
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    activation = {"standard": "relu", "jumprelu": "jumprelu", "topk": "topk"}[architecture]
    expected = reference_activations(
        inputs, weights, activation=activation, k=4, threshold=weights["threshold"], apply_b_dec=True
    )
    np.testing.assert_allclose(encode(tmp_path, inputs), expected, rtol=1e-5, atol=1e-5)
    assert load_sae(tmp_path).config.hook_layer == 2


def test_sparsify(tmp_path: Path, weights: dict[str, np.ndarray], inputs: np.ndarray) -> None:
    save_file(
        {
            "encoder.weight": np.ascontiguousarray(weights["W_enc"].T),
            "encoder.bias": weights["b_enc"],
            "W_dec": weights["W_dec"],
            "b_dec": weights["b_dec"],
        },
        str(tmp_path / "sae.safetensors"),
    )
    (tmp_path / "cfg.json").write_text(json.dumps({"expansion_factor": 3, "normalize_decoder": True, "k": 6}))
    expected = reference_activations(inputs, weights, activation="topk", k=6, apply_b_dec=True)
    np.testing.assert_allclose(encode(tmp_path, inputs), expected, rtol=1e-5, atol=1e-5)


def test_native_round_trip_keeps_decoder(tmp_path: Path, weights: dict[str, np.ndarray], inputs: np.ndarray) -> None:
    (tmp_path / "src").mkdir()
    np.savez(tmp_path / "src" / "params.npz", **weights)
    original = load_sae(tmp_path / "src")
    original.save(tmp_path / "native")
    reloaded = load_sae(tmp_path / "native")
    assert detect_sae_format(tmp_path / "native") == "splare"
    assert reloaded.W_dec is not None
    x = torch.from_numpy(inputs)
    with torch.no_grad():
        torch.testing.assert_close(reloaded.encode(x), original.encode(x))
        torch.testing.assert_close(reloaded.decode(reloaded.encode(x)), original.decode(original.encode(x)))


def test_missing_and_malformed_checkpoints(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_sae(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no SAE checkpoint recognised"):
        load_sae(tmp_path / "empty")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "cfg.json").write_text("{}")
    (broken / "sae_weights.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_sae(broken)
    bad_json = tmp_path / "bad_json"
    bad_json.mkdir()
    (bad_json / "hyperparams.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_sae(bad_json)
    wrong_shape = tmp_path / "wrong_shape"
    wrong_shape.mkdir()
    np.savez(
        wrong_shape / "params.npz",
        W_enc=np.zeros((4, 8), np.float32),
        b_enc=np.zeros(5, np.float32),
        threshold=np.zeros(8, np.float32),
    )
    with pytest.raises(CheckpointError, match="b_enc has shape"):
        load_sae(wrong_shape)
    missing_key = tmp_path / "missing_key"
    missing_key.mkdir()
    np.savez(missing_key / "params.npz", W_enc=np.zeros((4, 8), np.float32))
    with pytest.raises(CheckpointError, match="'b_enc' is missing"):
        load_sae(missing_key)


def test_pickled_npz_is_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "params.npz", W_enc=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(CheckpointError, match=r"not a readable \.npz"):
        load_sae(tmp_path)


@pytest.mark.parametrize(("width", "k"), [(16384, 32), (4096, 64), (100, 7), (64, 4)])
def test_grouped_topk_equals_full_topk(width: int, k: int) -> None:
    from splare_connect.encoding.sae.model import grouped_topk

    x = torch.randn(300, width, generator=torch.Generator().manual_seed(width))
    values, indices = grouped_topk(x, k)
    expected_values, expected_indices = torch.topk(x, k, dim=1)
    assert torch.equal(indices.sort(dim=1).values, expected_indices.sort(dim=1).values)
    assert torch.equal(torch.gather(x, 1, indices), values)
    assert torch.equal(values.sort(dim=1).values, expected_values.sort(dim=1).values)
