"""From per-token SAE activations to one weight per latent feature, and pruning.

SPLARE / SAE-SPLADE pooling: ``w_j = max over content tokens of log(1 + relu(z_j))``.
Because ``log1p`` is monotonic, the max is taken over raw activations first and
``log1p`` applied once per document, which is cheaper and gives the same result.

Pruning keeps each text's ``top_k`` largest weights (:func:`top_k_weights`); inference
and fine-tuning both call it, so they prune the same way. Everything here except
:func:`prune_to_vectors` (which leaves torch) is differentiable.
"""

from __future__ import annotations

import torch

from splare_connect.encoding.pruning import prune_rows
from splare_connect.encoding.sae.model import SparseAutoencoder
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
        pre = sae.pre_activation(chunk).float()  # under bf16 autocast the product comes back in bf16
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


def token_latents(
    sae: SparseAutoencoder, states: torch.Tensor, content_mask: torch.Tensor, *, per_token: int = 32
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each content token's strongest SAE activations, before pooling: what a feature
    dictionary reads (which words make a feature fire).

    The same activations :func:`pool_latents` max-pools: a TopK SAE's ``k`` per token
    (``per_token`` is then ignored), or for other SAEs the ``per_token`` largest.

    Returns:
        ``(rows, columns, values, features)``: for each content token, its batch row and
        position, and ``(tokens, n)`` activation values (zero where fewer fired) with
        their feature ids.
    """
    rows, cols = content_mask.nonzero(as_tuple=True)
    values_parts, feature_parts = [], []
    tokens = states[rows, cols].float()
    for start in range(0, tokens.shape[0], SAE_TOKEN_CHUNK):
        pre = sae.pre_activation(tokens[start : start + SAE_TOKEN_CHUNK])
        if sae.config.activation == "topk":
            values, features = sae.topk(pre)
        else:
            values, features = torch.topk(sae.activate(pre), min(per_token, sae.d_sae), dim=-1)
        values_parts.append(values)
        feature_parts.append(features)
    if not values_parts:
        empty = torch.zeros(0, 1)
        return rows, cols, empty, empty.long()
    return rows, cols, torch.cat(values_parts), torch.cat(feature_parts)


def pool_latents_padded(sae: SparseAutoencoder, states: torch.Tensor, content_mask: torch.Tensor) -> torch.Tensor:
    """:func:`pool_latents` in a form a graph compiler can take: every token, masked.

    Same rule and same result (up to float rounding and the choice among exactly tied
    activations), but with no data-dependent shapes or Python loop: the SAE runs on
    every position of the padded batch and tokens outside ``content_mask`` contribute
    zero, which the max over non-negative activations ignores. It holds a
    ``(batch, seq, d_sae)`` buffer, so callers bound ``batch * seq`` (the OpenVINO
    runtime feeds it at most
    :data:`~splare_connect.encoding.openvino_graph.GRAPH_TOKEN_BUDGET` tokens per call).

    Args and returns: as :func:`pool_latents`; ``content_mask`` may be bool or integer.
    """
    pre = sae.pre_activation(states.float())
    keep = content_mask.unsqueeze(-1).to(pre.dtype)
    if sae.config.activation == "topk":
        values, features = sae.topk(pre)
        acts = torch.zeros_like(pre).scatter(-1, features, values * keep)
    else:
        acts = sae.activate(pre) * keep
    return torch.log1p(acts.amax(dim=1))


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


def top_k_weights(pooled: torch.Tensor, top_k: int | None) -> torch.Tensor:
    """Keep each row's ``top_k`` largest weights and zero the rest: the pruning rule.

    Inference (:func:`prune_to_vectors`) and fine-tuning both prune with this one
    function, so the student trains on exactly the vectors that will be stored and
    searched. It is differentiable: gradients flow to the kept weights, and the choice
    of which to keep is a hard selection (no gradient), as in SPLADE's top-k pruning.

    Args:
        pooled: ``(batch, d_sae)`` non-negative weights, from
            :meth:`~splare_connect.encoding.encoder.SplareEncoder.forward`.
        top_k: Weights kept per row; ``None`` (or ``top_k >= d_sae``) keeps them all.

    Returns:
        ``(batch, d_sae)``, same dtype and device; ``pooled`` itself when nothing is cut.
        A row with fewer than ``top_k`` positive weights keeps zeros in the remaining
        places, which add nothing to a dot product and which :func:`prune_to_vectors`
        drops.
    """
    if top_k is None or top_k >= pooled.shape[1]:
        return pooled
    values, indices = torch.topk(pooled, top_k, dim=1, sorted=False)
    return torch.zeros_like(pooled).scatter(1, indices, values)


def prune_to_vectors(pooled: torch.Tensor, top_k: int | None) -> list[SparseVector]:
    """Prune a torch batch of pooled weights to one SparseVector per row (see
    :func:`~splare_connect.encoding.pruning.prune_rows`, the rule's numpy form, which
    keeps the same weights as :func:`top_k_weights`)."""
    return prune_rows(pooled.detach().float().cpu().numpy(), top_k)
