"""The encoder's tokenizer: read directly from tokenizer.json, the same as transformers builds it."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from splare_connect import CheckpointError, SplareEncoder
from splare_connect.encoding.backbone import load_backbone
from splare_connect.encoding.tokenization import TextTokenizer, load_tokenizer, plain_tokenizer_config
from splare_connect.testing.tiny_models import SAMPLE_TEXTS, build_tokenizer

TEXTS = ["passage: List files in a directory", "query:   copy   ", "", *SAMPLE_TEXTS]


def _reference(directory: Path) -> TextTokenizer:
    from transformers import AutoTokenizer

    return TextTokenizer.from_transformers(AutoTokenizer.from_pretrained(directory))


@pytest.fixture(params=["wordlevel", "sentencepiece"])
def tokenizer_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    build_tokenizer(tmp_path / "tokenizer", sentencepiece=request.param == "sentencepiece")
    return tmp_path / "tokenizer"


def _tokens(tokenizer: TextTokenizer, **options: object) -> list[tuple]:
    return [(e.ids, e.offsets, e.special_tokens_mask) for e in tokenizer.encode_batch(TEXTS, **options)]  # type: ignore[arg-type]


def test_a_plain_tokenizer_is_read_directly_and_equals_transformers(tokenizer_dir: Path) -> None:
    assert plain_tokenizer_config(tokenizer_dir) is not None
    direct, reference = load_tokenizer(str(tokenizer_dir)), _reference(tokenizer_dir)
    assert direct.identity() == reference.identity()
    assert (direct.pad_token_id, direct.model_max_length, direct.vocab_size) == (
        reference.pad_token_id,
        reference.model_max_length,
        reference.vocab_size,
    )
    for options in ({}, {"max_length": 4}, {"add_special_tokens": False}):
        assert _tokens(direct, **options) == _tokens(reference, **options), options
    # Cutting keeps the specials, as transformers' truncation=True does.
    assert all(len(e.ids) <= 4 and e.special_tokens_mask[-1] == 1 for e in direct.encode_batch(TEXTS, max_length=4))


def test_settings_transformers_would_apply_send_the_tokenizer_through_transformers(tokenizer_dir: Path) -> None:
    config_file = tokenizer_dir / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**config, "do_lower_case": False}))
    assert plain_tokenizer_config(tokenizer_dir) is None
    assert load_tokenizer(str(tokenizer_dir)).identity() == _reference(tokenizer_dir).identity()


def test_a_special_token_missing_from_the_vocabulary_is_left_to_transformers(tokenizer_dir: Path) -> None:
    config_file = tokenizer_dir / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**config, "mask_token": "[MASK]"}))  # not in tokenizer.json
    reference = _reference(tokenizer_dir)  # transformers adds [MASK] to the vocabulary
    for deferred in (False, True):
        loaded = load_tokenizer(str(tokenizer_dir), deferred=deferred)
        assert loaded.identity() == reference.identity()
        assert loaded.vocab_size == reference.vocab_size


def test_a_malformed_tokenizer_file_is_a_one_line_error(tokenizer_dir: Path) -> None:
    (tokenizer_dir / "tokenizer.json").write_text('{"model": {"type": "Unigram", "vocab": 7}}')
    with pytest.raises(CheckpointError, match=r"cannot read tokenizer .*tokenizer\.json") as raised:
        load_tokenizer(str(tokenizer_dir))
    assert "\n" not in str(raised.value)
    deferred = load_tokenizer(str(tokenizer_dir), deferred=True)  # nothing read yet...
    with pytest.raises(CheckpointError, match="cannot read tokenizer"):
        deferred.wait()  # ...the error comes with the build
    with pytest.raises(CheckpointError, match=r"^cannot read tokenizer"):  # said once, not re-wrapped by the loader
        load_backbone(tokenizer_dir)


def test_a_deferred_tokenizer_builds_on_first_use(tokenizer_dir: Path) -> None:
    deferred = load_tokenizer(str(tokenizer_dir), deferred=True)
    assert deferred.model_max_length == 24  # a fact from the config, no build needed
    assert deferred._build is not None
    assert _tokens(deferred) == _tokens(load_tokenizer(str(tokenizer_dir)))
    assert deferred._build is None


def test_threads_sharing_a_tokenizer_each_get_their_own_window(tokenizer_dir: Path) -> None:
    tokenizer = load_tokenizer(str(tokenizer_dir))
    long_text = " ".join(["files"] * 40)
    wrong: list[tuple[int | None, int]] = []

    def tokenize(max_length: int | None) -> None:
        for _ in range(200):
            [encoding] = tokenizer.encode_batch([long_text], max_length=max_length)
            if len(encoding.ids) != (max_length or 42):
                wrong.append((max_length, len(encoding.ids)))

    threads = [threading.Thread(target=tokenize, args=(limit,)) for limit in (None, 5, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not wrong


def test_a_cached_openvino_graph_loads_without_importing_transformers(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("openvino")
    from splare_connect.models.registry import CACHE_ENV

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    first = SplareEncoder.from_pretrained(tiny_model_dir, device="cpu", runtime="openvino")  # exports, checks
    expected = first.encode_queries(["list files"])[0]
    script = (
        "import sys\n"
        "from splare_connect import SplareEncoder\n"
        f"encoder = SplareEncoder.from_pretrained({str(tiny_model_dir)!r}, device='cpu', runtime='openvino')\n"
        "vector = encoder.encode_queries(['list files'])[0]\n"
        "print(sorted(vector.indices.tolist()), encoder.fingerprint['digest'], 'transformers' in sys.modules)\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=300
    ).stdout.split()
    assert output[-1] == "False"  # neither the tokenizer nor the config needed transformers
    assert output[-2] == first.fingerprint["digest"]
    assert json.loads("".join(output[:-2])) == sorted(expected.indices.tolist())


def test_a_special_token_in_the_vocabulary_but_not_registered_is_left_to_transformers(tmp_path: Path) -> None:
    """transformers registers a named special token found only in the vocabulary, which
    changes how text around it splits; the direct read must not differ from that."""
    build_tokenizer(tmp_path)
    config_file = tmp_path / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**config, "mask_token": "files"}))  # a plain vocabulary word
    reference = _reference(tmp_path)
    loaded = load_tokenizer(str(tmp_path))
    assert loaded.identity() == reference.identity()
    text = ["list files now"]
    assert [e.ids for e in loaded.encode_batch(text)] == [e.ids for e in reference.encode_batch(text)]
