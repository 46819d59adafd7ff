"""The one sparse-vector type that every encoder produces and every adapter consumes.

A :class:`SparseVector` is always valid: indices are unique, sorted, unsigned 32-bit;
values are finite, positive float32. Vector databases disagree on what they accept
(Qdrant Edge silently mis-scores duplicate indices and stores NaN), so the invariants
are enforced once, here, and adapters only convert.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from splare_connect.errors import BadInputError, ConfigError

_UINT32_LIMIT = 2**32


def _as_array(items: Iterable[float] | npt.ArrayLike) -> np.ndarray:
    """Arrays and sequences as they are; other iterables (generators) materialised first."""
    if isinstance(items, (np.ndarray, list, tuple)):
        return np.asarray(items)
    return np.asarray(list(items))  # type: ignore[arg-type]


@dataclass(frozen=True, eq=False)
class SparseVector:
    """A validated sparse vector over latent features.

    Args:
        indices: Feature ids, strictly increasing, each in ``[0, 2**32)`` (and below
            ``dim`` when ``dim`` is given).
        values: Weights, one per index, finite and ``> 0``.
        dim: Width of the feature space (the SAE's number of latents), if known.

    Raises:
        BadInputError: If any invariant is broken; the message says which entry.

    Example:
        >>> v = SparseVector.from_pairs({7: 0.5, 3: 1.25}, dim=16)
        >>> v.indices.tolist(), v.values.tolist()
        ([3, 7], [1.25, 0.5])
    """

    indices: npt.NDArray[np.uint32]
    values: npt.NDArray[np.float32]
    dim: int | None = None

    def __post_init__(self) -> None:
        indices = np.asarray(self.indices)
        values = np.asarray(self.values)
        if indices.ndim != 1 or values.ndim != 1:
            raise BadInputError(f"indices and values must be 1-D, got shapes {indices.shape} and {values.shape}")
        if indices.shape[0] != values.shape[0]:
            raise BadInputError(f"indices and values differ in length: {indices.shape[0]} != {values.shape[0]}")
        if indices.size and not np.issubdtype(indices.dtype, np.integer):
            raise BadInputError(f"indices must be integers, got dtype {indices.dtype}")
        if indices.size:
            low, high = int(indices.min()), int(indices.max())
            if low < 0 or high >= _UINT32_LIMIT:
                bad = low if low < 0 else high
                raise BadInputError(f"index {bad} is outside the uint32 range [0, 2**32)")
            if self.dim is not None and high >= self.dim:
                raise BadInputError(f"index {high} is outside the vector's dimension {self.dim}")
            steps = np.diff(indices.astype(np.int64))
            if steps.size and steps.min() <= 0:
                position = int(np.argmax(steps <= 0))
                raise BadInputError(
                    "indices must be strictly increasing (sorted, no duplicates); "
                    f"entry {position + 1} ({int(indices[position + 1])}) follows {int(indices[position])}"
                )
        values32 = values.astype(np.float32, copy=False)
        if values32.size:
            finite_positive = np.isfinite(values32) & (values32 > 0)
            if not finite_positive.all():
                position = int(np.argmin(finite_positive))
                raise BadInputError(
                    f"values must be finite and > 0; entry {position} "
                    f"(index {int(indices[position])}) is {float(values[position])!r}"
                )
        if self.dim is not None and self.dim <= 0:
            raise BadInputError(f"dim must be positive, got {self.dim}")
        frozen_indices = indices.astype(np.uint32, copy=True)
        frozen_values = values32.copy()
        frozen_indices.flags.writeable = False
        frozen_values.flags.writeable = False
        object.__setattr__(self, "indices", frozen_indices)
        object.__setattr__(self, "values", frozen_values)

    @classmethod
    def empty(cls, dim: int | None = None) -> SparseVector:
        """A vector with no non-zero entry (the encoding of an empty text)."""
        return cls(np.zeros(0, np.uint32), np.zeros(0, np.float32), dim)

    @classmethod
    def from_pairs(cls, pairs: Mapping[int, float], dim: int | None = None) -> SparseVector:
        """Build from a ``{index: value}`` mapping (any order)."""
        if not pairs:
            return cls.empty(dim)
        indices = np.fromiter(pairs.keys(), dtype=np.int64, count=len(pairs))
        values = np.fromiter(pairs.values(), dtype=np.float64, count=len(pairs))
        order = np.argsort(indices, kind="stable")
        return cls(indices[order].astype(np.uint32), values[order].astype(np.float32), dim)

    @classmethod
    def clean(
        cls,
        indices: Iterable[int] | npt.ArrayLike,
        values: Iterable[float] | npt.ArrayLike,
        dim: int | None = None,
        *,
        duplicates: Literal["max", "sum", "error"] = "max",
    ) -> SparseVector:
        """Build from untrusted input: sort, merge duplicates, drop zero weights.

        Non-finite or negative weights and out-of-range indices still raise, because
        they mean the producer is broken, not that the vector needs tidying.

        Args:
            indices: Feature ids in any order, possibly repeated.
            values: One weight per id.
            dim: Width of the feature space, if known.
            duplicates: How repeated ids combine: ``"max"`` (the pooling rule of
                SPLADE-style encoders), ``"sum"``, or ``"error"`` to refuse them.

        Raises:
            BadInputError: Lengths differ, a weight is NaN/infinite/negative, an id is out
                of range, or ``duplicates="error"`` and an id repeats.
        """
        index_array = _as_array(indices)
        value_array = _as_array(values).astype(np.float64)
        if index_array.ndim != 1 or value_array.ndim != 1:
            raise BadInputError("indices and values must be 1-D sequences")
        if index_array.shape[0] != value_array.shape[0]:
            raise BadInputError(
                f"indices and values differ in length: {index_array.shape[0]} != {value_array.shape[0]}"
            )
        if index_array.size == 0:
            return cls.empty(dim)
        if not np.issubdtype(index_array.dtype, np.integer):
            rounded = index_array.astype(np.float64)
            if not np.all(np.isfinite(rounded)) or not np.all(rounded == np.round(rounded)):
                raise BadInputError("indices must be whole numbers")
            index_array = rounded.astype(np.int64)
        index_array = index_array.astype(np.int64)
        bad_value = ~np.isfinite(value_array) | (value_array < 0)
        if bad_value.any():
            position = int(np.argmax(bad_value))
            raise BadInputError(
                f"weight for index {int(index_array[position])} is {float(value_array[position])!r}; "
                "weights must be finite and >= 0"
            )
        keep = value_array > 0
        index_array, value_array = index_array[keep], value_array[keep]
        unique, inverse = np.unique(index_array, return_inverse=True)
        if unique.size != index_array.size:
            if duplicates == "error":
                counts = np.bincount(inverse)
                raise BadInputError(f"index {int(unique[np.argmax(counts > 1)])} appears more than once")
            merged = np.zeros(unique.size, dtype=np.float64)
            if duplicates == "sum":
                np.add.at(merged, inverse, value_array)
            else:
                np.maximum.at(merged, inverse, value_array)
            value_array = merged
        else:
            order = np.argsort(index_array, kind="stable")
            value_array = value_array[order]
        return cls(unique, value_array.astype(np.float32), dim)

    @property
    def nnz(self) -> int:
        """Number of non-zero entries."""
        return int(self.indices.shape[0])

    def top_k(self, k: int | None) -> SparseVector:
        """Keep the ``k`` largest weights (ties broken by lower index); ``None`` keeps all."""
        if k is None or k >= self.nnz:
            return self
        if k < 0:
            raise ConfigError(f"k must be >= 0 or None, got {k}")
        # lexsort: primary key -value (descending), secondary key index (ascending).
        keep = np.lexsort((self.indices, -self.values))[:k]
        keep.sort()
        return SparseVector(self.indices[keep], self.values[keep], self.dim)

    def dot(self, other: SparseVector) -> float:
        """Inner product with another sparse vector (the score an inverted index computes)."""
        _, mine, theirs = np.intersect1d(self.indices, other.indices, assume_unique=True, return_indices=True)
        return float(np.dot(self.values[mine].astype(np.float64), other.values[theirs]))

    def contributions(self, other: SparseVector) -> list[tuple[int, float]]:
        """Per-feature terms of :meth:`dot`, largest first: why a document matched a query."""
        shared, mine, theirs = np.intersect1d(self.indices, other.indices, assume_unique=True, return_indices=True)
        terms = self.values[mine].astype(np.float64) * other.values[theirs]
        order = np.argsort(-terms, kind="stable")
        return [(int(shared[i]), float(terms[i])) for i in order]

    def to_dict(self) -> dict[int, float]:
        """``{index: value}`` with Python scalars (JSON-friendly after key conversion)."""
        return dict(zip(self.indices.tolist(), self.values.tolist(), strict=True))

    def to_dense(self, dim: int | None = None) -> npt.NDArray[np.float32]:
        """A dense float32 array of width ``dim`` (default: the vector's own ``dim``)."""
        width = dim if dim is not None else self.dim
        if width is None:
            raise ConfigError("to_dense needs a dim: the vector has none")
        dense = np.zeros(width, dtype=np.float32)
        dense[self.indices] = self.values
        return dense

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SparseVector):
            return NotImplemented
        return (
            self.dim == other.dim
            and np.array_equal(self.indices, other.indices)
            and np.array_equal(self.values, other.values)
        )

    def __hash__(self) -> int:
        return hash((self.dim, self.indices.tobytes(), self.values.tobytes()))

    def __len__(self) -> int:
        return self.nnz

    def __repr__(self) -> str:
        head = ", ".join(
            f"{i}: {v:.3g}" for i, v in zip(self.indices[:4].tolist(), self.values[:4].tolist(), strict=True)
        )
        more = ", ..." if self.nnz > 4 else ""
        return f"SparseVector(nnz={self.nnz}, dim={self.dim}, {{{head}{more}}})"
