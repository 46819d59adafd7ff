"""Shared pytest fixtures: the tiny real models and the example man pages.

The root tests and each adapter's tests bring them in from their ``conftest.py``::

    from splare_connect.testing.fixtures import *  # noqa: F403 (fixtures are found by name)

:func:`clean_environment` (imported by name) is the environment for a CLI run in a
subprocess that must not reach a server or a setting of the machine it runs on.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from splare_connect.testing.tiny_models import build_tiny_model_dir

__all__ = [
    "clean_environment",
    "example_records",
    "local_cluster",
    "other_tiny_encoder",
    "other_tiny_model_dir",
    "tiny_encoder",
    "tiny_model_dir",
]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def other_tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model_dir(tmp_path_factory.mktemp("other-model"), sae_seed=7, name="other")


@pytest.fixture(scope="session")
def tiny_encoder(tiny_model_dir: Path) -> Any:
    from splare_connect import SplareEncoder

    # torch at fp32, named: the tests' exact reference. The default runtime (the compiled
    # graph) is tested against it in test_openvino_runtime and through the CLI.
    return SplareEncoder.from_pretrained(tiny_model_dir, device="cpu", runtime="torch", precision="fp32")


@pytest.fixture(scope="session")
def other_tiny_encoder(other_tiny_model_dir: Path) -> Any:
    """An encoder of other weights: what a collection's fingerprint guard must refuse."""
    from splare_connect import SplareEncoder

    return SplareEncoder.from_pretrained(other_tiny_model_dir, device="cpu", runtime="torch", precision="fp32")


@pytest.fixture(scope="module")
def local_cluster() -> Iterator[None]:
    """A local Ray cluster of 2 CPUs for one test module (skipped without Ray)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=256 * 1024**2)
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def example_records(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    """Real man-page records from the project's examples/manpages.jsonl (skipped outside a checkout)."""
    corpus = Path(request.config.rootpath) / "examples" / "manpages.jsonl"
    if not corpus.exists():
        pytest.skip(f"{corpus} is not here: the example records ship with the source checkout")
    with corpus.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def clean_environment() -> dict[str, str]:
    """This process's environment without splare-connect's settings and any backend's location.

    Leaves out every ``SPLARE_*`` variable and every variable an installed backend's record
    names (``url_env``, ``secret_env``, ``basic_auth_env``), so a command run with it uses
    the default backend, embedded, whatever the machine's environment says.
    """
    from splare_connect.backends.discovery import installed_descriptors

    named: set[str] = set()
    for record in installed_descriptors():
        named.update(record.secret_env)
        named.update(record.basic_auth_env or ())
        if record.url_env:
            named.add(record.url_env)
    return {key: value for key, value in os.environ.items() if key not in named and not key.startswith("SPLARE_")}
