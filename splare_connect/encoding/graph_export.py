"""Export an encoder's torch pass as an OpenVINO graph, and check the export against torch.

The export half of :mod:`.openvino_graph`, kept apart because it needs torch: a cached,
checked graph is loaded and run without it.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from splare_connect.encoding.pooling import pool_dense, pool_latents_padded
from splare_connect.errors import ConfigError
from splare_connect.quiet import quiet_tracing

if TYPE_CHECKING:
    import numpy.typing as npt

    from splare_connect.encoding.layer_reader import LayerReader
    from splare_connect.encoding.sae import SparseAutoencoder
    from splare_connect.encoding.token_batches import EncoderBatch

# How far a freshly exported graph may stray from torch on the probe batches. Dense
# embeddings agree to ~1e-7; pooled weights to ~1e-6, except where a tie between two
# activations at a token's k-th place resolves the other way, so a few weights may differ.
_DENSE_TOLERANCE = 1e-4
_WEIGHT_TOLERANCE = 1e-3
_DIFFERING_WEIGHTS_ALLOWED = 1e-3  # share of a probe batch's pooled weights


class EncoderGraph(nn.Module):
    """What is exported: token ids and masks in, pooled SAE weights (and dense) out.

    The same computation as :meth:`SplareEncoder.forward`, written with the padded
    pooling (:func:`~splare_connect.encoding.pooling.pool_latents_padded`) so it has no
    data-dependent shapes.
    """

    def __init__(self, reader: LayerReader, sae: SparseAutoencoder, dense_pooling: str) -> None:
        super().__init__()
        self.reader = reader
        self.sae = sae
        self.dense_pooling = dense_pooling

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, content_mask: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        states, last_hidden = self.reader(input_ids, attention_mask)
        pooled = pool_latents_padded(self.sae, states, content_mask)
        if self.dense_pooling == "none":
            return (pooled,)
        return pooled, pool_dense(last_hidden, attention_mask, self.dense_pooling)


def export_graph(build_module: Callable[[], nn.Module], example: EncoderBatch, graph_file: Path) -> None:
    """Build the module, trace it on ``example`` and save it as IR at ``graph_file``, atomically
    (the whole folder appears at once).

    Raises:
        ConfigError: The model cannot be converted (it then stays on torch).
    """
    module = build_module().eval()  # the model's own load errors (missing weights...) are raised as they are
    try:
        _export(module, example, graph_file)
    except Exception as exc:  # any conversion failure: this model stays on torch
        reason = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")[:200]
        raise ConfigError(
            f"OpenVINO cannot export this model's graph ({type(exc).__name__}: {reason}); use runtime='torch'"
        ) from None


def _export(module: nn.Module, example: EncoderBatch, graph_file: Path) -> None:
    import openvino

    location = graph_file.parent
    location.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{location.name}-", dir=location.parent))
    try:
        inputs = tuple(
            torch.as_tensor(np.asarray(array)).long()
            for array in (example.input_ids, example.attention_mask, example.content_mask)
        )
        with torch.no_grad(), quiet_tracing():
            model = openvino.convert_model(module, example_input=inputs, input=[openvino.PartialShape([-1, -1])] * 3)
        openvino.save_model(model, str(staging / graph_file.name), compress_to_fp16=False)
        try:
            staging.rename(location)
        except OSError:
            if not graph_file.is_file():  # lost a race to a complete export: fine
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def check_graph(
    graph: Callable[[EncoderBatch], tuple[npt.NDArray[np.float32], npt.NDArray[np.float32] | None]],
    reference: Callable[[EncoderBatch], tuple[torch.Tensor, torch.Tensor | None]],
    batches: list[EncoderBatch],
    location: Path,
) -> None:
    """Refuse (and delete) a graph whose outputs stray from the torch pass on the probe batches."""
    for batch in batches:
        with torch.inference_mode():
            expected_pooled, expected_dense = reference(batch)
        pooled, dense = graph(batch)
        expected = expected_pooled.float().cpu().numpy()
        differing = float(np.mean(np.abs(pooled - expected) > _WEIGHT_TOLERANCE))
        dense_error = (
            0.0
            if dense is None or expected_dense is None
            else float(np.abs(dense - expected_dense.float().cpu().numpy()).max())
        )
        if differing > _DIFFERING_WEIGHTS_ALLOWED or dense_error > _DENSE_TOLERANCE:
            shutil.rmtree(location, ignore_errors=True)
            raise ConfigError(
                f"the OpenVINO graph disagrees with torch on a probe batch ({differing:.2%} of weights off, "
                f"dense off by {dense_error:.1e}); use runtime='torch' for this model"
            )
