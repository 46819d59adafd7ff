"""The OpenVINO runtime on a tiny real model: the same vectors as torch, cached, checked."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from splare_connect import CheckpointError, ConfigError, SplareEncoder
from splare_connect.encoding import graph_export, openvino_graph
from splare_connect.evaluation.corpus_cache import encode_corpus
from splare_connect.models.registry import CACHE_ENV
from splare_connect.testing.tiny_models import SAMPLE_TEXTS

pytest.importorskip("openvino")


@pytest.fixture
def model_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def openvino_encoder(tiny_model_dir: Path, model_cache: Path) -> Iterator[SplareEncoder]:
    yield SplareEncoder.from_pretrained(tiny_model_dir, device="cpu", runtime="openvino")


def _graph_dirs(cache: Path) -> list[Path]:
    return sorted(path for path in (cache / "compiled").iterdir() if not path.name.startswith("."))


def test_openvino_vectors_equal_torch_and_share_its_fingerprint(
    tiny_encoder: SplareEncoder, openvino_encoder: SplareEncoder
) -> None:
    assert "runtime=openvino" in repr(openvino_encoder)
    assert openvino_encoder.fingerprint == tiny_encoder.fingerprint
    texts = [*SAMPLE_TEXTS, "", "  \u200b "]
    for role in ("document", "query"):
        expected = tiny_encoder.encode(texts, role=role, dense=True, batch_size=3)
        got = openvino_encoder.encode(texts, role=role, dense=True, batch_size=3)
        for want, have in zip(expected.sparse, got.sparse, strict=True):
            np.testing.assert_array_equal(have.indices, want.indices)
            np.testing.assert_allclose(have.values, want.values, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got.dense, expected.dense, atol=1e-5)
        assert got.sparse[-1].nnz == 0 and got.sparse[-2].nnz == 0  # blank texts stay empty


def test_an_evaluation_does_not_read_the_other_runtimes_encodings(
    tiny_encoder: SplareEncoder, openvino_encoder: SplareEncoder, tmp_path: Path
) -> None:
    ids = [str(i) for i in range(len(SAMPLE_TEXTS))]
    encode_corpus(tiny_encoder, ids, SAMPLE_TEXTS, tmp_path / "eval")
    assert not encode_corpus(openvino_encoder, ids, SAMPLE_TEXTS, tmp_path / "eval").from_cache
    assert encode_corpus(openvino_encoder, ids, SAMPLE_TEXTS, tmp_path / "eval").from_cache


def test_a_batch_over_the_token_budget_is_fed_in_slices(
    tiny_encoder: SplareEncoder, openvino_encoder: SplareEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(openvino_graph, "GRAPH_TOKEN_BUDGET", 8)
    texts = SAMPLE_TEXTS * 3
    expected = tiny_encoder.encode_documents(texts, batch_size=len(texts))
    got = openvino_encoder.encode_documents(texts, batch_size=len(texts))
    for want, have in zip(expected, got, strict=True):
        np.testing.assert_array_equal(have.indices, want.indices)


def test_the_graph_is_exported_once_and_read_back(
    tiny_model_dir: Path, openvino_encoder: SplareEncoder, model_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    [location] = _graph_dirs(model_cache)
    assert location.name.startswith(openvino_encoder.fingerprint["digest"])
    assert (location / openvino_graph.GRAPH_FILE).is_file()

    def no_export(*_args: object) -> None:
        raise AssertionError("the cached graph was exported again")

    monkeypatch.setattr(graph_export, "_export", no_export)
    again = SplareEncoder.from_pretrained(tiny_model_dir, device="cpu", runtime="openvino")
    assert again.encode_queries(["list files"])[0] == openvino_encoder.encode_queries(["list files"])[0]
    # The graph and the cached fingerprint are all it needs: the backbone's weights stay on disk.
    assert not again._backbone.model_loaded
    assert again.fingerprint == openvino_encoder.fingerprint


def test_another_model_gets_its_own_graph(
    openvino_encoder: SplareEncoder, other_tiny_model_dir: Path, model_cache: Path
) -> None:
    SplareEncoder.from_pretrained(other_tiny_model_dir, device="cpu", runtime="openvino")
    assert len(_graph_dirs(model_cache)) == 2


def test_an_export_that_disagrees_with_torch_is_refused_and_removed(
    tiny_model_dir: Path, model_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As if the converter got the pooling wrong: the check against torch's pass catches it."""
    right = graph_export.pool_latents_padded
    monkeypatch.setattr(graph_export, "pool_latents_padded", lambda *args: right(*args) * 1.01)
    with pytest.raises(ConfigError, match="disagrees with torch"):
        SplareEncoder.from_pretrained(tiny_model_dir, device="cpu", runtime="openvino")
    assert _graph_dirs(model_cache) == []


def test_a_model_openvino_cannot_convert_is_a_one_line_error(
    tiny_model_dir: Path, model_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import openvino

    def unsupported(*_args: object, **_kwargs: object) -> None:
        raise TypeError("no conversion rule for aten::made_up\n  at some frame")

    monkeypatch.setattr(openvino, "convert_model", unsupported)
    with pytest.raises(ConfigError, match=r"cannot export .*TypeError: .*made_up.*runtime='torch'"):
        SplareEncoder.from_pretrained(tiny_model_dir, device="cpu", runtime="openvino")
    assert _graph_dirs(model_cache) == []


def test_a_damaged_cached_graph_is_exported_again(
    tiny_model_dir: Path, openvino_encoder: SplareEncoder, model_cache: Path
) -> None:
    [location] = _graph_dirs(model_cache)
    weights = location / "encoder.bin"
    data = weights.read_bytes()
    weights.unlink()  # a new file, not truncated in place: the live encoder above maps the old one
    weights.write_bytes(data[: len(data) // 2])
    again = SplareEncoder.from_pretrained(tiny_model_dir, device="cpu", runtime="openvino")
    assert again.encode_queries(["list files"])[0] == openvino_encoder.encode_queries(["list files"])[0]
    assert (location / openvino_graph.CHECKED_FILE).is_file()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"runtime": "onnx"}, "runtime must be one of"),
        ({"runtime": "openvino", "precision": "int8"}, "dynamic quantization"),
    ],
)
def test_bad_runtime_choices_are_one_line_errors(tiny_model_dir: Path, options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SplareEncoder.from_pretrained(tiny_model_dir, device="cpu", **options)


def test_a_broken_tokenizer_is_a_load_error_on_the_openvino_runtime(
    tiny_model_dir: Path, openvino_encoder: SplareEncoder, tmp_path: Path
) -> None:
    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "backbone" / "tokenizer.json").write_text('{"model": {"type": "Unigram", "vocab": 7}}')
    with pytest.raises(CheckpointError, match="cannot read tokenizer"):
        SplareEncoder.from_pretrained(broken, device="cpu", runtime="openvino")


def test_work_done_while_the_graph_compiles_keeps_its_own_errors(
    openvino_encoder: SplareEncoder, model_cache: Path
) -> None:
    """The tokenizer is built while the cached graph compiles on another thread; an error
    there is raised as it is, and the cached graph is not taken for a damaged one."""
    [location] = _graph_dirs(model_cache)

    def failing_tokenizer_build() -> None:
        raise CheckpointError("cannot read tokenizer")

    with pytest.raises(CheckpointError, match="cannot read tokenizer"):
        openvino_graph.load_graph(
            lambda: pytest.fail("a cached graph was exported"),  # type: ignore[arg-type,return-value]
            has_dense=True,
            digest=openvino_encoder.fingerprint["digest"],
            precision="fp32",
            reference=openvino_encoder.forward,
            probe_batches=lambda: pytest.fail("a checked graph was probed"),  # type: ignore[arg-type,return-value]
            cache_root=model_cache / "compiled",
            threads=1,
            meanwhile=failing_tokenizer_build,
        )
    assert (location / openvino_graph.GRAPH_FILE).is_file()
    assert (location / openvino_graph.CHECKED_FILE).is_file()


def test_the_cache_holds_the_graph_alone_and_an_old_blob_folder_goes(
    tiny_model_dir: Path, openvino_encoder: SplareEncoder, model_cache: Path
) -> None:
    """OpenVINO's compiled blob doubled the cache for 0.2 s of load time: it is no longer kept."""
    [location] = _graph_dirs(model_cache)
    assert sorted(path.name for path in location.iterdir()) == ["checked", "encoder.bin", "encoder.xml"]
    old_blob = location / "compiled" / "1234.blob"
    old_blob.parent.mkdir()
    old_blob.write_bytes(b"left by an older version")
    SplareEncoder.from_pretrained(tiny_model_dir, device="cpu", runtime="openvino")
    assert not old_blob.parent.exists()
