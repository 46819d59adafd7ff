"""Run a transformers backbone up to one layer and read its residual stream there.

Layer numbering follows TransformerLens, the convention SAE checkpoints are named in:
``layer=L`` means the output of block ``L`` (0-based), ``blocks.L.hook_resid_post``.
In Hugging Face terms that is ``hidden_states[L + 1]``, because ``hidden_states[0]`` is
the embedding output. The state is captured by a forward hook on block ``L`` itself,
so models whose last ``hidden_states`` entry has a final norm applied (Llama, Gemma,
GPT-2 ...) are still read before that norm, as the SAE saw them in training.

Blocks after ``L`` are removed from the model, not merely ignored, so they cost no
time (SPLARE's intermediate-layer finding is also a speed win).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from splare_connect.encoding.backbone import block_count, check_layer
from splare_connect.errors import ConfigError

if TYPE_CHECKING:
    from transformers import PreTrainedModel


def find_blocks(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """Find the model's stack of transformer blocks.

    It is the ``nn.ModuleList`` whose length equals ``config.num_hidden_layers``
    (``encoder.layer`` in BERT, ``layers`` in Llama, ``h`` in GPT-2 ...).

    Returns:
        The attribute path of the list and the list itself.

    Raises:
        ConfigError: No such list exists (an architecture this reader can't handle).
    """
    n_layers = block_count(model)
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == n_layers and n_layers > 0:
            return name, module
    raise ConfigError(
        f"cannot find the {n_layers} transformer blocks of {type(model).__name__}; this architecture is not supported"
    )


class LayerReader(nn.Module):
    """Runs a backbone up to block ``layer`` and returns that block's output states.

    Args:
        model: A transformers base model (``AutoModel``, not a task head).
        layer: Block index ``L``; negative values count from the end (``-1`` = last).
        keep_all_layers: Keep the blocks after ``L`` (needed when a dense embedding
            is pooled from the final layer while the SAE reads an earlier one).

    Raises:
        ConfigError: ``layer`` is out of range; the message gives the valid range.
    """

    def __init__(self, model: PreTrainedModel, layer: int, *, keep_all_layers: bool = False) -> None:
        super().__init__()
        path, blocks = find_blocks(model)
        n_layers = len(blocks)
        self.layer = check_layer(layer, n_layers, type(model).__name__)
        self.n_layers_total = n_layers
        self.reads_last_layer = self.layer == n_layers - 1
        if not keep_all_layers and not self.reads_last_layer:
            _truncate_blocks(model, path, self.layer + 1)
        self.model = model
        self._captured: torch.Tensor | None = None
        kept_blocks = find_blocks(model)[1]
        kept_blocks[self.layer].register_forward_hook(self._capture)

    def _capture(self, _module: nn.Module, _inputs: Any, output: Any) -> None:
        self._captured = output[0] if isinstance(output, tuple) else output

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **extra: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(layer_states, last_hidden_state)``, each ``(batch, seq, hidden)``."""
        self._captured = None
        outputs = self.model(input_ids=input_ids, attention_mask=attention_mask, **extra)
        if self._captured is None:
            raise RuntimeError("the forward hook on the SAE's layer did not fire")
        states, self._captured = self._captured, None
        return states, outputs.last_hidden_state


def _truncate_blocks(model: nn.Module, path: str, keep: int) -> None:
    parent_path, _, attribute = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    blocks = getattr(parent, attribute)
    setattr(parent, attribute, nn.ModuleList(list(blocks)[:keep]))
    config: Any = model.config
    config.num_hidden_layers = keep
    layer_types = getattr(config, "layer_types", None)
    if isinstance(layer_types, list):
        config.layer_types = layer_types[:keep]
