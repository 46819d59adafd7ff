"""The named choices shared by the library, the backends and the CLI, one type each.

They are ``str`` enums: a member equals its value (``Fusion.RRF == "rrf"``), so plain
strings keep working everywhere, and Typer shows the values as the CLI's choices. This
module imports nothing heavy, so the CLI can use it for ``--help``.
"""

from __future__ import annotations

from enum import Enum


class _Choice(str, Enum):
    """A str enum that prints as its value (``str(Fusion.RRF) == "rrf"``)."""

    def __str__(self) -> str:
        return str(self.value)


class Fusion(_Choice):
    """How hybrid search fuses the sparse and dense rankings in the engine."""

    RRF = "rrf"  # reciprocal rank fusion, k sent explicitly
    DBSF = "dbsf"  # distribution-based score fusion
    WEIGHTED = "weighted"  # a weighted sum of each side's normalised scores


class HybridChoice(_Choice):
    """What ``--hybrid`` may say: a fusion, or ``none`` for plain sparse (over a collection's setting)."""

    RRF = "rrf"
    DBSF = "dbsf"
    WEIGHTED = "weighted"
    NONE = "none"


class Precision(_Choice):
    """The encoder's arithmetic (see :mod:`splare_connect.encoding.arithmetic`).

    auto is fp32; bf16 (faster where the CPU has bf16) shares fp32's vector space; int8
    (torch's dynamic quantization) has its own.
    """

    AUTO = "auto"
    FP32 = "fp32"
    BF16 = "bf16"
    INT8 = "int8"


class Runtime(_Choice):
    """What runs the encoder's forward pass: auto (the compiled graph on a CPU, torch on a GPU),
    torch op by op, or one compiled OpenVINO graph (CPU)."""

    AUTO = "auto"
    TORCH = "torch"
    OPENVINO = "openvino"


class Runner(_Choice):
    """What runs an ingest's encoding: this process, or a Ray cluster's encoder actors.

    Not to be confused with a database engine (Qdrant Edge, Milvus Lite ...), which is
    the backend's business.
    """

    LOCAL = "local"
    RAY = "ray"


class EvalSystem(_Choice):
    """A retrieval system ``splare-connect eval`` scores."""

    BM25 = "bm25"
    DENSE = "dense"
    SPARSE = "sparse"
    HYBRID = "hybrid"  # RRF, k=60
    HYBRID_DBSF = "hybrid-dbsf"  # distribution-based score fusion, as Qdrant's
