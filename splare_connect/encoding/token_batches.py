"""Texts to forward-pass batches: tokenize, bucket by length, pad, and mark content tokens.

Texts are tokenized a few hundred at a time and sorted by length within each group, so
batches carry little padding while memory stays bounded. Each batch carries the mask of
the tokens that may add features (not padding, not specials unless asked, not the
prefix's own tokens unless asked, none of a blank text), which pooling reads.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import tokenizers
    import torch

    from splare_connect.encoding.tokenization import TextTokenizer

# Texts tokenized together before being sorted by length into batches: bounds memory
# while keeping padding low (length-bucketed batches).
TOKENIZE_CHUNK_BATCHES = 16

# Unicode categories that print nothing besides whitespace: control (Cc) and format (Cf:
# zero-width space, BOM, bidi marks, soft hyphen). A text made only of these is blank.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf"})


@dataclass(frozen=True)
class EncoderBatch:
    """One padded forward-pass batch; ``positions`` index the caller's text list.

    The arrays are torch tensors on the encoder's device when torch runs the model, and
    numpy arrays when a compiled graph does (that path never imports torch).

    Attributes:
        positions: Index in the caller's list of each row's text.
        input_ids: ``(batch, seq)`` int64 token ids, padded with the pad token.
        attention_mask: ``(batch, seq)`` int64, 1 for real tokens (specials included).
        content_mask: ``(batch, seq)`` bool, True for tokens that may add features.
        truncated: Per row, whether the text was longer than the window and cut.
    """

    positions: list[int]
    input_ids: Any
    attention_mask: Any
    content_mask: Any
    truncated: list[bool]


def iter_batches(
    tokenizer: TextTokenizer,
    texts: list[str],
    *,
    prefix: str,
    max_length: int,
    batch_size: int,
    pool_prefix_tokens: bool,
    pool_special_tokens: bool,
    device: torch.device | None,
) -> Iterator[EncoderBatch]:
    """Tokenize ``texts`` into padded, length-bucketed batches on ``device``.

    Args:
        tokenizer: The backbone's tokenizer; its pad token fills the padding (masked out,
            so any id works).
        texts: Validated texts, without prefix.
        prefix: Prepended to every text (the role's prefix, e.g. ``"query: "``).
        max_length: Tokens per text, specials included; longer texts are cut.
        batch_size: Texts per batch.
        pool_prefix_tokens: Let the prefix's own tokens add features.
        pool_special_tokens: Let special tokens (CLS, SEP, BOS...) add features.
        device: Where the batch tensors go; ``None`` keeps numpy arrays (no torch).

    Yields:
        Batches covering every text exactly once, in length order within each group of
        ``batch_size * TOKENIZE_CHUNK_BATCHES`` texts.
    """
    prefix_chars = 0 if pool_prefix_tokens else len(prefix.rstrip())
    chunk_size = batch_size * TOKENIZE_CHUNK_BATCHES
    for chunk_start in range(0, len(texts), chunk_size):
        originals = texts[chunk_start : chunk_start + chunk_size]
        chunk = [prefix + text for text in originals]
        has_text = [has_visible_text(text) for text in originals]
        encoded = tokenizer.encode_batch(chunk, max_length=max_length)
        by_length = sorted(range(len(chunk)), key=lambda i: len(encoded[i].ids))
        for start in range(0, len(by_length), batch_size):
            members = by_length[start : start + batch_size]
            yield _make_batch(
                encoded,
                chunk,
                has_text,
                members,
                positions=[chunk_start + i for i in members],
                prefix_chars=prefix_chars,
                pad_token_id=tokenizer.pad_token_id,
                pool_special_tokens=pool_special_tokens,
                device=device,
            )


def _make_batch(
    encoded: list[tokenizers.Encoding],
    chunk: list[str],
    has_text: list[bool],
    members: list[int],
    *,
    positions: list[int],
    prefix_chars: int,
    pad_token_id: int,
    pool_special_tokens: bool,
    device: torch.device | None,
) -> EncoderBatch:
    """Pad the ``members`` of one tokenized chunk into a batch and mark their content tokens."""
    width = max(len(encoded[i].ids) for i in members)
    input_ids = np.full((len(members), width), pad_token_id, np.int64)
    attention = np.zeros((len(members), width), np.int64)
    content = np.zeros((len(members), width), np.bool_)
    truncated = []
    for row, i in enumerate(members):
        ids = encoded[i].ids
        special = np.asarray(encoded[i].special_tokens_mask, np.bool_)
        offsets = np.asarray(encoded[i].offsets, np.int64).reshape(-1, 2)
        input_ids[row, : len(ids)] = ids
        attention[row, : len(ids)] = 1
        content[row, : len(ids)] = content_tokens(
            special, offsets, prefix_chars, pool_special_tokens=pool_special_tokens, has_text=has_text[i]
        )
        text_end = len(chunk[i].rstrip())
        real_ends = offsets[~special, 1]
        truncated.append(bool(real_ends.size) and int(real_ends.max()) < text_end)
    if device is None:
        return EncoderBatch(positions, input_ids, attention, content, truncated)
    import torch

    return EncoderBatch(
        positions=positions,
        input_ids=torch.from_numpy(input_ids).to(device),
        attention_mask=torch.from_numpy(attention).to(device),
        content_mask=torch.from_numpy(content).to(device),
        truncated=truncated,
    )


def has_visible_text(text: str) -> bool:
    """Whether ``text`` has a character that prints: not whitespace, control or format.

    SentencePiece tokenizers turn a blank text into a word-boundary token (``"▁"``, over
    the prefix's trailing space or over the blanks), and that one token has k SAE
    latents (32 for the default model's TopK SAE): the "empty" vector would match every
    query. ``str.strip`` skips leading and trailing whitespace in C, so for ordinary
    text this looks at one character.
    """
    return any(not (char.isspace() or unicodedata.category(char) in _INVISIBLE_CATEGORIES) for char in text.strip())


def content_tokens(
    special: npt.NDArray[np.bool_],
    offsets: npt.NDArray[np.int64],
    prefix_chars: int,
    *,
    pool_special_tokens: bool,
    has_text: bool,
) -> npt.NDArray[np.bool_]:
    """Which tokens of one text may add features.

    Tokens from the end of the prefix's last visible character on (the prefix's own
    tokens only with ``prefix_chars=0``), specials only if ``pool_special_tokens``; and
    none at all when the text is blank, whatever the tokenizer made of it. Whitespace
    tokens inside or after real text keep counting: excluding them too would change
    ordinary vectors (a trailing ``"▁"``; the ``"▁"`` before CJK words), and so every
    fingerprint and stored collection.
    """
    if not has_text:
        return np.zeros(len(special), np.bool_)
    after_prefix = offsets[:, 0] >= prefix_chars
    return after_prefix if pool_special_tokens else ~special & after_prefix
