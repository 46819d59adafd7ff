"""Inference-free queries: words to SAE-latent weights through a static table.

A :class:`StaticQueryEncoder` encodes a query without a transformer. The query is
normalised (NFKC, lower case) and cut into words (``\\w+``); each word known to the
table has a row of latent weights, and a word it does not know (or a run of text
without spaces, as in Chinese or Japanese) falls back to the rows of its tokenizer
pieces. The query's vector is the max over its units' rows, kept to the ``query_top_k``
largest weights: the same pooling and pruning as the full encoder, over the same SAE
latents, so it scores against the same document vectors.

The table is learned from the full query encoder (see
:mod:`splare_connect.training.static_queries`); documents stay encoded by the full
encoder, whose fingerprint the table carries. This module needs only numpy and the
``tokenizers`` package (loaded on the first query with an unknown word), never torch.

Files: a directory with ``static_queries.safetensors`` (the table, its metadata in the
safetensors header) and ``tokenizer.json`` (the backbone's tokenizer, copied).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from splare_connect.encoding.inputs import validate_texts
from splare_connect.errors import CheckpointError, ConfigError
from splare_connect.sparse_vector import SparseVector

if TYPE_CHECKING:
    import tokenizers

__all__ = ["TABLE_FILE", "TOKENIZER_FILE", "StaticQueryEncoder", "is_unspaced", "normalize", "words"]

TABLE_FILE = "static_queries.safetensors"
TOKENIZER_FILE = "tokenizer.json"
FORMAT = "splare-static-queries/1"

_WORD = re.compile(r"\w+")


# Scripts written without spaces between words (Chinese, Japanese kana, Thai, Lao, Khmer,
# Myanmar): a ``\w+`` run there is a phrase, not a word, so it always goes to pieces.
_UNSPACED = re.compile(r"[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def is_unspaced(word: str) -> bool:
    """Whether ``word`` holds a character of a script written without spaces."""
    return _UNSPACED.search(word) is not None


def normalize(text: str) -> str:
    """The form words are looked up in: NFKC, then lower case."""
    return unicodedata.normalize("NFKC", text).lower()


def words(text: str) -> list[str]:
    """A text's units before fallback: its ``\\w+`` runs after :func:`normalize`."""
    return _WORD.findall(normalize(text))


class StaticQueryEncoder:
    """Query vectors from a static word/piece table, for documents of one full encoder.

    Args:
        vocabulary: Word -> row.
        piece_rows: Tokenizer piece id -> row (the fallback for unknown words).
        indptr: ``(rows + 1,)`` offsets of each row in ``indices``/``values``.
        indices: Latent ids of all rows, each row sorted, uint32.
        values: Their weights, float32, positive.
        dim: The SAE's number of latents.
        query_top_k: Weights kept per query.
        document_fingerprint: The fingerprint of the full encoder whose document
            vectors these queries score against.
        tokenizer: The backbone's tokenizer: a ``tokenizers.Tokenizer``, or the path of
            its ``tokenizer.json`` (read on the first unknown word); ``None`` disables
            the piece fallback (unknown words then add nothing).
        pieces_with_words: Pool every word's piece rows too, not only an unknown
            word's (the table must have been learned that way).

    Example:
        >>> encoder = StaticQueryEncoder.load("static-queries")   # doctest: +SKIP
        >>> [vector] = encoder.encode_queries(["list files"])      # doctest: +SKIP
        >>> vector.nnz <= encoder.query_top_k                       # doctest: +SKIP
        True
    """

    def __init__(
        self,
        vocabulary: Mapping[str, int],
        piece_rows: Mapping[int, int],
        indptr: npt.NDArray[np.int64],
        indices: npt.NDArray[np.uint32],
        values: npt.NDArray[np.float32],
        *,
        dim: int,
        query_top_k: int,
        document_fingerprint: Mapping[str, Any],
        tokenizer: tokenizers.Tokenizer | Path | None = None,
        pieces_with_words: bool = False,
    ) -> None:
        indptr = np.asarray(indptr, np.int64)
        indices = np.asarray(indices, np.uint32)
        values = np.asarray(values, np.float32)
        rows = len(indptr) - 1
        if rows < 0 or indptr[0] != 0 or indptr[-1] != len(indices) or len(indices) != len(values):
            raise CheckpointError("static query table: indptr, indices and values do not agree")
        if np.any(np.diff(indptr) < 0):
            raise CheckpointError("static query table: indptr must not decrease")
        if indices.size and int(indices.max()) >= dim:
            raise CheckpointError(f"static query table: latent {int(indices.max())} is outside dim {dim}")
        if values.size and not (np.isfinite(values).all() and (values > 0).all()):
            raise CheckpointError("static query table: weights must be finite and positive")
        for row in (*vocabulary.values(), *piece_rows.values()):
            if not 0 <= row < rows:
                raise CheckpointError(f"static query table: row {row} is outside the table's {rows} rows")
        if query_top_k <= 0:
            raise ConfigError(f"query_top_k must be positive, got {query_top_k}")
        if "digest" not in document_fingerprint:
            raise ConfigError("document_fingerprint needs the document encoder's 'digest'")
        self.vocabulary = dict(vocabulary)
        self.piece_rows = dict(piece_rows)
        self.indptr, self.indices, self.values = indptr, indices, values
        self.dim = dim
        self.query_top_k = query_top_k
        self.document_fingerprint = dict(document_fingerprint)
        self.pieces_with_words = pieces_with_words
        self._tokenizer_file = tokenizer if isinstance(tokenizer, Path) else None
        self._tokenizer = None if isinstance(tokenizer, Path) else tokenizer
        if self._tokenizer is not None:
            self._tokenizer.no_padding()
            self._tokenizer.no_truncation()
        self._lock = threading.Lock()
        self.table_digest = _table_digest(
            self.vocabulary, self.piece_rows, indptr, indices, values, query_top_k, pieces_with_words
        )

    # ------------------------------------------------------------ identity
    @property
    def fingerprint(self) -> dict[str, Any]:
        """The document encoder's fingerprint (its ``digest`` names the document space these
        queries target) plus ``query_side``: this table's kind and digest."""
        return {
            **self.document_fingerprint,
            "query_top_k": self.query_top_k,
            "query_side": {"kind": "static-table", "digest": self.table_digest},
        }

    @property
    def rows(self) -> int:
        """Rows in the table: words and pieces."""
        return len(self.indptr) - 1

    # ------------------------------------------------------------ encoding
    def encode_queries(self, texts: Sequence[str]) -> list[SparseVector]:
        """One sparse vector per query, pruned to ``query_top_k``; a text without a word
        encodes to an empty vector.

        Raises:
            BadInputError: ``texts`` is a string, or an item is not a valid ``str``.
        """
        return [self._encode(text) for text in validate_texts(texts)]

    def encode_query(self, text: str) -> SparseVector:
        """The sparse vector of one query."""
        return self.encode_queries([text])[0]

    def units(self, text: str) -> list[int]:
        """The table rows a text pools: its known words, then the pieces of the others (words
        of scripts without spaces are never in the vocabulary: they always go to pieces)."""
        found = words(text)
        if self.pieces_with_words and self.piece_rows and found:
            rows = []
            for word, pieces in zip(found, self.piece_ids(found), strict=True):
                if word in self.vocabulary:
                    rows.append(self.vocabulary[word])
                rows.extend(self.piece_rows[p] for p in pieces if p in self.piece_rows)
            return rows
        rows = []
        unknown: list[str] = []
        for word in found:
            row = self.vocabulary.get(word)
            if row is None:
                unknown.append(word)
            else:
                rows.append(row)
        if unknown and self.piece_rows:
            for pieces in self.piece_ids(unknown):
                rows.extend(self.piece_rows[p] for p in pieces if p in self.piece_rows)
        return rows

    def piece_ids(self, items: list[str]) -> list[list[int]]:
        """The tokenizer's piece ids of each word (no special tokens); empty lists without a tokenizer."""
        tokenizer = self._load_tokenizer()
        if tokenizer is None:
            return [[] for _ in items]
        return [encoding.ids for encoding in tokenizer.encode_batch(items, add_special_tokens=False)]

    def _encode(self, text: str) -> SparseVector:
        rows = self.units(text)
        if not rows:
            return SparseVector.empty(self.dim)
        indptr = self.indptr
        if len(rows) == 1:
            a, b = indptr[rows[0]], indptr[rows[0] + 1]
            latents, weights = self.indices[a:b], self.values[a:b]
        else:
            parts = [slice(indptr[r], indptr[r + 1]) for r in rows]
            all_latents = np.concatenate([self.indices[s] for s in parts])
            all_weights = np.concatenate([self.values[s] for s in parts])
            # Max per latent: sort by latent, then weight descending; keep each latent's first.
            order = np.lexsort((-all_weights, all_latents))
            all_latents, all_weights = all_latents[order], all_weights[order]
            first = np.ones(len(all_latents), np.bool_)
            first[1:] = all_latents[1:] != all_latents[:-1]
            latents, weights = all_latents[first], all_weights[first]
        if len(latents) > self.query_top_k:
            keep = np.sort(np.argpartition(-weights, self.query_top_k - 1)[: self.query_top_k])
            latents, weights = latents[keep], weights[keep]
        return SparseVector(latents, weights, self.dim)

    def _load_tokenizer(self) -> tokenizers.Tokenizer | None:
        if self._tokenizer is None and self._tokenizer_file is not None:
            with self._lock:
                if self._tokenizer is None:
                    import tokenizers

                    try:
                        tokenizer = tokenizers.Tokenizer.from_file(str(self._tokenizer_file))
                    except Exception as exc:  # the Rust loader raises plain Exception
                        raise CheckpointError(
                            f"cannot read tokenizer {self._tokenizer_file}: {str(exc).splitlines()[0][:200]}"
                        ) from None
                    tokenizer.no_padding()
                    tokenizer.no_truncation()
                    self._tokenizer = tokenizer
        return self._tokenizer

    # ------------------------------------------------------------ files
    def save(self, directory: str | Path) -> Path:
        """Write ``static_queries.safetensors`` (and the tokenizer, copied) into ``directory``."""
        from safetensors.numpy import save_file

        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        words_sorted = sorted(self.vocabulary, key=self.vocabulary.__getitem__)
        encoded = [w.encode("utf-8") for w in words_sorted]
        pieces = sorted(self.piece_rows, key=self.piece_rows.__getitem__)
        tensors: dict[str, np.ndarray] = {
            "word_bytes": np.frombuffer(b"".join(encoded), np.uint8).copy(),
            "word_offsets": np.concatenate([[0], np.cumsum([len(w) for w in encoded])]).astype(np.int64),
            "word_rows": np.array([self.vocabulary[w] for w in words_sorted], np.int64),
            "piece_ids": np.array(pieces, np.int64),
            "piece_rows": np.array([self.piece_rows[p] for p in pieces], np.int64),
            "indptr": self.indptr,
            "indices": self.indices.astype(np.int32),  # safetensors' numpy side has no uint32 on every version
            "values": self.values,
        }
        metadata = {
            "format": FORMAT,
            "dim": str(self.dim),
            "query_top_k": str(self.query_top_k),
            "pieces_with_words": str(self.pieces_with_words).lower(),
            "document_fingerprint": json.dumps(self.document_fingerprint, sort_keys=True),
            "table_digest": self.table_digest,
        }
        temporary = target / (TABLE_FILE + ".tmp")
        save_file(tensors, str(temporary), metadata=metadata)
        temporary.replace(target / TABLE_FILE)
        destination = target / TOKENIZER_FILE
        if self._tokenizer is not None:
            destination.write_text(self._tokenizer.to_str(), encoding="utf-8")
        elif self._tokenizer_file is not None and self._tokenizer_file.resolve() != destination.resolve():
            destination.write_bytes(self._tokenizer_file.read_bytes())
        return target

    @classmethod
    def load(cls, directory: str | Path) -> StaticQueryEncoder:
        """Read a table written by :meth:`save`.

        Raises:
            CheckpointError: The directory has no table, or the table is malformed.
        """
        from safetensors import safe_open

        source = Path(directory)
        file = source / TABLE_FILE
        if not file.is_file():
            raise CheckpointError(f"{source}: no static query table ({TABLE_FILE} is missing)")
        try:
            with safe_open(str(file), framework="numpy") as handle:
                metadata = handle.metadata() or {}
                tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
        except Exception as exc:  # safetensors raises its own error types for a damaged file
            raise CheckpointError(f"cannot read {file}: {str(exc).splitlines()[0][:200]}") from None
        if metadata.get("format") != FORMAT:
            raise CheckpointError(f"{file}: not a static query table of format {FORMAT!r}")
        blob, offsets = tensors["word_bytes"].tobytes(), tensors["word_offsets"]
        vocabulary = {
            blob[a:b].decode("utf-8"): int(row)
            for a, b, row in zip(offsets[:-1], offsets[1:], tensors["word_rows"], strict=True)
        }
        pieces = dict(zip(tensors["piece_ids"].tolist(), tensors["piece_rows"].tolist(), strict=True))
        tokenizer = source / TOKENIZER_FILE
        encoder = cls(
            vocabulary,
            pieces,
            tensors["indptr"],
            tensors["indices"].astype(np.uint32),
            tensors["values"],
            dim=int(metadata["dim"]),
            query_top_k=int(metadata["query_top_k"]),
            document_fingerprint=json.loads(metadata["document_fingerprint"]),
            tokenizer=tokenizer if tokenizer.is_file() else None,
            pieces_with_words=metadata.get("pieces_with_words") == "true",
        )
        if encoder.table_digest != metadata.get("table_digest"):
            raise CheckpointError(f"{file}: the table does not match its recorded digest (damaged or edited)")
        return encoder

    def __repr__(self) -> str:
        return (
            f"StaticQueryEncoder(words={len(self.vocabulary)}, pieces={len(self.piece_rows)}, "
            f"latents={self.dim}, query_top_k={self.query_top_k})"
        )


def _table_digest(
    vocabulary: Mapping[str, int],
    piece_rows: Mapping[int, int],
    indptr: np.ndarray,
    indices: np.ndarray,
    values: np.ndarray,
    query_top_k: int,
    pieces_with_words: bool,
) -> str:
    """32 hex digits over everything that changes a query's vector."""
    digest = hashlib.sha256(f"{FORMAT}\0{query_top_k}\0{pieces_with_words}\0".encode())
    for word in sorted(vocabulary):
        digest.update(word.encode("utf-8") + b"\0" + str(vocabulary[word]).encode() + b"\0")
    for piece in sorted(piece_rows):
        digest.update(f"{piece}:{piece_rows[piece]}\0".encode())
    for array, dtype in ((indptr, np.int64), (indices, np.uint32), (values, np.float32)):
        digest.update(np.ascontiguousarray(array, dtype).tobytes())
    return digest.hexdigest()[:32]
