"""The pruning rule on numpy arrays: keep each row's ``top_k`` largest weights.

The same rule as :func:`splare_connect.encoding.pooling.top_k_weights` (which fine-tuning runs
in torch, with gradients), for the paths that never import torch: the compiled graph
and the inference-free query encoder.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from splare_connect.sparse_vector import SparseVector


def prune_rows(pooled: npt.NDArray[np.floating], top_k: int | None) -> list[SparseVector]:
    """One SparseVector per row, holding the row's ``top_k`` largest positive weights.

    Args:
        pooled: ``(batch, d_sae)`` non-negative weights.
        top_k: Weights kept per row; ``None`` (or ``top_k >= d_sae``) keeps every positive one.

    Returns:
        One vector per row, its kept positive weights in feature order (zeros are dropped,
        so a row with fewer than ``top_k`` positive weights keeps fewer).
    """
    pooled = np.asarray(pooled, np.float32)
    width = pooled.shape[1]
    if top_k is not None and top_k < width:
        kept = np.argpartition(-pooled, top_k - 1, axis=1)[:, :top_k]
        kept.sort(axis=1)
    else:
        kept = np.broadcast_to(np.arange(width), pooled.shape)
    vectors = []
    for row, columns in zip(pooled, kept, strict=True):
        values = row[columns]
        positive = values > 0
        vectors.append(SparseVector(columns[positive], values[positive], width))
    return vectors
