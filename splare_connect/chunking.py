"""Split documents longer than the model window into overlapping chunks.

Each chunk is stored as its own point, named ``<doc id>#<index>``, and carries its
parent's id, so search can return chunks or whole documents. Chunks are cut at token
boundaries using the encoder's own tokenizer, so each fits the window exactly once
the prefix and special tokens are added.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from splare_connect.documents import Document
from splare_connect.errors import ConfigError

if TYPE_CHECKING:
    from splare_connect.encoding.encoder import SplareEncoder
    from splare_connect.encoding.tokenization import TextTokenizer


@dataclass(frozen=True)
class Chunk:
    """A piece of a document small enough to encode whole.

    Attributes:
        record_id: ``"<doc id>#<index>"``, the id the point is stored under.
        doc_id: The parent document's id.
        index: Position among the document's chunks (0-based).
        count: Number of chunks the document was cut into.
        text: The chunk's text.
        start: Character offset of the chunk in the document text.
    """

    record_id: str
    doc_id: str
    index: int
    count: int
    text: str
    start: int


def content_window(encoder: SplareEncoder) -> int:
    """Content tokens one encoder pass can see: the window minus the document prefix and special tokens."""
    tokenizer = encoder.tokenizer
    prefix_tokens = tokenizer.count_tokens(encoder.config.document_prefix, add_special_tokens=False)
    special_tokens = tokenizer.count_tokens("", add_special_tokens=True)
    return encoder.max_length - prefix_tokens - special_tokens


DEFAULT_OVERLAP = 64
"""Tokens consecutive windows share by default, so no sentence loses its context at an edge."""


def window_overlap(window: int, overlap: int = DEFAULT_OVERLAP) -> int:
    """``overlap`` capped at a quarter of the window, so each window still advances by most of itself."""
    return min(overlap, window // 4)


def chunk_record_id(doc_id: str, index: int) -> str:
    """The stored id of a document's ``index``-th chunk."""
    return f"{doc_id}#{index}"


def chunk_document(document: Document, tokenizer: TextTokenizer, max_tokens: int, overlap: int) -> list[Chunk]:
    """Cut a document into windows of at most ``max_tokens`` content tokens.

    Args:
        document: The document.
        tokenizer: The encoder's tokenizer.
        max_tokens: Content tokens per chunk (the window minus prefix and specials).
        overlap: Tokens shared by consecutive chunks, so no sentence loses its context.

    Returns:
        One chunk for a document that fits (or is empty); otherwise several.
    """
    if not 0 <= overlap < max_tokens:
        raise ConfigError(f"chunk overlap must be in [0, {max_tokens}), got {overlap}")
    offsets = tokenizer.encode_batch([document.text], add_special_tokens=False)[0].offsets
    if len(offsets) <= max_tokens:
        return [Chunk(chunk_record_id(document.id, 0), document.id, 0, 1, document.text, 0)]
    step = max_tokens - overlap
    starts = list(range(0, len(offsets) - overlap, step))
    pieces = []
    for index, first in enumerate(starts):
        last = min(first + max_tokens, len(offsets)) - 1
        begin, end = offsets[first][0], offsets[last][1]
        pieces.append((index, begin, document.text[begin:end]))
    return [
        Chunk(chunk_record_id(document.id, index), document.id, index, len(pieces), text, begin)
        for index, begin, text in pieces
    ]
