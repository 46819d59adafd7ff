"""Load a transformers backbone: its tokenizer and config now, its weights now or on first use.

This module imports neither torch nor transformers at import time: a caller with a
compiled graph (the OpenVINO runtime) reads the tokenizer and ``config.json`` and never
needs the weights. Running the model up to the SAE's layer is
:class:`splare_connect.encoding.layer_reader.LayerReader`.

Layer numbering follows TransformerLens, the convention SAE checkpoints are named in:
``layer=L`` means the output of block ``L`` (0-based), ``blocks.L.hook_resid_post``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from splare_connect.encoding.tokenization import TextTokenizer, load_tokenizer
from splare_connect.errors import CheckpointError, ConfigError
from splare_connect.loading_errors import loading_errors
from splare_connect.quiet import quiet_loading

if TYPE_CHECKING:
    import torch
    from transformers import PretrainedConfig, PreTrainedModel


class LoadedBackbone:
    """A backbone's tokenizer and config, and its model, loaded now or on first use.

    The model (weights, LoRA merge) is the slow part of loading. A caller that may not
    need it (the OpenVINO runtime with a cached graph) asks :func:`load_backbone` for a
    lazy backbone: :attr:`model` then loads on first access.

    Args:
        tokenizer: The backbone's tokenizer.
        model: The model, or ``None`` when ``load_model`` will provide it.
        model_config: The model's config (or, read without transformers, its
            ``config.json`` as a namespace); taken from ``model`` when not given.
        load_model: Loads the model on first access of :attr:`model`.
        dtype: The parameter dtype ``load_model`` loads at, as torch names it
            (``"torch.float32"``; read from ``model`` when given).
    """

    def __init__(
        self,
        *,
        tokenizer: TextTokenizer,
        model: PreTrainedModel | None = None,
        model_config: PretrainedConfig | SimpleNamespace | None = None,
        load_model: Callable[[], PreTrainedModel] | None = None,
        dtype: str = "torch.float32",
    ) -> None:
        if model is None and load_model is None:
            raise ValueError("a backbone needs a model or a way to load one")
        self.tokenizer = tokenizer
        self._model = model
        self._load_model = load_model
        self._dtype = dtype
        self.model_config = model_config if model_config is not None else model.config  # type: ignore[union-attr]

    @property
    def model(self) -> PreTrainedModel:
        """The model, loaded now if it was not yet."""
        if self._model is None:
            assert self._load_model is not None  # guaranteed by __init__
            self._model = self._load_model()
        return self._model

    @property
    def dtype(self) -> str:
        """The model's parameter dtype as torch names it (``"torch.float32"``), without loading it."""
        if self._model is not None:
            return str(next(self._model.parameters()).dtype)
        return self._dtype

    @property
    def model_loaded(self) -> bool:
        """Whether the model's weights are in memory."""
        return self._model is not None


def load_backbone(
    name_or_path: str | Path,
    *,
    lora: str | Path | None = None,
    trust_remote_code: bool = False,
    torch_dtype: torch.dtype | None = None,
    lazy: bool = False,
) -> LoadedBackbone:
    """Load a transformers model and tokenizer, merging a LoRA adapter if given.

    Weights are read from safetensors only (``use_safetensors=True``), so no pickle
    from a checkpoint is ever executed; ``trust_remote_code`` stays off unless the
    caller turns it on (nothing read from a model directory can).

    Args:
        name_or_path: Local directory or model-hub id.
        lora: Directory of a peft LoRA adapter to apply and merge, or ``None``.
        trust_remote_code: Allow model code shipped with the checkpoint to run.
        torch_dtype: Parameter dtype (default float32).
        lazy: Load the tokenizer and config now and the model on first use (its
            errors are then raised there). A plain ``config.json`` and
            ``tokenizer.json`` are then read without importing transformers.

    Raises:
        CheckpointError: The model or adapter can't be found or read, or the model needs
            its own code and ``trust_remote_code`` is off.
    """
    location = str(name_or_path)
    if _looks_local(location) and not Path(location).is_dir():
        raise CheckpointError(f"backbone directory not found: {location}")
    with loading_errors(location, trust_remote_code):
        tokenizer = load_tokenizer(location, trust_remote_code=trust_remote_code, deferred=lazy)
        model_config = read_model_config(location) if lazy else None
        if lazy and model_config is None:
            from transformers import AutoConfig

            with quiet_loading():
                model_config = AutoConfig.from_pretrained(location, trust_remote_code=trust_remote_code)

    def load_model() -> PreTrainedModel:
        import torch
        from transformers import AutoModel

        with loading_errors(location, trust_remote_code), quiet_loading():
            model = AutoModel.from_pretrained(
                location, trust_remote_code=trust_remote_code, use_safetensors=True, dtype=torch_dtype or torch.float32
            )
        if lora is not None:
            with quiet_loading():
                model = _merge_lora(model, Path(lora))
        model.eval()
        model.requires_grad_(False)
        return model

    if lazy:
        dtype = "torch.float32" if torch_dtype is None else str(torch_dtype)
        return LoadedBackbone(tokenizer=tokenizer, model_config=model_config, load_model=load_model, dtype=dtype)
    return LoadedBackbone(tokenizer=tokenizer, model=load_model())


def _merge_lora(model: PreTrainedModel, adapter_dir: Path) -> PreTrainedModel:
    """Apply a peft LoRA adapter and fold it into the base weights (no runtime cost)."""
    from peft import PeftModel

    if not (adapter_dir / "adapter_config.json").is_file():
        raise CheckpointError(f"LoRA adapter not found: {adapter_dir}/adapter_config.json is missing")
    if not (adapter_dir / "adapter_model.safetensors").is_file():
        raise CheckpointError(
            f"LoRA adapter {adapter_dir} has no adapter_model.safetensors "
            "(only safetensors adapters are loaded; pickled .bin files are refused)"
        )
    try:
        peft_model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise CheckpointError(f"cannot apply LoRA adapter {adapter_dir}: {exc}") from exc
    return peft_model.merge_and_unload()


# How model configs spell their block count and width (BERT, GPT-2, T5 ...).
LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers")
WIDTH_KEYS = ("hidden_size", "d_model", "n_embd")


def read_model_config(location: str) -> SimpleNamespace | None:
    """A local backbone's ``config.json`` as a namespace, read without transformers.

    Only for a config that states every fact the encoder reads (block count, width, and
    position limit, since transformers fills in class defaults for keys a config leaves
    out) and runs no code of its own; ``None`` otherwise, and the caller asks
    transformers.
    """
    try:
        config = json.loads(Path(location, "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict) or "auto_map" in config or "model_type" not in config:
        return None
    stated = (
        any(isinstance(config.get(key), int) for key in LAYER_KEYS)
        and any(isinstance(config.get(key), int) for key in WIDTH_KEYS)
        and isinstance(config.get("max_position_embeddings"), int)
    )
    return SimpleNamespace(**config) if stated else None


def _looks_local(location: str) -> bool:
    return location.startswith((".", "/", "~")) or Path(location).exists()


def window_length(tokenizer: TextTokenizer, model_config: Any, cap: int | None = None) -> int:
    """Tokens a text may have, specials included: the smallest of ``cap``, the tokenizer's
    limit and the model's position embeddings (512 when none of them says).

    ``model_config`` is the model's config (or the model itself, whose ``config`` is read).
    """
    limits = [cap] if cap is not None else []
    if tokenizer.model_max_length is not None:
        limits.append(tokenizer.model_max_length)
    model_config = getattr(model_config, "config", model_config)
    positions = getattr(model_config, "max_position_embeddings", None)
    if isinstance(positions, int):
        limits.append(positions)
    return min(limits) if limits else 512


def block_count(model_config: Any) -> int:
    """Transformer blocks in a model, from its config (or the model itself)."""
    config = getattr(model_config, "config", model_config)
    for key in LAYER_KEYS:
        value = getattr(config, key, None)
        if isinstance(value, int):
            return value
    raise ConfigError(f"{type(config).__name__} has no num_hidden_layers")


def check_layer(layer: int, n_layers: int, model_name: str) -> int:
    """``layer`` as a block index in ``0..n_layers-1`` (negative counts from the end).

    Raises:
        ConfigError: ``layer`` is out of range; the message gives the valid range.
    """
    if not -n_layers <= layer < n_layers:
        raise ConfigError(
            f"layer {layer} is out of range for {model_name} with {n_layers} blocks "
            f"(valid: 0..{n_layers - 1}, or -{n_layers}..-1 from the end)"
        )
    return layer % n_layers
