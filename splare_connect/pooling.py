"""From per-token SAE activations to one weight per latent feature, and pruning.

SPLARE / SAE-SPLADE pooling: ``w_j = max over content tokens of log(1 + relu(z_j))``.
Because ``log1p`` is monotonic, the max is taken over raw activations first and
``log1p`` applied once per document, which is cheaper and gives the same result.
"""

from __future__ import annotations

import numpy as np
import torch

from splare_connect.sae.model import SparseAutoencoder
from splare_connect.sparse_vector import SparseVector

# Tokens per SAE matmul: bounds the (tokens x d_sae) activation buffer (~128 MB at 16k latents).
SAE_TOKEN_CHUNK = 2048


def pool_latents(sae: SparseAutoencoder, states: torch.Tensor, content_mask: torch.Tensor) -> torch.Tensor:
    """Max-pool SAE activations over each text's content tokens.

    Args:
        sae: The frozen SAE encoder.
        states: Residual states ``(batch, seq, d_in)``.
        content_mask: ``(batch, seq)`` bool, True for tokens that may add features
            (not padding, not special, not prefix tokens).

    Returns:
        ``(batch, d_sae)`` float32 weights ``log1p(max_t relu(z_t))``; rows of texts
        with no content token are all zero.
    """
    batch = states.shape[0]
    pooled = torch.zeros(batch, sae.d_sae, dtype=torch.float32, device=states.device)
    rows, cols = content_mask.nonzero(as_tuple=True)
    if rows.numel() == 0:
        return pooled
    tokens = states[rows, cols].float()
    for start in range(0, tokens.shape[0], SAE_TOKEN_CHUNK):
        chunk = tokens[start : start + SAE_TOKEN_CHUNK]
        doc_ids = rows[start : start + SAE_TOKEN_CHUNK]
        pre = sae.pre_activation(chunk)
        # Out of place: gradients must flow through every chunk when fine-tuning, and
        # copying the (batch, d_sae) buffer per chunk costs little.
        if sae.config.activation == "topk":
            values, features = sae.topk(pre)
            flat_ids = (doc_ids.unsqueeze(1) * sae.d_sae + features).reshape(-1)
            pooled = pooled.view(-1).scatter_reduce(0, flat_ids, values.reshape(-1), reduce="amax").view(batch, -1)
        else:
            acts = sae.activate(pre)
            pooled = pooled.scatter_reduce(0, doc_ids.unsqueeze(1).expand_as(acts), acts, reduce="amax")
    return torch.log1p(pooled)


def pool_dense(last_hidden: torch.Tensor, attention_mask: torch.Tensor, mode: str) -> torch.Tensor:
    """The model's dense embedding from the same pass, L2-normalised: ``(batch, hidden)``.

    ``mode`` is ``"cls"`` (first token) or ``"mean"`` (average over non-padding tokens,
    specials included, as e5 and sentence-transformers do). Differentiable, so the
    fine-tuning loss uses it as is.
    """
    if mode == "cls":
        pooled = last_hidden[:, 0].float()
    else:
        mask = attention_mask.unsqueeze(-1).to(last_hidden.dtype)
        pooled = ((last_hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)).float()
    return torch.nn.functional.normalize(pooled, dim=-1)


def prune_to_vectors(pooled: torch.Tensor, top_k: int | None) -> list[SparseVector]:
    """Keep each row's ``top_k`` largest positive weights and build SparseVectors.

    Args:
        pooled: ``(batch, d_sae)`` non-negative weights.
        top_k: Weights kept per row; ``None`` keeps every positive weight.
    """
    width = pooled.shape[1]
    if top_k is None or top_k >= width:
        return [_row_to_vector(row, width) for row in pooled.cpu().numpy()]
    values, indices = torch.topk(pooled, top_k, dim=1, sorted=False)
    values_np, indices_np = values.cpu().numpy(), indices.cpu().numpy()
    vectors = []
    for row_values, row_indices in zip(values_np, indices_np, strict=True):
        positive = row_values > 0
        order = np.argsort(row_indices[positive], kind="stable")
        vectors.append(SparseVector(row_indices[positive][order], row_values[positive][order], width))
    return vectors


def _row_to_vector(row: np.ndarray, width: int) -> SparseVector:
    nonzero = np.flatnonzero(row > 0)
    return SparseVector(nonzero, row[nonzero], width)
