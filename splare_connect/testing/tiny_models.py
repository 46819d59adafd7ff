"""Tiny real checkpoints for tests, built with the real libraries (torch, transformers, tokenizers).

Backbones are random transformers models (BERT: an encoder; Llama: a decoder) saved
as safetensors with a real ``tokenizers`` word-level tokenizer, so every test runs
the same loading code as a user's checkpoint. ``reference_vector`` is a plain numpy
re-statement of the SPLARE recipe that encoder outputs are checked against.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

WORDS = " ".join(
    [
        "the a of to and in is it list files directory copy move remove show print text search",
        "find network file system user process memory disk kernel time date manual page command",
        "line der die das und ist liste dateien verzeichnis le la les et fichiers répertoire",
    ]
).split()
HIDDEN = 32
N_LAYERS = 4
# Texts in the tiny vocabulary (English, German), for tests that encode a few.
SAMPLE_TEXTS = [
    "list the files in the directory",
    "copy a file to the network disk",
    "liste die dateien im verzeichnis",
    "show the kernel memory and process time",
]


SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
WORD_BOUNDARY = "\u2581"  # SentencePiece's "▁"


def build_tokenizer(directory: Path, *, decoder_style: bool = False, sentencepiece: bool = False) -> None:
    """A lowercase tokenizer over WORDS, saved as a transformers fast tokenizer.

    Word-level by default: whitespace never becomes a token. ``sentencepiece=True`` makes
    it behave like XLM-R's SentencePiece (the default model's tokenizer): pieces start
    with ``"▁"``, and a blank, or a space before an unknown piece, becomes a lone ``"▁"``.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = list(dict.fromkeys(WORDS))
    vocab = {token: i for i, token in enumerate(SPECIALS + words)}
    if sentencepiece:
        pieces = [(token, 0.0) for token in SPECIALS] + [(WORD_BOUNDARY, -2.0)]
        tokenizer = Tokenizer(models.Unigram([*pieces, *((WORD_BOUNDARY + w, -1.0) for w in words)], unk_id=1))
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement=WORD_BOUNDARY, prepend_scheme="always")
    else:
        tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
        tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.normalizer = normalizers.Lowercase()
    if decoder_style:  # BOS only, like Llama
        tokenizer.post_processor = processors.TemplateProcessing(
            single="[CLS] $A", special_tokens=[("[CLS]", vocab["[CLS]"])]
        )
    else:
        tokenizer.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
        )
    PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        bos_token="[CLS]",
        model_max_length=24,
    ).save_pretrained(directory)


def vocab_size(*, sentencepiece: bool = False) -> int:
    return len(SPECIALS) + len(dict.fromkeys(WORDS)) + int(sentencepiece)


def build_bert(directory: Path, seed: int = 0, *, sentencepiece: bool = False) -> Path:
    """A 4-block random BERT with hidden size 32 (``sentencepiece``: see :func:`build_tokenizer`)."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=vocab_size(sentencepiece=sentencepiece),
        hidden_size=HIDDEN,
        num_hidden_layers=N_LAYERS,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).eval().save_pretrained(directory, safe_serialization=True)
    build_tokenizer(directory, sentencepiece=sentencepiece)
    return directory


def build_llama(directory: Path, seed: int = 0) -> Path:
    """A 4-block random Llama (decoder with a final RMSNorm) with hidden size 32."""
    from transformers import LlamaConfig, LlamaModel

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size(),
        hidden_size=HIDDEN,
        num_hidden_layers=N_LAYERS,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        pad_token_id=0,
    )
    LlamaModel(config).eval().save_pretrained(directory, safe_serialization=True)
    build_tokenizer(directory, decoder_style=True)
    return directory


def random_sae_tensors(d_in: int, d_sae: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random SAE weights in the conventional orientation (W_enc: d_in x d_sae)."""
    rng = np.random.default_rng(seed)
    return {
        "W_enc": rng.normal(0, 0.5, (d_in, d_sae)).astype(np.float32),
        "b_enc": rng.normal(0, 0.1, d_sae).astype(np.float32),
        "b_dec": rng.normal(0, 0.3, d_in).astype(np.float32),
        "W_dec": rng.normal(0, 0.5, (d_sae, d_in)).astype(np.float32),
        "threshold": np.abs(rng.normal(0.3, 0.2, d_sae)).astype(np.float32),
    }


def reference_activations(
    x: np.ndarray,
    weights: dict[str, np.ndarray],
    *,
    activation: str,
    k: int | None = None,
    threshold: np.ndarray | float | None = None,
    input_scale: float = 1.0,
    apply_b_dec: bool = False,
) -> np.ndarray:
    """Plain per-token SAE encoder: ``(tokens, d_in)`` -> ``(tokens, d_sae)``."""
    out = np.zeros((x.shape[0], weights["W_enc"].shape[1]), np.float64)
    for t in range(x.shape[0]):
        inp = x[t].astype(np.float64) * input_scale
        if apply_b_dec:
            inp = inp - weights["b_dec"]
        pre = inp @ weights["W_enc"].astype(np.float64) + weights["b_enc"]
        if activation == "relu":
            out[t] = np.maximum(pre, 0)
        elif activation == "jumprelu":
            out[t] = np.where(pre > threshold, np.maximum(pre, 0), 0)
        else:
            keep = np.argsort(-pre, kind="stable")[:k]
            out[t, keep] = np.maximum(pre[keep], 0)
    return out


def reference_vector(activations: np.ndarray, top_k: int | None) -> dict[int, float]:
    """``w_j = max_t log(1 + relu(z_tj))``, then the ``top_k`` largest, as {index: weight}."""
    pooled = np.log1p(np.maximum(activations, 0).max(axis=0)) if len(activations) else np.zeros(0)
    nonzero = [(int(j), float(w)) for j, w in enumerate(pooled) if w > 0]
    nonzero.sort(key=lambda item: (-item[1], item[0]))
    if top_k is not None:
        nonzero = nonzero[:top_k]
    return dict(nonzero)


def build_tiny_model_dir(directory: Path, *, sae_seed: int = 1, name: str = "tiny") -> Path:
    """A complete splare-connect model directory: tiny BERT, TopK SAE, dense mean pooling."""
    from splare_connect.encoding.config import EncoderConfig
    from splare_connect.encoding.sae import SaeConfig, SparseAutoencoder

    build_bert(directory / "backbone")
    weights = random_sae_tensors(HIDDEN, 64, seed=sae_seed)
    sae = SparseAutoencoder(
        SaeConfig(d_in=HIDDEN, d_sae=64, activation="topk", k=6),
        W_enc=torch.from_numpy(weights["W_enc"]),
        b_enc=torch.from_numpy(weights["b_enc"]),
    )
    sae.save(directory / "sae")
    EncoderConfig(
        name=name,
        backbone="backbone",
        sae="sae",
        layer=3,
        query_top_k=10,
        document_top_k=30,
        dense_pooling="mean",
    ).save(directory)
    return directory
