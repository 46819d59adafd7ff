"""The fast CPU path: int8 matrix products, and the backbone run as a TorchScript trace.

On a CPU, encoding is bound by the backbone's linear layers and the SAE encoder's
``(d_in x d_sae)`` product, all fp32. Dynamic quantization stores those weights as int8
(per output channel) and quantizes each activation batch on the fly, so every product
runs as an int8 GEMM (fbgemm/oneDNN) and reads a quarter of the memory. Attention
scores, softmax, norms, pooling and TopK stay fp32. The backbone then runs as a trace
(:func:`trace_reader`), which removes the Python overhead that dominates short queries.

The quantized encoder uses the same features, but the SAE's per-token TopK turns small
numeric changes into different feature choices (cosine to fp32 about 0.8), and int8 queries
on fp32 documents retrieve worse than either precision alone. So an int8 encoder has its
own fingerprint, and a collection is written and searched at one precision. Speed and
quality are measured by ``benchmarks/fast_path.py`` and the evaluation (see BENCHMARKS.md).
It stays a CPU path: on CUDA, use bf16 instead.

Uses PyTorch's own ``quantize_dynamic`` (``torch.ao.quantization``), the maintained
eager-mode path shipped with torch; nothing is written to disk.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import torch
from torch import nn

from splare_connect.quiet import quiet_tracing

if TYPE_CHECKING:
    from splare_connect.encoding.sae.model import SparseAutoencoder


def quantize_linear_layers(model: nn.Module) -> nn.Module:
    """Replace every ``nn.Linear`` of ``model`` by its dynamically quantized int8 twin, in place."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():
        # torch 2.13 announces a future move of quantized tensors; the eager API still works.
        warnings.filterwarnings("ignore", message=".*quantiz.*deprecated.*", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*torch.ao.quantization.*", category=DeprecationWarning)
        # Per output channel: measured on the default model, per-tensor scales move the
        # vectors further (cosine to fp32 0.74 against 0.80) at the same speed.
        return quantize_dynamic(model, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True)


def quantize_sae(sae: SparseAutoencoder) -> SparseAutoencoder:
    """Run the SAE's encoder product as a dynamic int8 layer from now on, in place.

    The int8 layer is installed in the SAE's ``int8_encoder`` slot, which
    :meth:`~splare_connect.encoding.sae.SparseAutoencoder.pre_activation` calls after its fp32
    input scaling. This module reaches into the SAE, not the other way round, so the SAE
    needs no import of quantization. The fp32 ``W_enc`` stays: checkpoints, fingerprints
    and training read it.

    Returns:
        ``sae`` itself, for chaining.
    """
    sae.int8_encoder = QuantizedSaeEncoder(sae)
    return sae


class QuantizedSaeEncoder(nn.Module):
    """The SAE's pre-activation ``x @ W_enc + b_enc`` as one int8 dynamic linear layer.

    Input scaling and ``b_dec`` subtraction stay fp32; only the big product is int8.
    """

    def __init__(self, sae: SparseAutoencoder) -> None:
        super().__init__()
        linear = nn.Linear(sae.config.d_in, sae.config.d_sae)
        with torch.no_grad():
            linear.weight.copy_(sae.W_enc.detach().T)
            linear.bias.copy_(sae.b_enc.detach())
        quantized = quantize_linear_layers(nn.Sequential(linear))
        self.linear = quantized[0]  # type: ignore[index]  # quantize_linear_layers returns the Sequential it was given

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


def trace_reader(reader: nn.Module, vocab_size: int) -> nn.Module | None:
    """The backbone reader as a TorchScript trace, or ``None`` when the trace can't be trusted.

    In eager mode a short query spends most of its time in Python (module calls, mask
    building, and the dynamic-int8 modules' own bookkeeping): measured on the default
    model, 13.9 ms per query eagerly against 5.2 ms traced, with identical outputs. A trace
    records one run's operations, so it is only kept if it reproduces the eager outputs
    exactly on probe batches of other sizes and paddings than the one it was traced on;
    otherwise encoding stays eager (and says so).
    """
    generator = torch.Generator().manual_seed(0)

    def probe(batch: int, length: int, padded_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.randint(5, max(6, min(vocab_size, 30_000)), (batch, length), generator=generator)
        mask = torch.ones(batch, length, dtype=torch.long)
        for row in range(padded_rows):
            mask[row, length // 2 + row :] = 0
        return ids, mask

    try:
        with torch.inference_mode(), quiet_tracing():
            traced = torch.jit.trace(reader, probe(2, 11, 1), check_trace=False, strict=False)
            for ids, mask in (probe(1, 5, 0), probe(3, 37, 2), probe(4, 64, 3)):
                expected, got = reader(ids, mask), traced(ids, mask)
                if any(not torch.equal(a, b) for a, b in zip(expected, got, strict=True)):
                    raise RuntimeError("the trace's outputs differ from eager mode on a probe batch")
    except Exception as exc:  # any tracing failure means: stay eager
        warnings.warn(f"encoding stays in eager mode (the backbone could not be traced: {exc})", stacklevel=3)
        return None
    return traced
