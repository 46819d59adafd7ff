"""The encoder fingerprint: what identifies a vector space, stored with every collection.

Collections record the fingerprint of the encoder that wrote them, and writes and
queries check it, so vectors from two different spaces are never mixed. The digest must
therefore change with anything that changes vectors and with nothing else: not with
the model's name or paths, and not with state a tokenizer keeps between calls.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

    from splare_connect.encoding.config import EncoderConfig
    from splare_connect.encoding.sae import SparseAutoencoder
    from splare_connect.encoding.tokenization import TextTokenizer

# Bumped whenever encoder_fingerprint() changes what it hashes: cached digests from an
# older scheme are then not reused.
FINGERPRINT_SCHEME = 2

# Config fields that name or locate things without changing the vectors.
_NOT_HASHED = ("name", "backbone", "sae", "lora", "sae_format")

# SAE tensors that the encoder half reads (``W_dec`` does not affect vectors).
_SAE_ENCODER_TENSORS = ("W_enc", "b_enc", "b_dec", "threshold")


def _tensor_bytes(tensor: torch.Tensor) -> bytes:
    """A tensor's bytes as stored; numpy has no bfloat16, so those are read as 16-bit integers."""
    import torch

    value = tensor.detach().cpu().contiguous()
    if value.dtype == torch.bfloat16:
        value = value.view(torch.int16)
    return value.numpy().tobytes()


def encoder_fingerprint(
    *,
    config: EncoderConfig,
    tokenizer: TextTokenizer,
    backbone: nn.Module,
    sae: SparseAutoencoder,
    layer: int,
    max_length: int,
    precision: str,
) -> dict[str, Any]:
    """The fingerprint of an encoder, from its parts.

    ``digest`` hashes the weights that can affect the vectors (the backbone up to the
    SAE's layer, the SAE encoder), the tokenizer, the layer, prefixes, pooling and
    pruning. Two encoders with equal digests produce the same vectors. Take it from the
    fp32 weights, before any quantization: the precision is hashed as a setting.

    Args:
        config: The encoder's config (prefixes, pooling, pruning...).
        tokenizer: The backbone's tokenizer.
        backbone: The backbone model as the encoder runs it (blocks after the layer
            removed unless kept for a dense embedding).
        sae: The SAE.
        layer: The block the SAE reads, normalised (no negative index).
        max_length: The encoder's token window.
        precision: ``"fp32"`` (or ``"bf16"``, the same) or ``"int8"``.

    Returns:
        ``name``, ``layer``, ``sae_width``, ``query_top_k``, ``document_top_k``,
        ``digest`` (32 hex digits); at int8 also ``precision`` and ``weights_digest``.
    """
    settings = {key: value for key, value in config.to_dict().items() if key not in _NOT_HASHED}
    settings["layer"] = layer
    settings["max_length"] = max_length
    # int8 vectors differ enough to cost retrieval quality when mixed with fp32 ones
    # (int8 queries on fp32 documents: English nDCG@10 0.590 against 0.618 all-int8 and
    # 0.635 all-fp32), so an int8 digest has always hashed its precision, and collections
    # written at int8 carry it. It now also records the digest of its weights alone
    # (``weights_digest``, what an fp32 or bf16 encoder of the same model has as its
    # digest), which tells "same weights, other arithmetic" from "other weights".
    # fp32 and bf16 hash no precision: they share a vector space.
    extra = {} if precision in ("fp32", "bf16") else {"precision": precision}
    digests = {"digest": hashlib.sha256(json.dumps({**settings, **extra}, sort_keys=True).encode())}
    if extra:
        digests["weights_digest"] = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())

    def update(data: bytes) -> None:
        for digest in digests.values():
            digest.update(data)

    update(tokenizer.identity())
    for name, tensor in sorted(backbone.state_dict().items()):
        update(name.encode())
        update(_tensor_bytes(tensor))
    for name in _SAE_ENCODER_TENSORS:
        tensor = getattr(sae, name, None)
        if tensor is not None:
            update(name.encode())
            update(_tensor_bytes(tensor))
    update(sae.config.to_json().encode())
    return {
        "name": config.name,
        "layer": layer,
        "sae_width": sae.d_sae,
        "query_top_k": config.query_top_k,
        "document_top_k": config.document_top_k,
        **{key: digest.hexdigest()[:32] for key, digest in digests.items()},
        **extra,
    }


def cached_fingerprint(
    sources: Sequence[Path], settings: dict[str, Any], cache: Path, compute: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """The fingerprint, read from ``cache`` when the files it was computed from are unchanged.

    Hashing the weights takes seconds at every load (half a gigabyte for the default
    model), though they rarely change. So the result of ``compute`` is stored under a key
    made of each source file's path, size, modification and change times and inode, the encoder
    settings, and the library versions that shape the hash. Rewriting any weights,
    tokenizer or config file changes its change time (``st_ctime``, which no copy tool
    can set back), hence the key, and the digest is computed afresh. The digest is that of
    the files: weights changed in memory after loading are not seen (the encoder computes
    its fingerprint once, at load, anyway).

    Args:
        sources: Files or directories the encoder was loaded from (every file under a
            directory counts). Empty: no caching (e.g. a backbone from the model hub).
        settings: Everything else the fingerprint depends on (config, layer, precision,
            dtype...), JSON-serialisable.
        cache: Directory of cached fingerprints.
        compute: Computes the fingerprint (:func:`encoder_fingerprint`).
    """
    if not sources:
        return compute()
    stored = stored_fingerprint(sources, settings, cache)
    if stored is not None:
        return stored
    key = _cache_key(sources, settings)
    fingerprint = compute()
    with contextlib.suppress(OSError):  # a read-only cache costs speed, not correctness
        cache.mkdir(parents=True, exist_ok=True)
        handle, staging = tempfile.mkstemp(prefix=f".{key}-", dir=cache)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(fingerprint, out)
            os.replace(staging, cache / f"{key}.json")
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(staging)  # left only when the replace did not happen
    return fingerprint


def stored_fingerprint(sources: Sequence[Path], settings: dict[str, Any], cache: Path) -> dict[str, Any] | None:
    """The fingerprint :func:`cached_fingerprint` stored for these files and settings, if any (cheap: no hashing)."""
    if not sources:
        return None
    with contextlib.suppress(OSError, ValueError):
        stored = json.loads((cache / f"{_cache_key(sources, settings)}.json").read_text(encoding="utf-8"))
        if isinstance(stored, dict) and isinstance(stored.get("digest"), str):
            return stored
    return None


def _cache_key(sources: Sequence[Path], settings: dict[str, Any]) -> str:
    files = []
    for source in sources:
        paths = sorted(path for path in source.rglob("*") if path.is_file()) if source.is_dir() else [source]
        for path in paths:
            stat = path.stat()
            # ctime as well as mtime: a copy that keeps timestamps (cp -p, rsync -t) can set
            # mtime back, but any write or utime moves ctime, which user code cannot set.
            files.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino])
    described = {
        "files": files,
        "settings": settings,
        "scheme": FINGERPRINT_SCHEME,
        # Read from the installed metadata: importing transformers only for its version
        # would cost seconds on a load that otherwise never needs it.
        "versions": [_installed_version(name) for name in _HASHING_LIBRARIES],
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()[:32]


# Libraries whose versions could change what the fingerprint hashes (tensor bytes,
# tokenizer serialisation): a cached digest is not reused across their upgrades.
_HASHING_LIBRARIES = ("torch", "transformers", "tokenizers")


def _installed_version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "absent"
