"""The int8 fast CPU path on a tiny real model: same vector space, int8 kernels, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from splare_connect import ConfigError, SplareEncoder
from splare_connect.evaluation.corpus_cache import encode_corpus
from splare_connect.testing.tiny_models import SAMPLE_TEXTS


@pytest.fixture(scope="module")
def int8_encoder(tiny_model_dir: Path) -> SplareEncoder:
    return SplareEncoder.from_pretrained(tiny_model_dir, device="cpu", precision="int8")


def test_int8_runs_the_linear_layers_and_the_sae_as_int8_kernels(int8_encoder: SplareEncoder) -> None:
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

    kinds = {type(module) for module in int8_encoder.reader.model.modules()}
    assert DynamicInt8Linear in kinds
    assert torch.nn.Linear not in kinds
    assert isinstance(int8_encoder.sae.int8_encoder.linear, DynamicInt8Linear)
    assert "precision=int8" in repr(int8_encoder)


def test_int8_vectors_stay_close_to_fp32(tiny_encoder: SplareEncoder, int8_encoder: SplareEncoder) -> None:
    for fp32, int8 in zip(
        tiny_encoder.encode_documents(SAMPLE_TEXTS), int8_encoder.encode_documents(SAMPLE_TEXTS), strict=True
    ):
        cosine = fp32.dot(int8) / (np.linalg.norm(fp32.values) * np.linalg.norm(int8.values))
        assert cosine > 0.95
        shared = set(fp32.top_k(5).indices.tolist()) & set(int8.top_k(5).indices.tolist())
        assert len(shared) >= 3
    fp32_dense = tiny_encoder.encode(SAMPLE_TEXTS, dense=True).dense
    int8_dense = int8_encoder.encode(SAMPLE_TEXTS, dense=True).dense
    assert np.min(np.sum(fp32_dense * int8_dense, axis=1)) > 0.98


def test_int8_has_its_own_fingerprint(tiny_encoder: SplareEncoder, int8_encoder: SplareEncoder) -> None:
    """Mixing int8 queries with fp32 documents costs quality, so collections are tied to one precision."""
    assert int8_encoder.fingerprint["digest"] != tiny_encoder.fingerprint["digest"]
    assert int8_encoder.fingerprint["precision"] == "int8"
    assert "precision" not in tiny_encoder.fingerprint  # fp32 fingerprints are as before


def test_an_fp32_collection_refuses_int8_queries_of_the_same_weights(
    tiny_encoder: SplareEncoder, int8_encoder: SplareEncoder, tmp_path: Path
) -> None:
    """int8 moves vectors too far to mix with fp32 ones: refused, saying the weights are the same."""
    from splare_connect import EncoderMismatchError
    from splare_connect.backends import load_backend
    from splare_connect.backends.default import DEFAULT_BACKEND
    from splare_connect.documents import read_iterable
    from splare_connect.retriever import Retriever
    from splare_connect.sync import Syncer

    backend = load_backend(DEFAULT_BACKEND, data_dir=tmp_path / "data")
    Syncer(tiny_encoder, backend, "docs").run(
        read_iterable({"id": f"d{i}", "text": t} for i, t in enumerate(SAMPLE_TEXTS))
    )
    with pytest.raises(EncoderMismatchError, match=r"the same weights, but int8 vectors .* use precision fp32"):
        Retriever(int8_encoder, backend, "docs")
    assert Retriever(tiny_encoder, backend, "docs").arithmetic_note is None
    backend.close()


def test_the_eval_cache_keeps_precisions_apart(
    tiny_encoder: SplareEncoder, int8_encoder: SplareEncoder, tmp_path: Path
) -> None:
    ids = [f"d{i}" for i in range(len(SAMPLE_TEXTS))]
    encode_corpus(tiny_encoder, ids, SAMPLE_TEXTS, tmp_path)
    assert not encode_corpus(int8_encoder, ids, SAMPLE_TEXTS, tmp_path).from_cache
    assert len(list(tmp_path.glob("*.npz"))) == 2
    assert encode_corpus(int8_encoder, ids, SAMPLE_TEXTS, tmp_path).from_cache


def test_bad_precision_is_refused_with_the_choices(tiny_model_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"precision must be one of .*'int4'"):
        SplareEncoder.from_pretrained(tiny_model_dir, device="cpu", precision="int4")


def test_int8_is_a_cpu_path(tiny_model_dir: Path) -> None:
    with pytest.raises(ConfigError, match="CPU path"):
        SplareEncoder.from_pretrained(tiny_model_dir, device="cuda", precision="int8")


def test_the_fast_path_runs_a_trace_with_the_eager_outputs(int8_encoder: SplareEncoder) -> None:
    traced = int8_encoder._traced_reader
    assert isinstance(traced, torch.jit.ScriptModule)
    for batch in int8_encoder.iter_batches([*SAMPLE_TEXTS, "a much longer text " * 9], role="document", batch_size=3):
        with torch.inference_mode():
            expected, got = (
                int8_encoder.reader(batch.input_ids, batch.attention_mask),
                traced(batch.input_ids, batch.attention_mask),
            )
        assert all(torch.equal(a, b) for a, b in zip(expected, got, strict=True))


class ShapeDependentReader(torch.nn.Module):
    """Branches in Python on the sequence length: a trace would freeze one branch."""

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        states = ids.float().unsqueeze(-1) * (2.0 if ids.shape[1] > 10 else 3.0)
        return states, states * mask.unsqueeze(-1)


def test_a_trace_that_disagrees_with_eager_mode_is_dropped() -> None:
    from splare_connect.encoding.quantization import trace_reader

    with pytest.warns(UserWarning, match="stays in eager mode"):
        assert trace_reader(ShapeDependentReader(), vocab_size=100) is None
