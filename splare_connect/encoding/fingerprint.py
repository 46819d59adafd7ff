"""The encoder fingerprint: what identifies a vector space, stored with every collection.

Collections record the fingerprint of the encoder that wrote them, and writes and
queries check it, so vectors from two different spaces are never mixed. The digest must
therefore change with anything that changes vectors and with nothing else: not with
the model's name or paths, and not with state a tokenizer keeps between calls.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn
    from transformers import PreTrainedTokenizerBase

    from splare_connect.encoder_config import EncoderConfig
    from splare_connect.sae import SparseAutoencoder

# Config fields that name or locate things without changing the vectors.
_NOT_HASHED = ("name", "backbone", "sae", "lora", "sae_format")

# SAE tensors that the encoder half reads (``W_dec`` does not affect vectors).
_SAE_ENCODER_TENSORS = ("W_enc", "b_enc", "b_dec", "threshold")


def encoder_fingerprint(
    *,
    config: EncoderConfig,
    tokenizer: PreTrainedTokenizerBase,
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
        precision: ``"fp32"`` or ``"int8"``.

    Returns:
        ``name``, ``layer``, ``sae_width``, ``query_top_k``, ``document_top_k``,
        ``digest`` (32 hex digits), and ``precision`` unless it is fp32.
    """
    digest = hashlib.sha256()
    settings = {key: value for key, value in config.to_dict().items() if key not in _NOT_HASHED}
    settings["layer"] = layer
    settings["max_length"] = max_length
    # int8 vectors differ enough to cost retrieval quality when mixed with fp32 ones
    # (int8 queries on fp32 documents: English nDCG@10 0.590 against 0.618 all-int8 and
    # 0.635 all-fp32), so a collection is tied to one precision. fp32 adds nothing, so
    # fingerprints from before precisions existed stay valid.
    extra = {} if precision == "fp32" else {"precision": precision}
    settings.update(extra)
    digest.update(json.dumps(settings, sort_keys=True).encode())
    digest.update(tokenizer_identity(tokenizer))
    for name, tensor in sorted(backbone.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    for name in _SAE_ENCODER_TENSORS:
        tensor = getattr(sae, name, None)
        if tensor is not None:
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    digest.update(sae.config.to_json().encode())
    return {
        "name": config.name,
        "layer": layer,
        "sae_width": sae.d_sae,
        "query_top_k": config.query_top_k,
        "document_top_k": config.document_top_k,
        "digest": digest.hexdigest()[:32],
        **extra,
    }


def tokenizer_identity(tokenizer: PreTrainedTokenizerBase) -> bytes:
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
