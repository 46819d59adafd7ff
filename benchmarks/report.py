"""What the benchmark scripts share: the encoders they compare, percentiles, and printing a
result as a table plus JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

# Encoder name -> SplareEncoder.from_pretrained options (CLI: --precision / --runtime).
CONTENDERS: dict[str, dict[str, str]] = {
    "torch-fp32": {},
    "torch-int8": {"precision": "int8"},
    "openvino-fp32": {"runtime": "openvino"},
}


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by rank: the value at position ``int(q * n)`` once sorted."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def print_and_save(result: Mapping[str, object], json_file: Path | None, *, digits: int = 3) -> None:
    """Print ``key  value`` lines (floats to ``digits`` places) and write the JSON if asked."""
    width = max(map(len, result))
    for key, value in result.items():
        shown = f"{value:.{digits}f}" if isinstance(value, float) else value
        print(f"{key:<{width}}  {shown}")
    if json_file:
        json_file.parent.mkdir(parents=True, exist_ok=True)
        json_file.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
