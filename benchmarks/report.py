"""What the benchmark scripts share: the encoders they compare, percentiles, and printing a
result as a table plus JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# Encoder name -> SplareEncoder.from_pretrained options (CLI: --precision / --runtime).
# Named in full: the library's own default (runtime and precision "auto") is its own contender.
CONTENDERS: dict[str, dict[str, Any]] = {
    "torch-fp32": {"runtime": "torch", "precision": "fp32"},
    "default": {},
    "openvino-fp32": {"runtime": "openvino", "precision": "fp32"},
    "openvino-bf16": {"runtime": "openvino", "precision": "bf16"},
    "torch-int8": {"runtime": "torch", "precision": "int8"},
}


def cpu_flags() -> str:
    """The CPU's model name and the flags that decide its fast arithmetic, for every figure's record."""
    import platform

    try:
        info = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return platform.processor() or platform.machine()
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    flags = fields.get("flags\t\t", fields.get("flags", "")).split()
    model = " ".join(fields.get("model name\t", fields.get("model name", "")).split())
    wanted = [flag for flag in flags if flag.startswith(("avx", "amx")) or "vnni" in flag or "bf16" in flag]
    return f"{model}; {' '.join(wanted)}"


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
