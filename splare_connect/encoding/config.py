"""The saved description of an encoder: which backbone, layer, SAE and pruning.

It lives as ``splare_config.json`` in a model directory, and its fields (with the
weights' digests) make the encoder's fingerprint, which collections record so that
vectors from different encoders are never mixed.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

from splare_connect.config_files import read_json_object, reject_unknown_keys
from splare_connect.errors import CheckpointError, ConfigError

CONFIG_FILE = "splare_config.json"

DensePooling = Literal["none", "mean", "cls"]

# Read from old config files but never obeyed: whether a backbone may run its own Python
# code is the caller's choice at load time, never a file's inside the thing being loaded.
RETIRED_REMOTE_CODE_KEY = "trust_remote_code"


@dataclass(frozen=True)
class EncoderConfig:
    """How text becomes SAE-latent sparse vectors.

    Args:
        name: Human-readable model name (shown in fingerprints and model cards).
        backbone: Backbone directory (relative to the model directory) or hub id.
        sae: SAE checkpoint directory (relative to the model directory) or path.
        layer: Block index ``L`` the SAE reads (``blocks.L.hook_resid_post``, i.e.
            Hugging Face ``hidden_states[L + 1]``); negative counts from the end.
        sae_format: SAE checkpoint format, or ``"auto"``.
        lora: LoRA adapter directory merged into the backbone, or ``None``.
        query_top_k: Weights kept per query vector; ``None`` keeps all.
        document_top_k: Weights kept per document vector; ``None`` keeps all.
        query_prefix: Text put before each query (e5 models: ``"query: "``).
        document_prefix: Text put before each document (e5 models: ``"passage: "``).
        pool_prefix_tokens: Let the prefix's own tokens add features. Off by default:
            they'd add the same features to every query (or document).
        pool_special_tokens: Let BOS/CLS/SEP/EOS add features. Off by default: a BOS
            residual can be orders of magnitude larger than other tokens and dominate.
        max_length: Tokens per text, specials included; longer texts are truncated.
            ``None`` uses the tokenizer's limit.
        dense_pooling: Dense embedding from the same forward pass: ``"mean"``
            (e5, sentence-transformers), ``"cls"``, or ``"none"``.

    Whether the backbone may run code shipped with it is not a setting here: it is the
    ``trust_remote_code`` argument of :meth:`SplareEncoder.from_pretrained`.
    """

    name: str
    backbone: str
    sae: str
    layer: int
    sae_format: str = "auto"
    lora: str | None = None
    query_top_k: int | None = 40
    document_top_k: int | None = 400
    query_prefix: str = ""
    document_prefix: str = ""
    pool_prefix_tokens: bool = False
    pool_special_tokens: bool = False
    max_length: int | None = None
    dense_pooling: DensePooling = "none"

    def __post_init__(self) -> None:
        for field_name in ("query_top_k", "document_top_k"):
            value = getattr(self, field_name)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ConfigError(f"{field_name} must be a positive integer or None (no pruning), got {value!r}")
        if self.max_length is not None and self.max_length < 3:
            raise ConfigError(f"max_length must be at least 3 tokens, got {self.max_length}")
        if self.dense_pooling not in ("none", "mean", "cls"):
            raise ConfigError(f"dense_pooling must be 'none', 'mean' or 'cls', got {self.dense_pooling!r}")

    def with_overrides(self, **overrides: Any) -> EncoderConfig:
        """A copy with some fields changed (unknown names raise ConfigError)."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"unknown encoder settings {unknown}; valid ones are {sorted(known)}")
        return replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible dict."""
        return asdict(self)

    def save(self, directory: str | Path) -> None:
        """Write ``splare_config.json`` into ``directory``."""
        Path(directory, CONFIG_FILE).write_text(
            json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )

    @classmethod
    def load(cls, directory: str | Path) -> EncoderConfig:
        """Read ``splare_config.json`` from a model directory.

        A ``trust_remote_code`` key (earlier versions wrote ``false`` into every file) is
        dropped: silently when false, with a warning otherwise.
        """
        file = Path(directory, CONFIG_FILE)
        if not file.is_file():
            raise CheckpointError(f"not a splare-connect model directory: {file} is missing")
        data = read_json_object(file, error=CheckpointError, what="settings file")
        _drop_remote_code_key(data, file)
        reject_unknown_keys(cls, data, str(file), error=CheckpointError)
        try:
            return cls(**data)
        except TypeError as exc:
            raise CheckpointError(f"{file}: {exc}") from exc


def _drop_remote_code_key(data: dict[str, Any], file: Path) -> None:
    """Remove the retired ``trust_remote_code`` key, warning if it asked for remote code.

    A file that could switch remote code on would let whoever supplies a model directory
    run Python on ``splare-connect search --model DIR``; the warning says how the user can
    allow it deliberately.
    """
    if RETIRED_REMOTE_CODE_KEY not in data:
        return
    value = data.pop(RETIRED_REMOTE_CODE_KEY)
    if value is not False:
        warnings.warn(
            f'{file}: ignoring "{RETIRED_REMOTE_CODE_KEY}": {json.dumps(value)}; a model directory cannot '
            "turn on remote code. To let this backbone run the Python code shipped with it, pass "
            "trust_remote_code=True when loading (CLI: --trust-remote-code), and only for a model you trust.",
            UserWarning,
            stacklevel=3,
        )
