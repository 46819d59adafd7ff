"""Backend settings from --backend-option / $SPLARE_BACKEND_OPTIONS: declared by each backend, typed, checked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from splare_connect import ConfigError
from splare_connect.backends import load_backend
from splare_connect.backends.default import DEFAULT_BACKEND
from splare_connect.backends.descriptor import BackendDescriptor
from splare_connect.backends.discovery import describe_backend
from splare_connect.backends.options import BackendOption, parse_backend_options, read_bool, read_count
from splare_connect.cli.common import open_backend

DECLARED = {"replicas": BackendOption(read_count(0), "replicas"), "approximate": BackendOption(read_bool, "seismic")}


def test_pairs_become_typed_options() -> None:
    assert parse_backend_options(["replicas=0", "approximate = yes"], DECLARED, "x") == {
        "replicas": 0,
        "approximate": True,
    }


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("replicas", "must look like KEY=VALUE"),
        ("shards=2", "backend 'x' has no option 'shards'; its options: approximate, replicas"),
        ("replicas=-1", "replicas='-1': expected a whole number of at least 0"),
        ("replicas=two", "replicas='two'"),
        ("approximate=maybe", "expected true or false"),
    ],
)
def test_bad_pairs_are_one_line_config_errors(pair: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_backend_options([pair], DECLARED, "x")


def test_the_options_reach_the_factory_typed_with_the_locations_it_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record's declared options arrive typed; ``data_dir`` goes only to a factory that names it."""
    from splare_connect.backends import discovery, location

    received: dict[str, object] = {}
    opened = load_backend(DEFAULT_BACKEND, data_dir=tmp_path / "data")  # what the toy factory hands back

    def create(url: str | None = None, timeout: float | None = None, replicas: int = 1, approximate: bool = False):  # type: ignore[no-untyped-def]
        received.update(url=url, timeout=timeout, replicas=replicas, approximate=approximate)
        return opened

    record = BackendDescriptor(name="toy", distribution="toy", summary="a toy", create=create, options=DECLARED)
    for module in (discovery, location):
        monkeypatch.setattr(module, "describe_backend", lambda name: record)
    try:
        pairs = ["replicas=0", "approximate=yes"]
        assert open_backend("toy", "http://127.0.0.1:9", Path("ignored"), 0.5, pairs) is opened
    finally:
        opened.close()
    assert received == {"url": "http://127.0.0.1:9", "timeout": 0.5, "replicas": 0, "approximate": True}


def test_the_default_backend_is_held_to_the_options_its_record_declares(tmp_path: Path) -> None:
    known = ", ".join(sorted(describe_backend(DEFAULT_BACKEND).options)) or "none"
    with pytest.raises(ConfigError) as raised:
        open_backend(DEFAULT_BACKEND, None, tmp_path, None, ["bogus=1"])
    assert str(raised.value) == f"backend {DEFAULT_BACKEND!r} has no option 'bogus'; its options: {known}"


def test_cli_checks_options_before_loading_a_model(tmp_path: Path) -> None:
    env = {**os.environ, "SPLARE_MODEL": str(tmp_path / "no-such-model"), "SPLARE_BACKEND_OPTIONS": "bogus=1"}
    result = subprocess.run(
        [sys.executable, "-m", "splare_connect.cli", "search", "hi", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 1 and "has no option 'bogus'" in result.stderr and "no-such-model" not in result.stderr
