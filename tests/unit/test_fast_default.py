"""The default path: the compiled graph at fp32 on a CPU, torch only when needed; bf16 by name.

Where a CPU lacks bf16, OpenVINO compiles a graph asked for at bf16 at f32 and the encoder
says so: the bf16 test accepts either outcome, and asserts the one this CPU gives.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from splare_connect import ConfigError, EncoderMismatchError, SplareEncoder
from splare_connect.backends.protocol import check_same_encoder
from splare_connect.encoding import arithmetic
from splare_connect.encoding.arithmetic import choose_arithmetic
from splare_connect.models.registry import CACHE_ENV
from splare_connect.testing.tiny_models import SAMPLE_TEXTS

pytest.importorskip("openvino")

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def model_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def _really_has_bf16() -> bool:
    import openvino

    return "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


# ------------------------------------------------------------------ the choice
@pytest.mark.parametrize(
    ("runtime", "precision", "device", "expected"),
    [
        ("auto", "auto", "cpu", ("openvino", "fp32")),
        ("auto", "bf16", "cpu", ("openvino", "bf16")),
        ("torch", "auto", "cpu", ("torch", "fp32")),
        ("auto", "int8", "cpu", ("torch", "int8")),
        ("torch", "bf16", "cpu", ("torch", "bf16")),
        ("auto", "auto", "cuda", ("torch", "fp32")),
        ("auto", "bf16", "cuda:1", ("torch", "bf16")),
    ],
)
def test_the_runtime_and_precision_are_chosen_by_device(
    runtime: str, precision: str, device: str, expected: tuple
) -> None:
    chosen = choose_arithmetic(runtime, precision, device)
    assert (chosen.runtime, chosen.precision) == expected
    assert chosen.note is None


def test_bf16_asked_on_a_cpu_without_it_is_fp32_from_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """Decided before anything loads: a lazy encoder records its precision in a collection first."""
    monkeypatch.setattr(arithmetic, "cpu_has_bf16", lambda: False)
    chosen = choose_arithmetic("openvino", "bf16", "cpu")
    assert chosen.precision == "fp32" and "no bf16 arithmetic" in str(chosen.note)
    monkeypatch.setattr(arithmetic, "cpu_has_bf16", lambda: True)
    assert choose_arithmetic("openvino", "bf16", "cpu") == arithmetic.Arithmetic("openvino", "cpu", "bf16", None)
    assert choose_arithmetic("torch", "bf16", "cpu").precision == "bf16"  # torch emulates it anywhere


def test_without_openvino_the_default_is_torch_with_one_line_saying_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(arithmetic, "openvino_installed", lambda: False)
    chosen = choose_arithmetic("auto", "auto", "cpu")
    assert (chosen.runtime, chosen.precision) == ("torch", "fp32")
    assert chosen.note is not None and "OpenVINO is not installed" in chosen.note and "\n" not in chosen.note
    with pytest.raises(ConfigError, match="needs the openvino package"):
        choose_arithmetic("openvino", "auto", "cpu")


@pytest.mark.parametrize(
    ("runtime", "precision", "device", "message"),
    [
        ("onnx", "auto", "cpu", "runtime must be one of"),
        ("auto", "fp16", "cpu", "precision must be one of"),
        ("openvino", "int8", "cpu", "dynamic quantization"),
        ("openvino", "auto", "cuda", "CPU path"),
        ("torch", "int8", "cuda", "CPU path"),
    ],
)
def test_choices_that_do_not_run_are_one_line_errors(runtime: str, precision: str, device: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        choose_arithmetic(runtime, precision, device)


# ------------------------------------------------------------- the encoder
def test_the_default_encoder_is_the_graph_and_gives_torchs_vectors(
    tiny_model_dir: Path, tiny_encoder: SplareEncoder, model_cache: Path
) -> None:
    default = SplareEncoder.from_pretrained(tiny_model_dir)
    assert (default.runtime, default.precision, default.device_type) == ("openvino", "fp32", "cpu")
    assert default.fingerprint == tiny_encoder.fingerprint
    for want, have in zip(
        tiny_encoder.encode_documents(SAMPLE_TEXTS), default.encode_documents(SAMPLE_TEXTS), strict=True
    ):
        np.testing.assert_array_equal(have.indices, want.indices)
        np.testing.assert_allclose(have.values, want.values, rtol=1e-5, atol=1e-6)


def test_bf16_is_the_same_vector_space_recorded_as_other_arithmetic(
    tiny_model_dir: Path, tiny_encoder: SplareEncoder, model_cache: Path
) -> None:
    encoder = SplareEncoder.from_pretrained(tiny_model_dir, precision="bf16")
    assert encoder.runtime == "openvino"
    if _really_has_bf16():
        assert encoder.precision == "bf16" and encoder.runtime_note is None
        assert encoder.fingerprint == {**tiny_encoder.fingerprint, "precision": "bf16"}
    else:  # where the CPU lacks bf16 the graph runs fp32, and the encoder says so
        assert encoder.precision == "fp32" and "no bf16 arithmetic" in str(encoder.runtime_note)
        assert "precision" not in encoder.fingerprint
    assert encoder.fingerprint["digest"] == tiny_encoder.fingerprint["digest"]
    for want, have in zip(
        tiny_encoder.encode_documents(SAMPLE_TEXTS), encoder.encode_documents(SAMPLE_TEXTS), strict=True
    ):
        overlap = len(set(have.indices.tolist()) & set(want.indices.tolist())) / max(1, want.nnz)
        assert overlap >= 0.8


def test_torch_at_bf16_computes_bf16_anywhere(tiny_model_dir: Path, tiny_encoder: SplareEncoder) -> None:
    """How bf16 quality is measured on a CPU without bf16: torch autocast emulates it."""
    bf16 = SplareEncoder.from_pretrained(tiny_model_dir, runtime="torch", precision="bf16")
    assert bf16.precision == "bf16" and bf16.fingerprint["digest"] == tiny_encoder.fingerprint["digest"]
    reference = tiny_encoder.encode_documents(SAMPLE_TEXTS)
    vectors = bf16.encode_documents(SAMPLE_TEXTS)
    assert any(not np.array_equal(a.values, b.values) for a, b in zip(vectors, reference, strict=True))
    for want, have in zip(reference, vectors, strict=True):  # the per-token top-k may flip a feature
        cosine = have.dot(want) / (np.linalg.norm(have.values) * np.linalg.norm(want.values))
        assert cosine > 0.9


def test_a_model_the_graph_cannot_take_falls_back_to_torch_when_the_runtime_was_chosen(
    tiny_model_dir: Path, model_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import openvino

    def unsupported(*_args: object, **_kwargs: object) -> None:
        raise TypeError("no conversion rule for aten::made_up")

    monkeypatch.setattr(openvino, "convert_model", unsupported)
    encoder = SplareEncoder.from_pretrained(tiny_model_dir)
    assert encoder.runtime == "torch" and "made_up" in str(encoder.runtime_note)
    assert encoder.encode_queries(["list files"])[0].nnz > 0
    with pytest.raises(ConfigError, match="made_up"):
        SplareEncoder.from_pretrained(tiny_model_dir, runtime="openvino")


def test_a_lazy_encoder_loads_nothing_until_it_encodes(tiny_model_dir: Path, model_cache: Path) -> None:
    encoder = SplareEncoder.from_pretrained(tiny_model_dir, lazy=True)
    assert encoder._inference is None and not encoder._backbone.model_loaded
    assert encoder.dim == 64 and encoder.has_dense
    assert encoder.encode_queries([]) == [] and encoder._inference is None  # nothing to encode: nothing loads
    assert encoder.encode_queries(["list files"])[0].nnz > 0
    assert encoder._inference is not None


# ------------------------------------------------------------ the guard
FP32 = {"name": "m", "digest": "a" * 32}
BF16 = {**FP32, "precision": "bf16"}
INT8_NOW = {"name": "m", "digest": "b" * 32, "weights_digest": "a" * 32, "precision": "int8"}
INT8_BEFORE = {"name": "m", "digest": "b" * 32, "precision": "int8"}  # written before weights_digest existed
OTHER = {"name": "m2", "digest": "c" * 32}
STATIC_QUERIES = {**FP32, "query_side": {"kind": "static", "digest": "d" * 32}}


@pytest.mark.parametrize(
    ("stored", "current", "note"),
    [
        (FP32, FP32, None),
        (FP32, BF16, "written at fp32; this encoder runs at bf16"),
        (BF16, FP32, "written at bf16; this encoder runs at fp32"),
        (INT8_BEFORE, INT8_NOW, None),
        (FP32, STATIC_QUERIES, None),
    ],
)
def test_same_weights_at_other_arithmetic_is_allowed_and_said(stored: dict, current: dict, note: str | None) -> None:
    said = check_same_encoder("kb", stored, current, remedy="r")
    assert said == note if note is None else note in str(said)


@pytest.mark.parametrize(
    ("stored", "current", "message"),
    [
        (FP32, OTHER, "was built by encoder 'm'"),
        (BF16, OTHER, "was built by encoder 'm' at bf16"),
        (INT8_BEFORE, FP32, "only precision int8 can tell"),
        (INT8_NOW, FP32, "written at int8 and this encoder runs at fp32: the same weights, but int8 vectors"),
        (FP32, INT8_NOW, "written at fp32 and this encoder runs at int8: the same weights, but int8 vectors"),
        (BF16, INT8_NOW, "use precision bf16"),
    ],
)
def test_other_weights_and_int8_mixtures_are_refused(stored: dict, current: dict, message: str) -> None:
    with pytest.raises(EncoderMismatchError, match=message):
        check_same_encoder("kb", stored, current, remedy="r")


def test_an_int8_fingerprint_keeps_its_digest_and_records_its_weights(
    tiny_model_dir: Path, tiny_encoder: SplareEncoder
) -> None:
    int8 = SplareEncoder.from_pretrained(tiny_model_dir, precision="int8")
    assert int8.runtime == "torch"
    assert int8.fingerprint["precision"] == "int8"
    assert int8.fingerprint["digest"] != tiny_encoder.fingerprint["digest"]
    assert int8.fingerprint["weights_digest"] == tiny_encoder.fingerprint["digest"]


# ------------------------------------------------- no torch once the graph is cached
def _run_python(code: str, cache: Path) -> dict:
    environment = {**os.environ, CACHE_ENV: str(cache), "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


_TORCH_FREE_SEARCH = """
import json, sys
from splare_connect.cli import main
sys.argv = ["splare-connect", "search", "copy files", "-c", "kb", "--data-dir", sys.argv[1], "--model", sys.argv[2],
            "--json"]
try:
    main()
except SystemExit as stop:
    assert not stop.code, stop.code
print(json.dumps({"torch": "torch" in sys.modules, "transformers": "transformers" in sys.modules}))
"""


def test_with_the_graph_cached_search_never_imports_torch(tiny_model_dir: Path, tmp_path: Path) -> None:
    cache, data = tmp_path / "cache", tmp_path / "data"
    records = tmp_path / "docs.jsonl"
    records.write_text("".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(SAMPLE_TEXTS)))
    ingest = (
        "import sys; from splare_connect.cli import main; "
        f"sys.argv = ['splare-connect', 'ingest', {str(records)!r}, '-c', 'kb', '--data-dir', {str(data)!r}, "
        f"'--model', {str(tiny_model_dir)!r}]\n"
        "try:\n    main()\nexcept SystemExit as stop:\n    assert not stop.code\n"
        "import json; print(json.dumps({'torch': 'torch' in sys.modules}))"
    )
    assert _run_python(ingest, cache)["torch"]  # the first run exports the graph: torch is needed once
    code = _TORCH_FREE_SEARCH.replace("sys.argv[1]", repr(str(data))).replace("sys.argv[2]", repr(str(tiny_model_dir)))
    assert _run_python(code, cache) == {"torch": False, "transformers": False}
    # An unchanged re-ingest loads neither the graph nor torch.
    again = ingest.replace("'torch' in sys.modules}", "'torch' in sys.modules, 'openvino': 'openvino' in sys.modules}")
    assert _run_python(again, cache) == {"torch": False, "openvino": False}
