"""Loaders for the SAE checkpoint formats people publish today.

Each loader reads one format's files (safetensors or ``.npz``; never pickles) and
returns a :class:`SparseAutoencoder` in the project's conventions. ``load_sae`` picks
the loader from the files present, or from an explicit ``sae_format``.

| format        | files                                              | activation     |
|---------------|----------------------------------------------------|----------------|
| ``splare``    | ``sae_config.json`` + ``sae.safetensors``          | any            |
| ``gemma-scope``| ``params.npz`` (W_enc, b_enc, threshold, W_dec, b_dec) | JumpReLU   |
| ``llama-scope``| ``hyperparams.json`` + ``checkpoints/final.safetensors`` | JumpReLU or TopK |
| ``saelens``   | ``cfg.json`` + ``sae_weights.safetensors``         | ReLU, JumpReLU, TopK |
| ``sparsify``  | ``cfg.json`` + ``sae.safetensors``                 | TopK           |
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from splare_connect.config_files import read_json_object
from splare_connect.encoding.sae.model import SAE_CONFIG_FILE, SAE_WEIGHTS_FILE, SaeConfig, SparseAutoencoder
from splare_connect.errors import CheckpointError

SaeFormat = Literal["auto", "splare", "gemma-scope", "llama-scope", "saelens", "sparsify"]

_HOOK_LAYER = re.compile(r"blocks\.(\d+)\.hook_resid_post")


def load_sae(path: str | Path, sae_format: SaeFormat = "auto") -> SparseAutoencoder:
    """Load an SAE checkpoint from a directory (or a Gemma Scope ``params.npz`` file).

    Args:
        path: Checkpoint directory, or the ``params.npz`` file itself.
        sae_format: One of the formats above; ``"auto"`` detects it from the files.

    Raises:
        CheckpointError: The path is missing, the format can't be told, or a file is
            malformed (the message names the file and what is wrong).
    """
    location = Path(path)
    if not location.exists():
        raise CheckpointError(f"SAE checkpoint not found: {location}")
    fmt = detect_sae_format(location) if sae_format == "auto" else sae_format
    if fmt not in _LOADERS:
        raise CheckpointError(f"unknown SAE format {fmt!r}; expected one of {sorted(_LOADERS)}")
    return _LOADERS[fmt](location)


def detect_sae_format(location: Path) -> str:
    """Tell a checkpoint's format from the file names it contains."""
    if location.is_file():
        if location.suffix == ".npz":
            return "gemma-scope"
        raise CheckpointError(f"{location}: expected an SAE directory or a params.npz file")
    names = {p.name for p in location.iterdir()}
    if SAE_CONFIG_FILE in names:
        return "splare"
    if "params.npz" in names:
        return "gemma-scope"
    if "hyperparams.json" in names:
        return "llama-scope"
    if "cfg.json" in names and "sae_weights.safetensors" in names:
        return "saelens"
    if "cfg.json" in names and "sae.safetensors" in names:
        return "sparsify"
    raise CheckpointError(
        f"{location}: no SAE checkpoint recognised (looked for {SAE_CONFIG_FILE}, params.npz, "
        "hyperparams.json, cfg.json with sae_weights.safetensors or sae.safetensors); "
        f"found {sorted(names) or 'an empty directory'}"
    )


def _load_splare(location: Path) -> SparseAutoencoder:
    config = SaeConfig.from_dict(_read_json(location / SAE_CONFIG_FILE), source=str(location / SAE_CONFIG_FILE))
    tensors = _read_safetensors(location / SAE_WEIGHTS_FILE)
    return SparseAutoencoder(
        config,
        W_enc=_take(tensors, "W_enc", location),
        b_enc=_take(tensors, "b_enc", location),
        b_dec=tensors.get("b_dec"),
        threshold=tensors.get("threshold"),
        W_dec=tensors.get("W_dec"),
    )


def _load_gemma_scope(location: Path) -> SparseAutoencoder:
    file = location if location.is_file() else location / "params.npz"
    try:
        with np.load(file, allow_pickle=False) as archive:
            arrays = {key: torch.from_numpy(np.asarray(archive[key], dtype=np.float32)) for key in archive.files}
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{file}: not a readable .npz archive ({exc})") from exc
    W_enc = _take(arrays, "W_enc", file)
    config = SaeConfig(
        d_in=W_enc.shape[0],
        d_sae=W_enc.shape[1],
        activation="jumprelu",
        apply_b_dec_to_input=False,
        hook_layer=_layer_from_path(file),
        source_format="gemma-scope",
    )
    return SparseAutoencoder(
        config,
        W_enc=W_enc,
        b_enc=_take(arrays, "b_enc", file),
        b_dec=arrays.get("b_dec"),
        threshold=_take(arrays, "threshold", file),
        W_dec=arrays.get("W_dec"),
    )


def _load_llama_scope(location: Path) -> SparseAutoencoder:
    hyper = _read_json(location / "hyperparams.json")
    weights_file = location / "checkpoints" / "final.safetensors"
    tensors = _read_safetensors(weights_file)
    d_model, d_sae = _int_field(hyper, "d_model", location), _int_field(hyper, "d_sae", location)
    act_fn = str(hyper.get("act_fn", "jumprelu")).lower()
    input_scale = 1.0
    if hyper.get("norm_activation") == "dataset-wise":
        average_norm = hyper.get("dataset_average_activation_norm", {}).get("in")
        if not average_norm:
            raise CheckpointError(
                f"{location}/hyperparams.json: norm_activation is dataset-wise but "
                "dataset_average_activation_norm.in is missing"
            )
        input_scale = math.sqrt(d_model) / float(average_norm)
    if act_fn == "topk":
        activation, k, threshold = "topk", _int_field(hyper, "top_k", location), None
    elif act_fn == "jumprelu":
        activation, k, threshold = "jumprelu", None, float(hyper["jump_relu_threshold"])
    elif act_fn == "relu":
        activation, k, threshold = "relu", None, None
    else:
        raise CheckpointError(f"{location}/hyperparams.json: unsupported act_fn {act_fn!r}")
    config = SaeConfig(
        d_in=d_model,
        d_sae=d_sae,
        activation=activation,  # type: ignore[arg-type]
        k=k,
        threshold=threshold,
        input_scale=input_scale,
        apply_b_dec_to_input=bool(hyper.get("apply_decoder_bias_to_pre_encoder", False)),
        hook_layer=_layer_from_hook(hyper.get("hook_point_in")),
        source_format="llama-scope",
    )
    decoder = tensors.get("decoder.weight")
    return SparseAutoencoder(
        config,
        W_enc=_take(tensors, "encoder.weight", weights_file).T,
        b_enc=_take(tensors, "encoder.bias", weights_file),
        b_dec=tensors.get("decoder.bias"),
        W_dec=None if decoder is None else decoder.T,
    )


def _load_saelens(location: Path) -> SparseAutoencoder:
    cfg = _read_json(location / "cfg.json")
    tensors = _read_safetensors(location / "sae_weights.safetensors")
    architecture = str(cfg.get("architecture", "standard"))
    activation_fn = str(cfg.get("activation_fn", cfg.get("activation_fn_str", "relu")))
    k = cfg.get("k", (cfg.get("activation_fn_kwargs") or {}).get("k"))
    if architecture == "jumprelu":
        activation: str = "jumprelu"
    elif architecture == "topk" or activation_fn == "topk":
        activation = "topk"
    elif architecture == "standard" and activation_fn == "relu":
        activation = "relu"
    else:
        raise CheckpointError(
            f"{location}/cfg.json: SAELens architecture {architecture!r} with activation "
            f"{activation_fn!r} is not supported (supported: standard/relu, jumprelu, topk)"
        )
    normalize = cfg.get("normalize_activations") or "none"
    if normalize != "none":
        raise CheckpointError(
            f"{location}/cfg.json: normalize_activations={normalize!r} needs a runtime scaling "
            "factor that the checkpoint does not store; fold it into W_enc first"
        )
    threshold = tensors.get("threshold")
    if threshold is None and "log_threshold" in tensors:
        threshold = torch.exp(tensors["log_threshold"])
    metadata = cfg.get("metadata") or {}
    config = SaeConfig(
        d_in=_int_field(cfg, "d_in", location),
        d_sae=_int_field(cfg, "d_sae", location),
        activation=activation,  # type: ignore[arg-type]
        k=int(k) if activation == "topk" and k is not None else None,
        apply_b_dec_to_input=bool(cfg.get("apply_b_dec_to_input", True)),
        hook_layer=_layer_from_hook(cfg.get("hook_name", metadata.get("hook_name"))),
        source_format="saelens",
    )
    return SparseAutoencoder(
        config,
        W_enc=_take(tensors, "W_enc", location),
        b_enc=_take(tensors, "b_enc", location),
        b_dec=tensors.get("b_dec"),
        threshold=threshold,
        W_dec=tensors.get("W_dec"),
    )


def _load_sparsify(location: Path) -> SparseAutoencoder:
    cfg = _read_json(location / "cfg.json")
    weights_file = location / "sae.safetensors"
    tensors = _read_safetensors(weights_file)
    encoder_weight = _take(tensors, "encoder.weight", weights_file)
    num_latents, d_in = encoder_weight.shape
    config = SaeConfig(
        d_in=int(cfg.get("d_in", d_in)),
        d_sae=int(num_latents),
        activation="topk",
        k=_int_field(cfg, "k", location),
        apply_b_dec_to_input=True,
        source_format="sparsify",
    )
    return SparseAutoencoder(
        config,
        W_enc=encoder_weight.T,
        b_enc=_take(tensors, "encoder.bias", weights_file),
        b_dec=tensors.get("b_dec"),
        W_dec=tensors.get("W_dec"),
    )


_LOADERS: dict[str, Callable[[Path], SparseAutoencoder]] = {
    "splare": _load_splare,
    "gemma-scope": _load_gemma_scope,
    "llama-scope": _load_llama_scope,
    "saelens": _load_saelens,
    "sparsify": _load_sparsify,
}


def _read_json(file: Path) -> dict[str, Any]:
    return read_json_object(file, error=CheckpointError, what="SAE config file")


def _read_safetensors(file: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not file.is_file():
        raise CheckpointError(f"missing SAE weights file: {file}")
    try:
        return {key: value.float() for key, value in load_file(str(file)).items()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{file}: not a readable safetensors file ({exc})") from exc


def _take(tensors: dict[str, torch.Tensor], key: str, where: Path) -> torch.Tensor:
    if key not in tensors:
        raise CheckpointError(f"{where}: tensor {key!r} is missing (found {sorted(tensors)})")
    return tensors[key]


def _int_field(data: dict[str, Any], key: str, where: Path) -> int:
    if key not in data:
        raise CheckpointError(f"{where}: config field {key!r} is missing")
    try:
        return int(data[key])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: config field {key!r} is not an integer: {data[key]!r}") from exc


def _layer_from_hook(hook_name: object) -> int | None:
    match = _HOOK_LAYER.fullmatch(str(hook_name)) if hook_name else None
    return int(match.group(1)) if match else None


def _layer_from_path(file: Path) -> int | None:
    match = re.search(r"layer_(\d+)", str(file))
    return int(match.group(1)) if match else None
