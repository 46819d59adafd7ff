"""The integration examples run as a user runs them: offline, the default model, each in its own process.

Each script prints its top results; the page that answers each example question must
be among them (the questions are chosen so that one page clearly answers each). Most print
three; attach_hybrid prints five, because its equal-weight RRF (k=60) puts chmod.1 fourth
for the German question with the default model of 2026-12-01 (its sparse side ranks the
page seventh of 40: the page speaks of "mode bits", not permissions), second with the
model before.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from splare_connect.testing.fixtures import clean_environment

pytestmark = pytest.mark.default_model

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXPECTED = {
    "attach_hybrid.py": ["rm.1", "chmod.1", "grep.1"],
    "langchain_hybrid.py": ["rm.1", "chmod.1", "grep.1"],
    "llamaindex_hybrid.py": ["tar.1", "xzgrep.1", "inotify.7"],
    "haystack_hybrid.py": ["tar.1", "xzgrep.1", "inotify.7"],
}


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_example_runs_and_finds_the_answering_pages(script: str, tmp_path: Path) -> None:
    env = clean_environment()
    env["HAYSTACK_TELEMETRY_ENABLED"] = "False"
    run = subprocess.run(
        [sys.executable, str(EXAMPLES / script)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900
    )
    assert run.returncode == 0, run.stderr[-2000:]
    for page in EXPECTED[script]:
        assert page in run.stdout, f"{page} not among {script}'s results:\n{run.stdout}"
