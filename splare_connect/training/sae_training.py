"""Stage one of SAE-SPLADE: train a TopK SAE on a backbone's token states at one layer.

For backbones that have no pre-trained SAE. States of content tokens (no special
tokens) at ``blocks.L.hook_resid_post`` are collected from a text corpus; the SAE is
the TopK architecture of Gao et al. (as in EleutherAI's sparsify):

    z = TopK(ReLU((x * s - b_dec) @ W_enc + b_enc)),   x_hat = (z @ W_dec + b_dec) / s

with decoder rows kept at unit norm, ``b_dec`` initialised to the mean state, and ``s``
the dataset-wise input scale ``sqrt(d) / mean ||x||`` (so learning rates don't depend
on the backbone's activation scale). Trained on reconstruction MSE with Adam. Saved in
the project's SAE format, with a model directory that loads as an encoder.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from splare_connect.errors import ConfigError

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class SaeTrainingResult:
    """Where the SAE went and how well it reconstructs held-out states."""

    model_dir: Path
    tokens: int
    steps: int
    explained_variance: float
    dead_fraction: float
    seconds: float


def collect_states(
    backbone: str | Path,
    layer: int,
    texts: Sequence[str],
    *,
    max_tokens: int,
    max_length: int = 256,
    batch_size: int = 16,
) -> torch.Tensor:
    """Content-token states at block ``layer`` for up to ``max_tokens`` tokens: ``(tokens, hidden)``."""
    from splare_connect.encoding.backbone import load_backbone, window_length
    from splare_connect.encoding.layer_reader import LayerReader
    from splare_connect.encoding.token_batches import iter_batches

    loaded = load_backbone(backbone)
    length = window_length(loaded.tokenizer, loaded.model, max_length)
    reader = LayerReader(loaded.model, layer)
    chunks: list[torch.Tensor] = []
    gathered = 0
    batches = iter_batches(
        loaded.tokenizer,
        list(texts),
        prefix="",
        max_length=length,
        batch_size=batch_size,
        pool_prefix_tokens=True,
        pool_special_tokens=False,
        device=torch.device("cpu"),
    )
    with torch.inference_mode():
        for batch in batches:
            states, _ = reader(batch.input_ids, batch.attention_mask)
            chunks.append(states[batch.content_mask].float().clone())
            gathered += chunks[-1].shape[0]
            if gathered >= max_tokens:
                break
    if not chunks:
        raise ConfigError("no texts to collect states from")
    return torch.cat(chunks)[:max_tokens]


def train_topk_sae(
    states: torch.Tensor,
    *,
    latents: int,
    k: int,
    steps: int,
    batch_size: int = 1024,
    learning_rate: float | None = None,
    seed: int = 0,
    on_step: Callable[[int, float], None] | None = None,
) -> tuple[dict[str, torch.Tensor], float, float]:
    """Train on ``states``; returns (weights, input scale, held-out explained variance).

    The last 5 % of the states are held out to measure the fraction of variance the
    reconstruction explains.
    """
    if not 0 < k <= latents:
        raise ConfigError(f"need 0 < k <= latents, got k={k}, latents={latents}")
    generator = torch.Generator().manual_seed(seed)
    states = states[torch.randperm(states.shape[0], generator=generator)]
    held_out = max(1, states.shape[0] // 20)
    train_states, test_states = states[:-held_out], states[-held_out:]
    d_in = states.shape[1]
    scale = math.sqrt(d_in) / float(train_states.norm(dim=1).mean())
    x_train = train_states * scale
    b_dec = torch.nn.Parameter(x_train.mean(dim=0))
    w_dec = torch.randn(latents, d_in, generator=generator)
    w_dec = torch.nn.Parameter(w_dec / w_dec.norm(dim=1, keepdim=True))
    w_enc = torch.nn.Parameter(w_dec.detach().T.clone())
    b_enc = torch.nn.Parameter(torch.zeros(latents))
    lr = learning_rate or 2e-4 / math.sqrt(latents / 16384)
    optimizer = torch.optim.Adam([w_enc, b_enc, w_dec, b_dec], lr=lr, betas=(0.9, 0.999))

    def forward(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pre = torch.relu((x - b_dec) @ w_enc + b_enc)
        values, indices = torch.topk(pre, k, dim=1)
        recon = (values.unsqueeze(-1) * w_dec[indices]).sum(dim=1) + b_dec
        return recon, indices

    fired = torch.zeros(latents, dtype=torch.bool)
    for step in range(steps):
        batch = x_train[torch.randint(0, x_train.shape[0], (batch_size,), generator=generator)]
        recon, indices = forward(batch)
        loss = ((recon - batch) ** 2).sum(dim=1).mean() / ((batch - batch.mean(0)) ** 2).sum(dim=1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            w_dec.data /= w_dec.data.norm(dim=1, keepdim=True)
            fired[indices.unique()] = True
        if on_step:
            on_step(step, float(loss))
    with torch.no_grad():
        x_test = test_states * scale
        recon, _ = forward(x_test)
        explained = 1 - float(((recon - x_test) ** 2).sum() / ((x_test - x_test.mean(0)) ** 2).sum())
    weights = {
        "W_enc": w_enc.detach(),
        "b_enc": b_enc.detach(),
        "b_dec": b_dec.detach(),  # in scaled units, as the project format applies it
        "W_dec": w_dec.detach(),
    }
    LOGGER.info("SAE: explained variance %.3f, dead latents %.3f", explained, 1 - float(fired.float().mean()))
    return weights, scale, explained


def train_sae_model(
    backbone: str | Path,
    layer: int,
    texts: Sequence[str],
    output_dir: str | Path,
    *,
    latents: int,
    k: int,
    steps: int,
    max_tokens: int = 200_000,
    batch_size: int = 1024,
    seed: int = 0,
    on_step: Callable[[int, float], None] | None = None,
) -> SaeTrainingResult:
    """Collect states, train the SAE, and write a model directory (``sae/`` + ``splare_config.json``)."""
    from splare_connect.encoding.config import EncoderConfig
    from splare_connect.encoding.sae import SaeConfig, SparseAutoencoder

    started = time.perf_counter()
    states = collect_states(backbone, layer, texts, max_tokens=max_tokens)
    weights, scale, explained = train_topk_sae(
        states, latents=latents, k=k, steps=steps, batch_size=batch_size, seed=seed, on_step=on_step
    )
    # The project format computes (x * s - b_dec) @ W_enc + b_enc: the trained b_dec
    # (scaled units) goes in as it is.
    sae = SparseAutoencoder(
        SaeConfig(
            d_in=states.shape[1],
            d_sae=latents,
            activation="topk",
            k=k,
            input_scale=scale,
            apply_b_dec_to_input=True,
            hook_layer=layer,
            source_format="splare-train-sae",
        ),
        W_enc=weights["W_enc"],
        b_enc=weights["b_enc"],
        b_dec=weights["b_dec"],
        W_dec=weights["W_dec"],
    )
    output = Path(output_dir)
    sae.save(output / "sae")
    EncoderConfig(
        name=f"{Path(str(backbone)).name}-sae{latents}-L{layer}",
        backbone=str(Path(backbone).resolve()) if Path(str(backbone)).exists() else str(backbone),
        sae="sae",
        layer=layer,
    ).save(output)
    with torch.no_grad():
        probe = states[: min(4096, states.shape[0])]
        fired = (sae.encode(probe) > 0).any(dim=0)
    return SaeTrainingResult(
        model_dir=output,
        tokens=int(states.shape[0]),
        steps=steps,
        explained_variance=explained,
        dead_fraction=1 - float(fired.float().mean()),
        seconds=time.perf_counter() - started,
    )
