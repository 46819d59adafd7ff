#!/usr/bin/env bash
# Install, then the main job, offline: ingest the 307 example man pages into the embedded
# Qdrant engine with the default model, and search them in English and German.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
. .venv/bin/activate
splare-connect ingest examples/manpages.jsonl --collection manpages --index-field section
splare-connect search "copy files and directories" --collection manpages -k 5
splare-connect search "Dateien und Verzeichnisse kopieren" --collection manpages -k 5 --documents
