#!/usr/bin/env bash
# Install splare-connect from this checkout into ./.venv: the README's "Install" line.
# torch is pinned so pip takes the CPU build (an unpinned torch pulls GBs of CUDA packages).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
pip install torch==2.13.0 -e ".[dev]" -e adapters/qdrant -e adapters/opensearch -e adapters/milvus
