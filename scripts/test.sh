#!/usr/bin/env bash
# Install, then run the whole test suite (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
. .venv/bin/activate
# The linter and the type checker first: both must be clean (pyproject.toml configures them).
ruff check splare_connect adapters tests benchmarks training experiments scripts
ruff format --check splare_connect adapters tests benchmarks
python -m mypy
python -m pytest -q
