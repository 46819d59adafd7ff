"""SplareEncoder on tiny real checkpoints, checked against a plain reference computation."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from splare_connect import BadInputError, CheckpointError, ConfigError, SplareEncoder
from splare_connect.encoding.backbone import load_backbone
from splare_connect.models.registry import CACHE_ENV
from splare_connect.testing.tiny_models import (
    HIDDEN,
    SAMPLE_TEXTS,
    build_bert,
    build_llama,
    random_sae_tensors,
    reference_activations,
    reference_vector,
)

D_SAE = 64


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bert(tmp_path_factory.mktemp("bert"))


@pytest.fixture(scope="module")
def sentencepiece_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny BERT whose tokenizer makes ``"▁"`` tokens of blanks, like the default model's."""
    return build_bert(tmp_path_factory.mktemp("bert-sentencepiece"), sentencepiece=True)


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_llama(tmp_path_factory.mktemp("llama"))


def write_saelens(directory: Path, weights: dict[str, np.ndarray], architecture: str, k: int = 6) -> Path:
    import json

    directory.mkdir(parents=True, exist_ok=True)
    tensors = {key: weights[key] for key in ("W_enc", "b_enc", "W_dec", "b_dec")}
    if architecture == "jumprelu":
        tensors["threshold"] = weights["threshold"]
    save_file(tensors, str(directory / "sae_weights.safetensors"))
    cfg = {"d_in": HIDDEN, "d_sae": D_SAE, "architecture": architecture, "apply_b_dec_to_input": True}
    if architecture == "topk":
        cfg["k"] = k
    (directory / "cfg.json").write_text(json.dumps(cfg))
    return directory


def expected_vectors(
    backbone_dir: Path,
    texts: list[str],
    layer: int,
    weights: dict[str, np.ndarray],
    *,
    activation: str,
    top_k: int | None,
    k: int = 6,
    lora: Path | None = None,
) -> list[dict[int, float]]:
    """The recipe spelled out: full model, hidden_states[L+1], content tokens, SAE, pool, prune."""
    from transformers import AutoTokenizer

    loaded = load_backbone(backbone_dir, lora=lora)
    tokenizer = AutoTokenizer.from_pretrained(backbone_dir)  # transformers' own, as a reference
    vectors = []
    for text in texts:
        encoded = tokenizer(text, return_special_tokens_mask=True, return_tensors="pt")
        with torch.no_grad():
            hidden = loaded.model(
                input_ids=encoded["input_ids"],
                attention_mask=encoded["attention_mask"],
                output_hidden_states=True,
            ).hidden_states[layer + 1][0]
        content = hidden[encoded["special_tokens_mask"][0] == 0].numpy()
        acts = reference_activations(
            content, weights, activation=activation, k=k, threshold=weights["threshold"], apply_b_dec=True
        )
        vectors.append(reference_vector(acts, top_k))
    return vectors


def assert_matches(actual, expected: list[dict[int, float]]) -> None:  # type: ignore[no-untyped-def]
    for vector, reference in zip(actual, expected, strict=True):
        assert vector.indices.tolist() == sorted(reference)
        np.testing.assert_allclose(vector.values, [reference[i] for i in sorted(reference)], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("activation", ["topk", "jumprelu", "relu"])
@pytest.mark.parametrize("layer", [1, 3])
def test_bert_encoder_matches_reference(bert_dir: Path, tmp_path: Path, activation: str, layer: int) -> None:
    weights = random_sae_tensors(HIDDEN, D_SAE, seed=layer)
    architecture = {"relu": "standard", "jumprelu": "jumprelu", "topk": "topk"}[activation]
    sae_dir = write_saelens(tmp_path / "sae", weights, architecture)
    encoder = SplareEncoder.from_components(
        bert_dir, sae_dir, layer=layer, query_top_k=5, document_top_k=20, device="cpu", runtime="torch"
    )
    documents = encoder.encode_documents(SAMPLE_TEXTS, batch_size=3)
    queries = encoder.encode_queries(SAMPLE_TEXTS)
    assert_matches(documents, expected_vectors(bert_dir, SAMPLE_TEXTS, layer, weights, activation=activation, top_k=20))
    assert_matches(queries, expected_vectors(bert_dir, SAMPLE_TEXTS, layer, weights, activation=activation, top_k=5))
    assert all(v.dim == D_SAE and v.nnz > 0 for v in documents)


def test_decoder_backbone_with_bos_only(llama_dir: Path, tmp_path: Path) -> None:
    weights = random_sae_tensors(HIDDEN, D_SAE, seed=11)
    sae_dir = write_saelens(tmp_path / "sae", weights, "topk")
    encoder = SplareEncoder.from_components(
        llama_dir, sae_dir, layer=2, document_top_k=None, device="cpu", runtime="torch"
    )
    expected = expected_vectors(llama_dir, SAMPLE_TEXTS, 2, weights, activation="topk", top_k=None)
    assert_matches(encoder.encode_documents(SAMPLE_TEXTS), expected)


def test_lora_adapter_is_merged(bert_dir: Path, tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model

    loaded = load_backbone(bert_dir)
    torch.manual_seed(5)
    peft_model = get_peft_model(
        loaded.model,
        LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"], init_lora_weights=False),
    )
    peft_model.save_pretrained(tmp_path / "lora", safe_serialization=True)
    weights = random_sae_tensors(HIDDEN, D_SAE, seed=2)
    sae_dir = write_saelens(tmp_path / "sae", weights, "topk")
    with_lora = SplareEncoder.from_components(
        bert_dir, sae_dir, layer=3, lora=tmp_path / "lora", document_top_k=None, device="cpu", runtime="torch"
    )
    without = SplareEncoder.from_components(
        bert_dir, sae_dir, layer=3, document_top_k=None, device="cpu", runtime="torch"
    )
    expected = expected_vectors(
        bert_dir, SAMPLE_TEXTS, 3, weights, activation="topk", top_k=None, lora=tmp_path / "lora"
    )
    assert_matches(with_lora.encode_documents(SAMPLE_TEXTS), expected)
    assert with_lora.encode_documents(SAMPLE_TEXTS) != without.encode_documents(SAMPLE_TEXTS)
    assert with_lora.fingerprint["digest"] != without.fingerprint["digest"]


@pytest.fixture
def tiny_encoder(bert_dir: Path, tmp_path: Path) -> SplareEncoder:
    sae_dir = write_saelens(tmp_path / "sae", random_sae_tensors(HIDDEN, D_SAE, seed=1), "topk")
    return SplareEncoder.from_components(
        bert_dir,
        sae_dir,
        layer=3,
        document_prefix="passage ",
        query_prefix="query ",
        dense_pooling="mean",
        device="cpu",
        runtime="torch",
    )


def test_prefix_tokens_contextualise_but_do_not_pool(tiny_encoder: SplareEncoder) -> None:
    # "passage" is unknown to the tiny vocabulary, so it is one [UNK] token: the
    # document vector must not change when that token's features are excluded...
    with_prefix = tiny_encoder.encode_documents(["copy a file"])[0]
    pooled_prefix = SplareEncoder(
        tiny_encoder.config.with_overrides(pool_prefix_tokens=True),
        _loaded(tiny_encoder),
        tiny_encoder.sae,
        device="cpu",
    ).encode_documents(["copy a file"])[0]
    assert set(with_prefix.indices) <= set(pooled_prefix.indices)
    assert with_prefix != pooled_prefix


def _loaded(encoder: SplareEncoder):  # type: ignore[no-untyped-def]
    from splare_connect.encoding.backbone import LoadedBackbone

    return LoadedBackbone(model=load_backbone(encoder.config.backbone).model, tokenizer=encoder.tokenizer)


def test_dense_from_same_pass_and_batch_invariance(tiny_encoder: SplareEncoder) -> None:
    one_by_one = [tiny_encoder.encode([t], dense=True) for t in SAMPLE_TEXTS]
    together = tiny_encoder.encode(SAMPLE_TEXTS, dense=True, batch_size=4)
    assert together.dense is not None and together.dense.shape == (len(SAMPLE_TEXTS), HIDDEN)
    np.testing.assert_allclose(np.linalg.norm(together.dense, axis=1), 1.0, rtol=1e-5)
    for i, single in enumerate(one_by_one):
        assert single.dense is not None
        np.testing.assert_allclose(single.dense[0], together.dense[i], atol=1e-5)
        assert single.sparse[0].indices.tolist() == together.sparse[i].indices.tolist()
        np.testing.assert_allclose(single.sparse[0].values, together.sparse[i].values, rtol=1e-4)
    again = tiny_encoder.encode(SAMPLE_TEXTS, dense=True, batch_size=4)
    assert again.sparse == together.sparse  # deterministic


def test_bad_inputs_get_clear_errors(tiny_encoder: SplareEncoder) -> None:
    with pytest.raises(BadInputError, match=r"texts\[1\] is a int"):
        tiny_encoder.encode_documents(["ok", 42])  # type: ignore[list-item]
    with pytest.raises(BadInputError, match="wrap it in a list"):
        tiny_encoder.encode_documents("a single string")  # type: ignore[arg-type]
    with pytest.raises(BadInputError, match=r"texts\[0\] is a NoneType"):
        tiny_encoder.encode_queries([None])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="role"):
        tiny_encoder.encode(["x"], role="passage")  # type: ignore[arg-type]


def test_empty_and_whitespace_texts_encode_to_empty_vectors(tiny_encoder: SplareEncoder) -> None:
    result = tiny_encoder.encode(["", "   \n\t", "copy a file"], dense=True)
    assert [v.nnz for v in result.sparse[:2]] == [0, 0]
    assert result.sparse[2].nnz > 0
    assert result.dense is not None and np.isfinite(result.dense).all()
    assert tiny_encoder.encode([]).sparse == []


BLANK_TEXTS = ["", " ", "   \n\t", "\u3000", "\u200b\ufeff"]
# Real text whose whitespace also makes "▁" tokens (trailing, leading, before an unknown piece).
TEXTS_WITH_BLANK_TOKENS = ["list the files ", "  copy a file\n", "liste die dateien", "ディ files"]


@pytest.mark.parametrize(
    "settings",
    [
        {"query_prefix": "query: ", "document_prefix": "passage: "},
        {},
        {"query_prefix": "query: ", "document_prefix": "passage: ", "pool_prefix_tokens": True},
        {"pool_special_tokens": True},
    ],
    ids=["e5-prefixes", "no-prefix", "pooled-prefix", "pooled-specials"],
)
def test_blank_texts_have_no_features_whatever_their_tokens(
    sentencepiece_bert_dir: Path, tmp_path: Path, settings: dict
) -> None:
    weights = random_sae_tensors(HIDDEN, D_SAE, seed=4)
    sae_dir = write_saelens(tmp_path / "sae", weights, "topk")
    encoder = SplareEncoder.from_components(
        sentencepiece_bert_dir,
        sae_dir,
        layer=3,
        document_top_k=None,
        dense_pooling="mean",
        device="cpu",
        runtime="torch",
        **settings,
    )
    # The tokenizer does make non-special tokens of blanks: "▁" over the prefix's trailing
    # space, "▁" per blank, [UNK] for the ideographic and zero-width spaces.
    [blank_tokens] = encoder.tokenizer.encode_batch([settings.get("document_prefix", "") + "   \n\t"])
    assert sum(1 - flag for flag in blank_tokens.special_tokens_mask) > 1
    for role in ("query", "document"):
        result = encoder.encode([*BLANK_TEXTS, *TEXTS_WITH_BLANK_TOKENS], role=role, dense=True, batch_size=4)
        assert [v.nnz for v in result.sparse[: len(BLANK_TEXTS)]] == [0] * len(BLANK_TEXTS), role
        assert all(v.nnz > 0 for v in result.sparse[len(BLANK_TEXTS) :])
        assert result.dense is not None and np.isfinite(result.dense).all()
        np.testing.assert_allclose(np.linalg.norm(result.dense, axis=1), 1.0, rtol=1e-5)
    # Real text keeps every token it had, its "▁" tokens included: vectors (and so
    # fingerprints and stored collections) are what they were before blanks were excluded.
    if not settings:
        document_vectors = encoder.encode_documents([*BLANK_TEXTS, *TEXTS_WITH_BLANK_TOKENS], batch_size=3)
        expected = expected_vectors(
            sentencepiece_bert_dir, TEXTS_WITH_BLANK_TOKENS, 3, weights, activation="topk", top_k=None
        )
        assert_matches(document_vectors[len(BLANK_TEXTS) :], expected)


def test_long_texts_are_truncated_and_flagged(tiny_encoder: SplareEncoder) -> None:
    long_text = " ".join(["file"] * 200)
    result = tiny_encoder.encode([long_text, "copy a file"])
    assert result.truncated.tolist() == [True, False]
    assert result.num_tokens[0] == tiny_encoder.max_length == 24


def test_forward_is_the_model_encode_runs(tiny_encoder: SplareEncoder) -> None:
    from splare_connect.encoding.pooling import prune_to_vectors

    [batch] = tiny_encoder.iter_batches(SAMPLE_TEXTS, role="query", batch_size=len(SAMPLE_TEXTS))
    with torch.inference_mode():
        pooled, dense = tiny_encoder.forward(batch)
    assert pooled.shape == (len(SAMPLE_TEXTS), tiny_encoder.dim) and pooled.dtype == torch.float32
    assert dense is not None and dense.shape == (len(SAMPLE_TEXTS), HIDDEN)
    result = tiny_encoder.encode(SAMPLE_TEXTS, role="query", dense=True, batch_size=len(SAMPLE_TEXTS))
    assert result.dense is not None
    for row, vector in zip(batch.positions, prune_to_vectors(pooled, tiny_encoder.config.query_top_k), strict=True):
        assert vector == result.sparse[row]
    np.testing.assert_array_equal(dense.numpy(), result.dense[batch.positions])


def test_forward_is_differentiable_through_the_pruning(tiny_model_dir: Path) -> None:
    from splare_connect.encoding.pooling import prune_to_vectors, top_k_weights

    encoder = SplareEncoder.from_pretrained(tiny_model_dir, device="cpu", runtime="torch")
    encoder.reader.model.requires_grad_(True)  # as LoRA fine-tuning makes its adapters trainable
    [batch] = encoder.iter_batches(SAMPLE_TEXTS, role="document", batch_size=len(SAMPLE_TEXTS))
    pooled, dense = encoder.forward(batch)
    kept = top_k_weights(pooled, 5)
    assert dense is not None and kept.requires_grad
    # Training and inference prune alike: the kept weights are exactly the stored vectors.
    for row, vector in zip(kept.detach(), prune_to_vectors(pooled, 5), strict=True):
        assert np.flatnonzero(row.numpy()).tolist() == vector.indices.tolist()
    (kept.sum() + dense.sum()).backward()
    gradients = [p.grad for p in encoder.reader.model.parameters() if p.grad is not None]
    assert gradients and any(bool(g.abs().sum() > 0) for g in gradients)


def test_a_shorter_window_is_per_call(tiny_encoder: SplareEncoder) -> None:
    long_text = " ".join(["file"] * 200)
    [short] = tiny_encoder.iter_batches([long_text], max_length=8)
    assert short.input_ids.shape == (1, 8) and short.truncated == [True]
    assert tiny_encoder.max_length == 24  # the encoder itself is unchanged
    [capped] = tiny_encoder.iter_batches([long_text], max_length=1000)
    assert capped.input_ids.shape == (1, 24)
    with pytest.raises(ConfigError, match="max_length"):
        next(tiny_encoder.iter_batches([long_text], max_length=2))


def test_sae_width_must_match_backbone(bert_dir: Path, tmp_path: Path) -> None:
    import json

    weights = random_sae_tensors(HIDDEN * 2, D_SAE)
    save_file({k: weights[k] for k in ("W_enc", "b_enc")}, str(tmp_path / "sae_weights.safetensors"))
    (tmp_path / "cfg.json").write_text(
        json.dumps({"d_in": HIDDEN * 2, "d_sae": D_SAE, "architecture": "standard", "activation_fn": "relu"})
    )
    with pytest.raises(CheckpointError, match="SAE reads 64-wide states but the backbone's hidden size is 32"):
        SplareEncoder.from_components(bert_dir, tmp_path, layer=1, device="cpu", runtime="torch")


def test_config_errors(bert_dir: Path, tmp_path: Path) -> None:
    sae_dir = write_saelens(tmp_path / "sae", random_sae_tensors(HIDDEN, D_SAE), "topk")
    with pytest.raises(ConfigError, match="out of range"):
        SplareEncoder.from_components(bert_dir, sae_dir, layer=9, device="cpu", runtime="torch")
    with pytest.raises(ConfigError, match="document_top_k must be a positive integer"):
        SplareEncoder.from_components(bert_dir, sae_dir, layer=1, document_top_k=0, device="cpu", runtime="torch")
    encoder = SplareEncoder.from_components(bert_dir, sae_dir, layer=1, device="cpu", runtime="torch")
    with pytest.raises(ConfigError, match="defines no dense embedding"):
        encoder.encode(["x"], dense=True)


def test_fingerprint_tracks_what_changes_vectors(bert_dir: Path, tmp_path: Path) -> None:
    sae_dir = write_saelens(tmp_path / "sae", random_sae_tensors(HIDDEN, D_SAE), "topk")
    other_sae = write_saelens(tmp_path / "other", random_sae_tensors(HIDDEN, D_SAE, seed=9), "topk")
    base = SplareEncoder.from_components(bert_dir, sae_dir, layer=2, device="cpu", runtime="torch").fingerprint
    same = SplareEncoder.from_components(bert_dir, sae_dir, layer=2, device="cpu", runtime="torch").fingerprint
    assert base == same
    for changed in (
        SplareEncoder.from_components(bert_dir, sae_dir, layer=1, device="cpu", runtime="torch"),
        SplareEncoder.from_components(bert_dir, other_sae, layer=2, device="cpu", runtime="torch"),
        SplareEncoder.from_components(bert_dir, sae_dir, layer=2, document_top_k=100, device="cpu", runtime="torch"),
    ):
        assert changed.fingerprint["digest"] != base["digest"]


def test_fingerprint_is_stable_across_use_and_instances(
    bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sae_dir = write_saelens(tmp_path / "sae", random_sae_tensors(HIDDEN, D_SAE), "topk")
    used = SplareEncoder.from_components(bert_dir, sae_dir, layer=2, device="cpu", runtime="torch")
    used.encode_documents(SAMPLE_TEXTS)  # the tokenizer now carries truncation state
    fresh = SplareEncoder.from_components(bert_dir, sae_dir, layer=2, device="cpu", runtime="torch")
    # Each computed, not read from the fingerprint cache: one cache directory each.
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache-used"))
    used_fingerprint = used.fingerprint
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache-fresh"))
    assert used_fingerprint == fresh.fingerprint


def test_fingerprint_is_read_from_its_cache_until_a_file_changes(
    bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hashing the weights is skipped at a second load, and never when a file was rewritten."""
    import splare_connect.encoding.encoder as encoder_module

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    sae_dir = write_saelens(tmp_path / "sae", random_sae_tensors(HIDDEN, D_SAE), "topk")
    first = SplareEncoder.from_components(bert_dir, sae_dir, layer=2, device="cpu", runtime="torch").fingerprint
    assert list((tmp_path / "cache" / "fingerprints").glob("*.json"))
    compute = encoder_module.encoder_fingerprint
    calls = []
    monkeypatch.setattr(encoder_module, "encoder_fingerprint", lambda **parts: calls.append(1) or compute(**parts))
    assert SplareEncoder.from_components(bert_dir, sae_dir, layer=2, device="cpu", runtime="torch").fingerprint == first
    assert calls == []
    write_saelens(tmp_path / "sae", random_sae_tensors(HIDDEN, D_SAE, seed=9), "topk")  # new weights, same place
    changed = SplareEncoder.from_components(bert_dir, sae_dir, layer=2, device="cpu", runtime="torch").fingerprint
    assert calls == [1] and changed["digest"] != first["digest"]
    # Rewritten with its old size and modification time put back (as cp -p or rsync -t do):
    # still hashed again, because the change time moved.
    sae_files = sorted(path for path in sae_dir.rglob("*") if path.is_file())
    times = {path: (path.stat().st_atime_ns, path.stat().st_mtime_ns) for path in sae_files}
    write_saelens(tmp_path / "sae", random_sae_tensors(HIDDEN, D_SAE, seed=11), "topk")
    for path, (atime, mtime) in times.items():
        os.utime(path, ns=(atime, mtime))
    again = SplareEncoder.from_components(bert_dir, sae_dir, layer=2, device="cpu", runtime="torch").fingerprint
    assert calls == [1, 1] and again["digest"] not in {first["digest"], changed["digest"]}


def test_loading_prints_no_library_noise(bert_dir: Path, tmp_path: Path) -> None:
    """No progress bars or peft's deprecation warning from our own loading, in a fresh process."""
    import subprocess
    import sys

    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(load_backbone(bert_dir).model, LoraConfig(r=2, target_modules=["query"]))
    peft_model.save_pretrained(tmp_path / "lora", safe_serialization=True)
    write_saelens(tmp_path / "sae", random_sae_tensors(HIDDEN, D_SAE, seed=3), "topk")
    code = (
        "import warnings; warnings.simplefilter('always')\n"
        "from splare_connect import SplareEncoder\n"
        f"SplareEncoder.from_components({str(bert_dir)!r}, {str(tmp_path / 'sae')!r}, layer=3, "
        f"lora={str(tmp_path / 'lora')!r}, device='cpu').encode_documents(['hello'])\n"
        "import warnings; warnings.warn('the user still sees this', UserWarning)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Loading weights" not in result.stderr and "is_gradient_checkpointing" not in result.stderr
    assert "the user still sees this" in result.stderr


def test_bf16_encoders_work_and_bf16_weights_have_their_own_fingerprint(tiny_model_dir: Path) -> None:
    """GPU runs use bf16: weights loaded in bf16 (a vector space of their own), or fp32 weights under autocast."""
    text = ["copy files between hosts over ssh"]
    fp32 = SplareEncoder.from_pretrained(tiny_model_dir, device="cpu", runtime="torch")
    reference = fp32.encode(text, role="document").sparse[0]
    bf16_weights = SplareEncoder.from_pretrained(
        tiny_model_dir, device="cpu", runtime="torch", torch_dtype=torch.bfloat16
    )
    assert bf16_weights.fingerprint["digest"] != fp32.fingerprint["digest"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = fp32.encode(text, role="document").sparse[0]
    for vector in (bf16_weights.encode(text, role="document").sparse[0], autocast):
        assert vector.values.dtype == np.float32
        assert np.array_equal(vector.indices, reference.indices)
        np.testing.assert_allclose(vector.values, reference.values, rtol=0.02)
