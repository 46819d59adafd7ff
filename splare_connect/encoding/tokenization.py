"""The backbone's tokenizer as the encoder uses it: a ``tokenizers`` tokenizer and its facts.

Why not the transformers tokenizer object: the encoder needs only what the Rust
``tokenizers`` backend computes (ids, offsets, special-token masks), and importing
transformers costs about 2.4 s of every cold start. A model whose tokenizer is the plain
``tokenizer.json`` kind (``tokenizer_class`` ``TokenizersBackend`` or
``PreTrainedTokenizerFast``, no settings that transformers would apply on top) is read
directly; any other goes through ``AutoTokenizer`` and its backend is used. Both give the
same backend, so the same tokens and the same fingerprint.

The backend keeps its truncation setting between calls; :class:`TextTokenizer` sets it
on every call under its own lock, so threads sharing one tokenizer never see each
other's window.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from splare_connect.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    import tokenizers
    from transformers import PreTrainedTokenizerBase

# tokenizer_config.json classes that add nothing to tokenizer.json.
_PLAIN_CLASSES = frozenset({"TokenizersBackend", "PreTrainedTokenizerFast"})

# tokenizer_config.json keys a direct read understands. Any other key (added tokens,
# prefix-space or lower-casing flags, remote code) may change what transformers builds,
# so such a tokenizer is loaded through transformers instead.
_PLAIN_KEYS = frozenset(
    {
        "backend",
        "tokenizer_class",
        "model_max_length",
        "bos_token",
        "eos_token",
        "unk_token",
        "sep_token",
        "pad_token",
        "cls_token",
        "mask_token",
        "clean_up_tokenization_spaces",  # decoding only
        "model_input_names",
    }
)

_SPECIAL_TOKEN_KEYS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")

# transformers' stand-in for "no limit" in model_max_length.
_NO_LIMIT = 1_000_000


class TextTokenizer:
    """A fast tokenizer's backend with the facts the encoder needs from its config.

    Args:
        backend: The ``tokenizers.Tokenizer``.
        pad_token_id: Id that fills padding: the pad token, else EOS, else 0 (padded
            positions are masked out, so any id works).
        model_max_length: The tokenizer's own window, or ``None`` when it sets none.
    """

    def __init__(self, backend: tokenizers.Tokenizer, *, pad_token_id: int, model_max_length: int | None) -> None:
        self.model_max_length = model_max_length
        self._lock = threading.Lock()  # the backend's truncation setting is per tokenizer
        self._build: Callable[[], TextTokenizer] | None = None
        self._backend = backend
        self._pad_token_id = pad_token_id
        backend.no_padding()  # the encoder pads its own batches
        backend.no_truncation()

    @classmethod
    def deferred(cls, build: Callable[[], TextTokenizer], *, model_max_length: int | None) -> TextTokenizer:
        """A tokenizer whose backend ``build`` makes on first use (or :meth:`wait`), on the
        calling thread.

        Why: building a large vocabulary (the default model's 250,002 SentencePiece
        pieces) takes about a second and holds the GIL. Deferred, the OpenVINO runtime
        builds it while its graph compiles from the cache on another thread (compiling
        releases the GIL), so the two overlap instead of adding up.
        """
        tokenizer = cls.__new__(cls)
        tokenizer.model_max_length = model_max_length
        tokenizer._lock = threading.Lock()
        tokenizer._build = build
        return tokenizer

    def wait(self) -> None:
        """Build the backend now if it is deferred (see :meth:`deferred`); raises its errors."""
        if self._build is None:
            return
        with self._lock:
            if self._build is not None:
                built = self._build()
                self._backend, self._pad_token_id = built._backend, built._pad_token_id
                self._build = None

    @property
    def backend(self) -> tokenizers.Tokenizer:
        """The ``tokenizers.Tokenizer`` (built now if it was deferred)."""
        self.wait()
        return self._backend

    @property
    def pad_token_id(self) -> int:
        """Id that fills padding: the pad token, else EOS, else 0 (built now if deferred)."""
        self.wait()
        return self._pad_token_id

    @classmethod
    def from_transformers(cls, tokenizer: PreTrainedTokenizerBase) -> TextTokenizer:
        """Wrap a transformers tokenizer's backend (it must be a fast tokenizer)."""
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise ConfigError(
                f"{type(tokenizer).__name__} is not a fast tokenizer; the encoder needs token offsets, "
                "which only fast (tokenizers-backed) tokenizers give"
            )
        limit = getattr(tokenizer, "model_max_length", None)
        pad = next((i for i in (tokenizer.pad_token_id, tokenizer.eos_token_id) if isinstance(i, int)), 0)
        return cls(
            backend,
            pad_token_id=pad,
            model_max_length=limit if isinstance(limit, int) and limit < _NO_LIMIT else None,
        )

    def encode_batch(
        self, texts: list[str], *, max_length: int | None = None, add_special_tokens: bool = True
    ) -> list[tokenizers.Encoding]:
        """Tokenize ``texts``; ``max_length`` cuts each to that many tokens, specials included.

        Each encoding has ``ids``, ``offsets`` (character spans in its text) and
        ``special_tokens_mask``. Cutting keeps the specials, as transformers'
        ``truncation=True`` does.
        """
        backend = self.backend
        with self._lock:
            if max_length is None:
                backend.no_truncation()
            else:
                backend.enable_truncation(max_length)
            try:
                return backend.encode_batch(texts, add_special_tokens=add_special_tokens)
            finally:
                backend.no_truncation()

    def count_tokens(self, text: str, *, add_special_tokens: bool = True) -> int:
        """How many tokens ``text`` is, uncut."""
        return len(self.encode_batch([text], add_special_tokens=add_special_tokens)[0].ids)

    @property
    def vocab_size(self) -> int:
        """Ids the tokenizer can produce, added tokens included."""
        return int(self.backend.get_vocab_size(with_added_tokens=True))

    def identity(self) -> bytes:
        """What defines the tokenizer's output, for the encoder fingerprint.

        The backend's serialisation minus truncation and padding, which are per-call
        state (they would otherwise make a fingerprint differ between an ingest process
        and a search process).
        """
        definition = json.loads(self.backend.to_str())
        definition.pop("truncation", None)
        definition.pop("padding", None)
        return json.dumps(definition, sort_keys=True).encode()


def load_tokenizer(location: str, *, trust_remote_code: bool = False, deferred: bool = False) -> TextTokenizer:
    """The tokenizer of the backbone at ``location``: read directly when it is a plain
    ``tokenizer.json``, else through transformers' ``AutoTokenizer``.

    Args:
        location: The backbone's directory or hub id.
        trust_remote_code: Passed to transformers when it loads the tokenizer.
        deferred: Build a plain tokenizer's backend on first use
            (:meth:`TextTokenizer.deferred`).

    Raises:
        CheckpointError: The tokenizer file is unreadable, or transformers cannot load it
            (see :func:`splare_connect.encoding.backbone.load_backbone`).
        ConfigError: It is not a fast tokenizer.
    """
    config = plain_tokenizer_config(Path(location))
    if config is None:
        return _through_transformers(location, trust_remote_code)
    limit = config.get("model_max_length")
    model_max_length = limit if isinstance(limit, int) and limit < _NO_LIMIT else None

    def build() -> TextTokenizer:
        return _read_plain(Path(location), config, model_max_length) or _through_transformers(
            location, trust_remote_code
        )

    return TextTokenizer.deferred(build, model_max_length=model_max_length) if deferred else build()


def plain_tokenizer_config(directory: Path) -> dict[str, Any] | None:
    """A directory's ``tokenizer_config.json`` when its ``tokenizer.json`` can be read
    directly: a plain class, no settings transformers would add, no code of its own."""
    config = _read_json(directory / "tokenizer_config.json")
    if config is None or not (directory / "tokenizer.json").is_file():
        return None
    if config.get("tokenizer_class") not in _PLAIN_CLASSES or not set(config) <= _PLAIN_KEYS:
        return None
    return config


def _read_plain(directory: Path, config: dict[str, Any], model_max_length: int | None) -> TextTokenizer | None:
    """``tokenizer.json`` as it is, or ``None`` when a special token the config names is not
    registered in it as a special added token (transformers would add or register it,
    changing how text splits and so the vectors)."""
    import tokenizers

    backend_file = directory / "tokenizer.json"
    try:
        backend = tokenizers.Tokenizer.from_file(str(backend_file))
    except Exception as exc:  # the Rust loader raises plain Exception for a malformed file
        raise CheckpointError(f"cannot read tokenizer {backend_file}: {str(exc).splitlines()[0][:200]}") from None
    specials = {key: _token_text(config.get(key)) for key in _SPECIAL_TOKEN_KEYS}
    registered = {token.content for token in backend.get_added_tokens_decoder().values() if token.special}
    if any(token is not None and token not in registered for token in specials.values()):
        return None  # transformers would register it as a special token, changing how text splits
    ids = {key: backend.token_to_id(token) for key, token in specials.items() if token is not None}
    pad = ids.get("pad_token", ids.get("eos_token"))
    return TextTokenizer(backend, pad_token_id=0 if pad is None else pad, model_max_length=model_max_length)


def _through_transformers(location: str, trust_remote_code: bool) -> TextTokenizer:
    from transformers import AutoTokenizer

    from splare_connect.loading_errors import loading_errors
    from splare_connect.quiet import quiet_loading

    with loading_errors(location, trust_remote_code), quiet_loading():
        loaded = AutoTokenizer.from_pretrained(location, trust_remote_code=trust_remote_code)
    return TextTokenizer.from_transformers(loaded)


def _token_text(token: Any) -> str | None:
    """A special token as tokenizer_config.json writes it: a string or ``{"content": ...}``."""
    if isinstance(token, dict):
        token = token.get("content")
    return token if isinstance(token, str) else None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
