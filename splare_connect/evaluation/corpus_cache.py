"""Encoded corpora cached on disk, keyed by corpus content and encoder fingerprint.

Encoding a corpus is the slow part of an evaluation; a re-run with the same encoder
and the same documents loads the vectors instead. Files are ``.npz`` read with
``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from splare_connect.sparse_vector import SparseVector

if TYPE_CHECKING:
    from splare_connect.encoding.encoder import SplareEncoder


@dataclass(frozen=True)
class EncodedCorpus:
    """Document vectors in corpus order, and how long encoding took (0 when cached)."""

    sparse: list[SparseVector]
    dense: npt.NDArray[np.float32] | None
    seconds: float
    from_cache: bool


def corpus_key(doc_ids: list[str], doc_texts: list[str], fingerprint_digest: str) -> str:
    digest = hashlib.sha256(fingerprint_digest.encode())
    for doc_id, text in zip(doc_ids, doc_texts, strict=True):
        digest.update(doc_id.encode("utf-8") + b"\0" + text.encode("utf-8") + b"\0")
    return digest.hexdigest()[:24]


def encode_corpus(
    encoder: SplareEncoder, doc_ids: list[str], doc_texts: list[str], cache_dir: Path | None, *, batch_size: int = 32
) -> EncodedCorpus:
    """Encode documents (sparse + dense when the model has one), or load them from the cache."""
    file = None
    if cache_dir is not None:
        # Keyed by the runtime and the arithmetic too: runtimes, and fp32 and bf16, share a
        # fingerprint digest, but an evaluation of one must not read the other's encodings.
        producer = encoder.fingerprint["digest"] + ("" if encoder.runtime == "torch" else f"-{encoder.runtime}")
        producer += "" if encoder.precision in ("fp32", "int8") else f"-{encoder.precision}"
        file = cache_dir / f"{corpus_key(doc_ids, doc_texts, producer)}.npz"
        if file.is_file():
            with np.load(file, allow_pickle=False) as stored:
                return EncodedCorpus(_unpack(stored, encoder.dim), stored.get("dense"), 0.0, True)
    start = time.perf_counter()
    result = encoder.encode(
        doc_texts, role="document", dense=encoder.has_dense, batch_size=batch_size, show_progress=None
    )
    seconds = time.perf_counter() - start
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        arrays = _pack(result.sparse)
        if result.dense is not None:
            arrays["dense"] = result.dense
        temporary = file.with_suffix(".tmp.npz")
        np.savez(temporary, **arrays)  # type: ignore[arg-type]  # numpy's stub reads **kwds as allow_pickle
        temporary.replace(file)
    return EncodedCorpus(result.sparse, result.dense, seconds, False)


def _pack(vectors: list[SparseVector]) -> dict[str, np.ndarray]:
    lengths = np.array([v.nnz for v in vectors], np.int64)
    return {
        "lengths": lengths,
        "indices": np.concatenate([v.indices for v in vectors]) if vectors else np.zeros(0, np.uint32),
        "values": np.concatenate([v.values for v in vectors]) if vectors else np.zeros(0, np.float32),
    }


def _unpack(stored: np.lib.npyio.NpzFile, dim: int) -> list[SparseVector]:
    offsets = np.concatenate([[0], np.cumsum(stored["lengths"])])
    indices, values = stored["indices"], stored["values"]
    return [SparseVector(indices[a:b], values[a:b], dim) for a, b in itertools.pairwise(offsets)]
