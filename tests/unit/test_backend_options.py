"""Backend settings from --backend-option / $SPLARE_BACKEND_OPTIONS: declared by each backend, typed, checked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from splare_connect import ConfigError
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


def test_the_options_reach_each_backend() -> None:
    pytest.importorskip("splare_connect_qdrant")
    pytest.importorskip("splare_connect_opensearch")
    qdrant = open_backend("qdrant", "http://127.0.0.1:9", None, 0.5, ["max_batch_points=7", "max_attempts=2"])
    assert qdrant.max_batch_points == 7 and qdrant.driver.retry.max_attempts == 2
    qdrant.close()
    opensearch = open_backend(
        "opensearch", "http://127.0.0.1:9", Path("ignored"), None, ["replicas=0", "two_phase=0.4,5,10000"]
    )
    assert opensearch.replicas == 0 and opensearch.two_phase == (0.4, 5.0, 10000)  # and data_dir was not passed
    opensearch.close()


def test_cli_checks_options_before_loading_a_model(tmp_path: Path) -> None:
    pytest.importorskip("splare_connect_qdrant")
    env = {**os.environ, "SPLARE_MODEL": str(tmp_path / "no-such-model"), "SPLARE_BACKEND_OPTIONS": "bogus=1"}
    result = subprocess.run(
        [sys.executable, "-m", "splare_connect.cli", "search", "hi", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 1 and "has no option 'bogus'" in result.stderr and "no-such-model" not in result.stderr
