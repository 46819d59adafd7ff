"""Build a feature dictionary: run a corpus through the encoder and record, for every SAE
latent, the words it fires on, where it fires strongest, and how often.

Each text goes through the encoder as a document (same prefix, window and content tokens
as ingestion), and every content token's SAE activations are read before pooling
(:func:`~splare_connect.encoding.pooling.token_latents`). A token is credited to its whole word
(the run of letters and digits around it; for scripts written without spaces, the
token's own text), so labels are words a reader knows, not sub-word pieces.

The build checkpoints its state every minute or so; run again with the same
sources and model and it continues where it stopped (the checkpoint is removed once the
dictionary is written). Texts longer than the encoder's
window are cut, as the encoder cuts them.
"""

from __future__ import annotations

import functools
import gzip
import heapq
import json
import os
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from splare_connect.documents import read_source
from splare_connect.encoding.progress import progress
from splare_connect.errors import BadRecordError, ConfigError
from splare_connect.features.dictionary import (
    FeatureDictionary,
    FeatureEntry,
    WordEvidence,
    label_feature,
    normalize_word,
)

if TYPE_CHECKING:
    from splare_connect.encoding.encoder import SplareEncoder

STATE_FILE = "build-state.json.gz"

# What each latent keeps while building: a bounded number of words and examples.
_WORDS_KEPT = 12
_WORDS_HELD = 256  # pruned back to _WORDS_PRUNED when a latent holds more
_WORDS_PRUNED = 64
_EXAMPLES_KEPT = 3
_SNIPPET_CONTEXT = 50  # characters each side of the word in an example

# A latent that fired on fewer labelling texts than this is "rare": too little to name it.
MIN_TEXTS = 3


@dataclass(frozen=True)
class LabellingText:
    """One text of a labelling corpus, with its language (``und`` when not known)."""

    text: str
    language: str = "und"


def read_labelling_sources(paths: Sequence[Path], *, per_source: int | None = None) -> Iterator[LabellingText]:
    """Texts from JSONL files or directories of text files, in order.

    A record's language is its ``lang`` or ``language`` field. Bad records are skipped
    (the builder is not a sync: nothing is stored from them), and at most ``per_source``
    texts are taken from each source.
    """
    for path in paths:
        taken = 0
        for item in read_source(path):
            if isinstance(item, BadRecordError):
                continue
            if per_source is not None and taken >= per_source:
                break
            language = item.metadata.get("lang") or item.metadata.get("language") or "und"
            yield LabellingText(item.text, str(language))
            taken += 1


class _Stats:
    """Per-latent evidence gathered so far (plain lists and dicts, so it saves as JSON)."""

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        state = state or {}
        self.texts_done: int = int(state.get("texts_done", 0))
        # feature -> word -> [strongest activation, count, total, {language: count}]
        self.words: dict[int, dict[str, list[Any]]] = {
            int(f): dict(words) for f, words in state.get("words", {}).items()
        }
        # feature -> [[activation, snippet], ...], a min-heap of the strongest
        self.examples: dict[int, list[list[Any]]] = {int(f): ex for f, ex in state.get("examples", {}).items()}
        self.texts_fired: dict[int, int] = {int(f): int(n) for f, n in state.get("texts_fired", {}).items()}
        # language -> content tokens read: how much text each language had to fire on
        self.language_tokens: dict[str, int] = dict(state.get("language_tokens", {}))

    def to_json(self) -> dict[str, Any]:
        return {
            "texts_done": self.texts_done,
            "words": {str(f): w for f, w in self.words.items()},
            "examples": {str(f): e for f, e in self.examples.items()},
            "texts_fired": {str(f): n for f, n in self.texts_fired.items()},
            "language_tokens": self.language_tokens,
        }

    def add(self, feature: int, activation: float, word: str, language: str, snippet: Callable[[], str]) -> None:
        words = self.words.setdefault(feature, {})
        record = words.get(word)
        if record is None:
            words[word] = [activation, 1, activation, {language: 1}]
            if len(words) > _WORDS_HELD:
                kept = heapq.nlargest(_WORDS_PRUNED, words.items(), key=lambda item: item[1][2])
                self.words[feature] = dict(kept)
        else:
            record[0] = max(record[0], activation)
            record[1] += 1
            record[2] += activation
            record[3][language] = record[3].get(language, 0) + 1
        examples = self.examples.setdefault(feature, [])
        if len(examples) < _EXAMPLES_KEPT:
            heapq.heappush(examples, [activation, snippet()])
        elif activation > examples[0][0]:
            heapq.heapreplace(examples, [activation, snippet()])


def build_dictionary(
    encoder: SplareEncoder,
    texts: Iterable[LabellingText],
    output: Path,
    *,
    sources: Sequence[str] = (),
    source_state: Sequence[Any] = (),
    total: int | None = None,
    batch_size: int = 16,
    max_tokens: int | None = None,
    checkpoint_every: int = 256,
    checkpoint_seconds: float = 60.0,
    show_progress: bool | None = None,
) -> FeatureDictionary:
    """Label every latent of ``encoder`` from ``texts`` and write the dictionary to ``output``.

    Args:
        encoder: The encoder to describe (its torch model runs; any runtime loads it).
        texts: The labelling corpus, in a fixed order (a resumed build skips the texts
            a previous run finished, by position).
        output: Directory for the dictionary and the build's checkpoint.
        sources: What the corpus is (e.g. file names): stored in the dictionary, and a
            resumed build must name the same.
        source_state: Anything else that decides which texts come in which order (file
            sizes and times, a per-source cap): a resumed build must give the same, since
            it skips the texts a previous run finished by position.
        total: Number of texts, for the progress bar.
        batch_size: Texts per forward pass.
        max_tokens: Read at most this many tokens of each text (the encoder's window
            when ``None``): the start of a long document names its features as well as
            the whole, for a fraction of the time.
        checkpoint_every: Texts labelled between checkpoint opportunities.
        checkpoint_seconds: Least time between two checkpoints (the state of a large
            model is tens of megabytes; writing it after every few hundred short texts
            would cost more than the labelling).
        show_progress: As :meth:`SplareEncoder.encode`.

    Returns:
        The dictionary, also saved as ``output/feature_dictionary.json.gz``.
    """
    if checkpoint_every < 1:
        raise ConfigError(f"checkpoint_every must be at least 1, got {checkpoint_every}")
    identity = {
        "digest": encoder.fingerprint["digest"],
        "sources": list(sources),
        "source_state": json.loads(json.dumps(list(source_state), default=str)),
        "max_tokens": max_tokens,
    }
    stats = _Stats(_read_state(output, identity))
    pending: list[LabellingText] = []
    last_checkpoint = time.monotonic()
    with progress(total or 0, show_progress if total else False, batch_size) as advance:
        advance(stats.texts_done)
        for position, item in enumerate(texts):
            if position < stats.texts_done:
                continue
            pending.append(item)
            if len(pending) == checkpoint_every:
                _label_texts(encoder, pending, stats, batch_size, max_tokens)
                advance(len(pending))
                pending = []
                if time.monotonic() - last_checkpoint >= checkpoint_seconds:
                    _write_state(output, identity, stats)
                    last_checkpoint = time.monotonic()
        if pending:
            _label_texts(encoder, pending, stats, batch_size, max_tokens)
            advance(len(pending))
    dictionary = _finish(encoder, stats, list(sources))
    dictionary.save(output)
    (output / STATE_FILE).unlink(missing_ok=True)  # done: a new build starts afresh
    return dictionary


def _label_texts(
    encoder: SplareEncoder, items: list[LabellingText], stats: _Stats, batch_size: int, max_tokens: int | None
) -> None:
    """Add the evidence of ``items`` to ``stats``."""
    import torch

    from splare_connect.encoding.pooling import token_latents

    prefix = encoder.config.document_prefix
    texts = [item.text for item in items]
    window = encoder.max_length if max_tokens is None else min(encoder.max_length, max_tokens)
    with encoder.lock, torch.inference_mode():
        for batch in encoder.iter_batches(texts, role="document", batch_size=batch_size, max_length=window):
            states, _ = encoder.reader(batch.input_ids, batch.attention_mask)
            rows, cols, values, features = token_latents(encoder.sae, states, batch.content_mask)
            encodings = encoder.tokenizer.encode_batch([prefix + texts[p] for p in batch.positions], max_length=window)
            fired: dict[int, set[int]] = {}
            for row, col, token_values, token_features in zip(
                rows.tolist(), cols.tolist(), values.tolist(), features.tolist(), strict=True
            ):
                text = texts[batch.positions[row]]
                language = items[batch.positions[row]].language
                stats.language_tokens[language] = stats.language_tokens.get(language, 0) + 1
                start, end = encodings[row].offsets[col]
                span = _word_span(text, start - len(prefix), end - len(prefix))
                if span is None:
                    continue
                word = normalize_word(text[span[0] : span[1]])
                snippet = functools.partial(_snippet, text, *span)  # made only if kept
                for value, feature in zip(token_values, token_features, strict=True):
                    if value <= 0:
                        continue
                    fired.setdefault(feature, set()).add(row)
                    stats.add(feature, value, word, language, snippet)
            for feature, text_rows in fired.items():
                stats.texts_fired[feature] = stats.texts_fired.get(feature, 0) + len(text_rows)
    stats.texts_done += len(items)


def _word_span(text: str, start: int, end: int) -> tuple[int, int] | None:
    """The whole word a token covers: the run of word characters around ``[start, end)``.

    For scripts written without spaces (CJK), where such a run is a whole phrase, the
    token's own text. ``None`` for a token of punctuation or blanks only.
    """
    start, end = max(0, start), min(len(text), end)
    while start < end and not _is_word_char(text[start]):
        start += 1
    while end > start and not _is_word_char(text[end - 1]):
        end -= 1
    if start >= end:
        return None
    if any(_unspaced_script(char) for char in text[start:end]):
        return start, end
    while start > 0 and _is_word_char(text[start - 1]) and not _unspaced_script(text[start - 1]):
        start -= 1
    while end < len(text) and _is_word_char(text[end]) and not _unspaced_script(text[end]):
        end += 1
    return start, end


def _is_word_char(char: str) -> bool:
    """Letters, digits, ``_`` and combining marks (Devanagari vowel signs, decomposed accents)."""
    return char.isalnum() or char == "_" or unicodedata.category(char).startswith("M")


def _unspaced_script(char: str) -> bool:
    """Han, kana, Hangul syllables and Thai: scripts whose words are not space-separated."""
    code = ord(char)
    return (
        0x3040 <= code <= 0x30FF  # Hiragana, Katakana
        or 0x3400 <= code <= 0x9FFF  # CJK ideographs (extension A and unified)
        or 0xAC00 <= code <= 0xD7AF  # Hangul syllables
        or 0x0E00 <= code <= 0x0E7F  # Thai
        or 0xF900 <= code <= 0xFAFF  # CJK compatibility ideographs
    )


def _snippet(text: str, start: int, end: int) -> str:
    """The word in brackets with some context either side, on one line."""
    before = text[max(0, start - _SNIPPET_CONTEXT) : start]
    after = text[end : end + _SNIPPET_CONTEXT]
    lead = "…" if start > _SNIPPET_CONTEXT else ""
    tail = "…" if end + _SNIPPET_CONTEXT < len(text) else ""
    return " ".join(f"{lead}{before}[{text[start:end]}]{after}{tail}".split())


def _finish(encoder: SplareEncoder, stats: _Stats, sources: list[str]) -> FeatureDictionary:
    entries = {}
    for feature, fired in stats.texts_fired.items():
        words = sorted(stats.words.get(feature, {}).items(), key=lambda item: -item[1][2])[:_WORDS_KEPT]
        evidence = tuple(
            WordEvidence(
                word=word,
                languages=tuple(lang for lang, _ in sorted(langs.items(), key=lambda item: -item[1])),
                activation=round(float(strongest), 4),  # as stored: a loaded dictionary equals a built one
                count=int(count),
                total=round(float(total), 4),
            )
            for word, (strongest, count, total, langs) in words
        )
        label, status = label_feature(
            evidence, texts_fired=fired, min_texts=MIN_TEXTS, language_tokens=stats.language_tokens
        )
        examples = tuple(snippet for _, snippet in sorted(stats.examples.get(feature, []), reverse=True))
        entries[feature] = FeatureEntry(
            feature=feature,
            label=label,
            status=status,
            words=evidence,
            examples=examples,
            document_frequency=round(fired / max(stats.texts_done, 1), 6),
        )
    return FeatureDictionary(
        digest=encoder.fingerprint["digest"],
        model=encoder.config.name,
        width=encoder.dim,
        texts=stats.texts_done,
        sources=sources,
        entries=entries,
    )


def _read_state(output: Path, identity: dict[str, Any]) -> dict[str, Any] | None:
    """A previous build's checkpoint, when it was of the same model and sources."""
    file = output / STATE_FILE
    if not file.is_file():
        return None
    try:
        with gzip.open(file, "rt", encoding="utf-8") as handle:
            state = json.load(handle)
    except (OSError, EOFError, ValueError):
        return None  # a damaged checkpoint: start over
    if not isinstance(state, dict) or state.get("identity") != identity:
        raise ConfigError(
            f"{file} is the checkpoint of a build with another model or other sources; "
            "remove it, or use another output directory"
        )
    return state.get("stats")


def _write_state(output: Path, identity: dict[str, Any], stats: _Stats) -> None:
    output.mkdir(parents=True, exist_ok=True)
    file = output / STATE_FILE
    staging = file.with_name(f".{file.name}.partial")
    with gzip.open(staging, "wt", encoding="utf-8", compresslevel=1) as out:
        json.dump({"identity": identity, "stats": stats.to_json()}, out, ensure_ascii=False)
    os.replace(staging, file)
