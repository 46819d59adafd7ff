"""The encoder as one compiled OpenVINO graph: load it from the cache and run it, without torch.

Why: on a CPU, torch runs the encoder op by op, with Python between the ops and the
SAE stage (a 384 x 16,384 product, per-token top-k, max-pool) as separate kernels.
OpenVINO's CPU plugin compiles the whole pass into one graph (fused attention, fused
product and top-k), and it is the default runtime on a CPU. At fp32 the graph computes
what :meth:`SplareEncoder.forward` does, up to float rounding (and the choice among
exactly tied activations), so it shares the encoder's fingerprint. On a CPU with bf16
arithmetic (``avx512_bf16``, AMX) it may be compiled at bf16 instead: the same weights,
other arithmetic (see :mod:`splare_connect.encoding.arithmetic`).

The graph is exported once per encoder and kept on disk under the model cache, keyed
by the encoder's fingerprint digest and the OpenVINO version, so a changed model never
reuses a stale graph. Exporting needs torch (:mod:`.graph_export`); loading and running a
cached graph needs only OpenVINO and numpy, which is what keeps the serving path free of
torch. OpenVINO's compiled blob is not cached: it saved about 0.2 s of a 0.4 s compile
and doubled the cache (473 MB more for the default model); an older cache's blob folder
is removed when its graph is next loaded.

Nothing from the model directory is executed: the graph is traced from the loaded
torch modules, and OpenVINO's IR is an XML description plus a weights file.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from splare_connect.errors import ConfigError

if TYPE_CHECKING:
    import openvino
    from torch import nn

    from splare_connect.encoding.token_batches import EncoderBatch

GRAPH_FILE = "encoder.xml"
CHECKED_FILE = "checked"
_OLD_BLOB_FOLDER = "compiled"  # where versions before 0.2 kept OpenVINO's compiled blob

# Padded tokens (batch x seq) per call of a compiled graph: bounds its (tokens x d_sae)
# pre-activation and activation buffers (~256 MB at 16k latents).
GRAPH_TOKEN_BUDGET = 2048

# OpenVINO's names for the arithmetic a graph is compiled at, and ours.
_HINTS = {"fp32": "f32", "bf16": "bf16"}
_PRECISION_OF_TYPE = {"f32": "fp32", "float32": "fp32", "bf16": "bf16", "bfloat16": "bf16", "float16": "fp16"}

Arrays = tuple[npt.NDArray[np.float32], "npt.NDArray[np.float32] | None"]


class CompiledEncoderGraph:
    """A compiled encoder graph, called with the encoder's batches.

    One inference request with every thread runs each slice. A profile of 64 man pages at
    bf16 put inference at 99.3 % of the time (tokenizing 0.6 %, pruning under 0.1 %), so
    tokenizing is not overlapped; OpenVINO's throughput mode (two streams, asynchronous
    requests) encoded 1.04-1.05x as many pages per second on a quiet 2-core CPU, too little
    for a second compiled graph in memory.

    Not thread-safe on its own (one request is reused); :class:`SplareEncoder` serialises
    its calls under its lock.

    Attributes:
        precision: The arithmetic OpenVINO reports it compiled the graph at (``"fp32"``
            or ``"bf16"``), which may differ from what was asked where the CPU lacks bf16.
    """

    def __init__(self, compiled: openvino.CompiledModel, *, has_dense: bool, location: Path) -> None:
        self.compiled = compiled
        self.has_dense = has_dense
        self.location = location
        self.precision = _compiled_precision(compiled)
        self._request = compiled.create_infer_request()

    def __call__(self, batch: EncoderBatch) -> Arrays:
        """``(pooled, dense)`` for one batch, as numpy arrays shaped as :meth:`SplareEncoder.forward`'s.

        Rows are fed in slices of at most :data:`GRAPH_TOKEN_BUDGET` padded tokens, which
        bounds the graph's activation buffers whatever the caller's batch size.
        """
        input_ids = np.asarray(batch.input_ids, np.int64)
        attention = np.asarray(batch.attention_mask, np.int64)
        content = np.asarray(batch.content_mask).astype(np.int64)
        rows_per_call = max(1, GRAPH_TOKEN_BUDGET // max(1, input_ids.shape[1]))
        pooled_parts, dense_parts = [], []
        for start in range(0, input_ids.shape[0], rows_per_call):
            rows = slice(start, start + rows_per_call)
            outputs = self._request.infer([input_ids[rows], attention[rows], content[rows]])
            pooled_parts.append(np.array(outputs[0], np.float32, copy=True))
            if self.has_dense:
                dense_parts.append(np.array(outputs[1], np.float32, copy=True))
        pooled = np.concatenate(pooled_parts)
        dense = np.concatenate(dense_parts) if self.has_dense else None
        return pooled, dense


def openvino_version() -> str:
    """The installed OpenVINO's version, or a ConfigError saying how to install it."""
    try:
        import openvino
    except ImportError:
        raise ConfigError(
            "runtime 'openvino' needs the openvino package, which has no wheel for this platform or Python; "
            "use runtime='torch'"
        ) from None
    return str(openvino.get_version()).split("-")[0]


def graph_location(cache_root: Path, digest: str) -> Path:
    """Where the graph of the encoder with fingerprint ``digest`` is cached, for this OpenVINO."""
    return cache_root / f"{digest}-openvino-{openvino_version()}"


def load_graph(
    build_module: Callable[[], nn.Module],
    *,
    has_dense: bool,
    digest: str,
    precision: str,
    reference: Callable[[EncoderBatch], Any],
    probe_batches: Callable[[], list[EncoderBatch]],
    cache_root: Path,
    threads: int,
    meanwhile: Callable[[], None] = lambda: None,
) -> CompiledEncoderGraph:
    """The compiled graph of an encoder: read from the cache, or exported, checked and cached.

    A cached graph that no longer compiles (a damaged file) is removed and exported again.
    Only an export (and the check of a new graph) needs torch and the model's weights
    (``build_module``, ``reference``), so a cached, checked graph loads without either.

    Args:
        build_module: Builds the torch module to export (loads the backbone's weights).
        has_dense: Whether the graph also returns the dense embedding.
        digest: The encoder's fingerprint digest: the cache key, with the OpenVINO version.
        precision: ``"fp32"`` or ``"bf16"``: the arithmetic to compile the graph at.
        reference: The torch forward pass a new graph must agree with (at fp32).
        probe_batches: Makes the batches an export is traced on (the first) and checked
            on (all); called only when a graph is exported or not yet checked, so a cached
            graph compiles without waiting for the tokenizer.
        cache_root: Directory holding one folder per cached graph.
        threads: CPU threads the graph may use.
        meanwhile: Work to do on this thread while the graph compiles on another (the
            compile releases the GIL, so the two overlap); done exactly once.

    Raises:
        ConfigError: OpenVINO is missing, or a fresh export fails to compile or
            disagrees with ``reference``.
    """
    location = graph_location(cache_root, digest)
    shutil.rmtree(location / _OLD_BLOB_FOLDER, ignore_errors=True)
    probes: list[EncoderBatch] = []
    pending = meanwhile
    while True:  # at most twice: a damaged cached graph is removed, and the second pass exports
        exported = not (location / GRAPH_FILE).is_file()
        if exported:
            from splare_connect.encoding.graph_export import export_graph

            probes = probes or probe_batches()
            export_graph(build_module, probes[0], location / GRAPH_FILE)
        # A graph not yet checked is compiled at fp32 first: that is where it must match torch.
        compiled_at = "fp32" if not (location / CHECKED_FILE).is_file() else precision
        try:
            graph = _compile(location, compiled_at, has_dense, threads, pending)
            break
        except _CompileError as failure:
            pending = lambda: None  # noqa: E731 - done during the failed compile
            shutil.rmtree(location, ignore_errors=True)
            if exported:
                exc = failure.__cause__
                reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
                raise ConfigError(
                    f"OpenVINO cannot compile this model's graph ({reason}); use runtime='torch'"
                ) from None
    if not (location / CHECKED_FILE).is_file():
        from splare_connect.encoding.graph_export import check_graph

        check_graph(graph, reference, probes or probe_batches(), location)
        (location / CHECKED_FILE).write_text("outputs agree with torch on the probe batches\n", encoding="utf-8")
    if compiled_at != precision:
        try:
            graph = _compile(location, precision, has_dense, threads, lambda: None)
        except _CompileError as failure:
            raise ConfigError(
                f"OpenVINO cannot compile this model's graph at {precision} ({failure.__cause__})"
            ) from None
    return graph


def _compile(
    location: Path, precision: str, has_dense: bool, threads: int, meanwhile: Callable[[], None]
) -> CompiledEncoderGraph:
    """Compile the graph at ``location`` at ``precision``, on a second thread while this one
    runs ``meanwhile``.

    Raises:
        _CompileError: OpenVINO cannot compile it (a damaged file); errors from
            ``meanwhile`` propagate as they are.
    """
    import openvino

    core = openvino.Core()
    graph_file = str(location / GRAPH_FILE)
    # Always stated: the CPU plugin would otherwise pick bf16 by itself where the CPU has it.
    settings = {"INFERENCE_PRECISION_HINT": _HINTS[precision], "INFERENCE_NUM_THREADS": str(threads)}
    compiled: list[openvino.CompiledModel] = []
    failed: list[BaseException] = []
    # Set just before the compile call: if this thread began ``meanwhile`` earlier, a
    # ``meanwhile`` that holds the GIL (a tokenizer build) would keep the compile from starting.
    compiling_now = threading.Event()

    def compile_graph() -> None:
        try:
            compiling_now.set()
            compiled.append(core.compile_model(graph_file, "CPU", settings))
        except BaseException as exc:  # re-raised on the calling thread below
            failed.append(exc)

    compiling = threading.Thread(target=compile_graph, name="splare-connect-compile", daemon=True)
    compiling.start()
    try:
        compiling_now.wait()
        meanwhile()
    finally:
        compiling.join()
    if failed and isinstance(failed[0], RuntimeError):  # how OpenVINO reports an unreadable graph
        raise _CompileError() from failed[0]
    if failed:
        raise failed[0]
    return CompiledEncoderGraph(compiled[0], has_dense=has_dense, location=location)


def _compiled_precision(compiled: openvino.CompiledModel) -> str:
    """The arithmetic OpenVINO says it compiled at, in our names (``"fp32"``, ``"bf16"``)."""
    reported = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
    name = reported.rsplit(":", 1)[-1].strip(" '<>").lower()
    return _PRECISION_OF_TYPE.get(name, "fp32")


class _CompileError(Exception):
    """OpenVINO could not compile a graph file; the cause is OpenVINO's error."""
