"""Dependencies follow use: the core, the CLI and the adapters import without the training extra
(polib) and without tenacity, which the adapters' server backends need only when they retry."""

from __future__ import annotations

import subprocess
import sys

BLOCK = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("polib", "tenacity"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Block())
"""


def run_without_polib_and_tenacity(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", BLOCK + code], capture_output=True, text=True, timeout=300)


def test_package_cli_and_training_config_import_without_polib_or_tenacity() -> None:
    code = """
import splare_connect, splare_connect.cli, splare_connect.training.config
from typer.testing import CliRunner
for args in (["--help"], ["train", "--help"]):
    result = CliRunner().invoke(splare_connect.cli.app, args)
    assert result.exit_code == 0, (args, result.output)
print("ok")
"""
    result = run_without_polib_and_tenacity(code)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_adapters_import_without_tenacity() -> None:
    code = """
from importlib.metadata import entry_points
for entry_point in entry_points(group="splare_connect.backends"):
    entry_point.load()  # the adapter's package and its record
print("ok")
"""
    result = run_without_polib_and_tenacity(code)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_training_without_polib_says_what_to_install() -> None:
    code = """
from splare_connect.errors import MissingDependencyError
from splare_connect.training.parallel_text import read_message_catalogs
try:
    read_message_catalogs(["de"])
except MissingDependencyError as error:
    print(error)
"""
    result = run_without_polib_and_tenacity(code)
    assert result.returncode == 0 and "pip install 'splare-connect[training]'" in result.stdout, result.stderr
