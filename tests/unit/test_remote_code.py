"""A model directory can never turn on remote code; only the caller can (issue 12, defect 2).

The hostile directory is a real tiny model whose backbone ``config.json`` maps the Auto
classes to ``custom_model.py`` beside it (transformers' remote-code mechanism), and whose
``splare_config.json`` says ``"trust_remote_code": true``. Importing ``custom_model.py``
writes a marker file, so the tests see whether its code ran.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from splare_connect import CheckpointError, SplareEncoder
from splare_connect.encoding.config import EncoderConfig
from splare_connect.testing.tiny_models import build_tiny_model_dir

MARKER_ENV = "SPLARE_TEST_REMOTE_CODE_MARKER"

CUSTOM_MODEL = f'''
import os
from pathlib import Path

from transformers import BertConfig, BertModel

Path(os.environ["{MARKER_ENV}"]).write_text("custom code ran", encoding="utf-8")


class CustomConfig(BertConfig):
    model_type = "splare-test-custom"


class CustomModel(BertModel):
    config_class = CustomConfig
'''


def build_hostile_model_dir(directory: Path, *, known_model_type: bool) -> Path:
    """A tiny model directory whose backbone ships code and whose settings ask to run it.

    With ``known_model_type`` the backbone still says ``"model_type": "bert"`` (transformers
    can load it without the shipped code); otherwise only the shipped code can load it.
    """
    build_tiny_model_dir(directory, name=directory.name)
    backbone = directory / "backbone"
    (backbone / "custom_model.py").write_text(CUSTOM_MODEL, encoding="utf-8")
    config = json.loads((backbone / "config.json").read_text(encoding="utf-8"))
    config["auto_map"] = {"AutoConfig": "custom_model.CustomConfig", "AutoModel": "custom_model.CustomModel"}
    if not known_model_type:
        config["model_type"] = "splare-test-custom"
    (backbone / "config.json").write_text(json.dumps(config), encoding="utf-8")
    settings_file = directory / "splare_config.json"
    settings = json.loads(settings_file.read_text(encoding="utf-8"))
    settings["trust_remote_code"] = True
    settings_file.write_text(json.dumps(settings), encoding="utf-8")
    return directory


@pytest.fixture
def marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The file the shipped code writes; transformers' copy of that code goes under tmp_path."""
    import transformers.dynamic_module_utils as dynamic_modules

    monkeypatch.setattr(dynamic_modules, "HF_MODULES_CACHE", str(tmp_path / "hf-modules"))
    file = tmp_path / "remote-code-ran"
    monkeypatch.setenv(MARKER_ENV, str(file))
    return file


def test_settings_cannot_run_code_that_only_loads_with_it(tmp_path: Path, marker: Path) -> None:
    model_dir = build_hostile_model_dir(tmp_path / "custom-type", known_model_type=False)
    with (
        pytest.warns(
            UserWarning, match=r"splare_config\.json: ignoring \"trust_remote_code\": true.*--trust-remote-code"
        ),
        pytest.raises(CheckpointError, match=r"trust_remote_code=True \(CLI: --trust-remote-code\)"),
    ):
        SplareEncoder.from_pretrained(model_dir, device="cpu")
    assert not marker.exists()


def test_settings_cannot_run_code_of_a_known_architecture(tmp_path: Path, marker: Path) -> None:
    model_dir = build_hostile_model_dir(tmp_path / "bert-type", known_model_type=True)
    with pytest.warns(UserWarning, match='ignoring "trust_remote_code"'):
        encoder = SplareEncoder.from_pretrained(model_dir, device="cpu")
    assert not marker.exists()
    assert type(encoder.reader.model).__name__ == "BertModel"  # the library's class, not the shipped one
    assert encoder.encode_queries(["list the files"])[0].nnz > 0


@pytest.mark.parametrize("known_model_type", [False, True])
def test_the_caller_can_allow_remote_code(tmp_path: Path, marker: Path, known_model_type: bool) -> None:
    model_dir = build_hostile_model_dir(tmp_path / f"allowed-{known_model_type}", known_model_type=known_model_type)
    with pytest.warns(UserWarning, match='ignoring "trust_remote_code"'):
        encoder = SplareEncoder.from_pretrained(model_dir, device="cpu", trust_remote_code=True)
    assert marker.read_text(encoding="utf-8") == "custom code ran"
    assert type(encoder.reader.model).__name__ == "CustomModel"
    assert encoder.encode_queries(["list the files"])[0].nnz > 0


def test_old_settings_files_still_load(tiny_model_dir: Path, tmp_path: Path) -> None:
    # Earlier versions wrote every field, so model directories say "trust_remote_code": false.
    settings = json.loads((tiny_model_dir / "splare_config.json").read_text(encoding="utf-8"))
    assert "trust_remote_code" not in settings  # no longer written
    (tmp_path / "splare_config.json").write_text(json.dumps({**settings, "trust_remote_code": False}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert EncoderConfig.load(tmp_path) == EncoderConfig.load(tiny_model_dir)


def test_remote_code_is_no_encoder_setting(tiny_model_dir: Path) -> None:
    from splare_connect import ConfigError

    config = EncoderConfig.load(tiny_model_dir)
    with pytest.raises(ConfigError, match="unknown encoder settings"):
        config.with_overrides(trust_remote_code=True)
    allowed = SplareEncoder.from_pretrained(tiny_model_dir, device="cpu", trust_remote_code=True)
    assert allowed.fingerprint == SplareEncoder.from_pretrained(tiny_model_dir, device="cpu").fingerprint
