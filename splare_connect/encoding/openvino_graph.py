"""The encoder as one compiled OpenVINO graph: backbone, SAE, pooling and dense embedding.

Why: on a CPU, torch runs the encoder op by op, with Python between the ops and the
SAE stage (a 384 x 16,384 product, per-token top-k, max-pool) as separate kernels.
OpenVINO's CPU plugin compiles the whole pass into one graph (fused attention, fused
product and top-k). On the project's 2-core CPU at fp32 it encoded queries 2.3x as fast
as torch with the same vectors, but long (512-token) man pages only 1.04x as fast (see
BENCHMARKS.md). At fp32 the graph computes what :meth:`SplareEncoder.forward` does, up
to float rounding (and the choice among exactly tied activations), so it shares the
encoder's fingerprint: a collection written by one runtime is searched by the other.

The graph is exported once per encoder and kept on disk under the model cache,
keyed by the encoder's fingerprint digest and the OpenVINO version, so a changed
model never reuses a stale graph. OpenVINO's own compiled-blob cache sits beside it,
so a second load skips compilation as well. An export is checked against torch on
probe batches before it is kept; one that disagrees is refused, never used.

Nothing from the model directory is executed: the graph is traced from the loaded
torch modules, and OpenVINO's IR is an XML description plus a weights file.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from splare_connect.choices import Runtime
from splare_connect.errors import ConfigError
from splare_connect.pooling import GRAPH_TOKEN_BUDGET, pool_dense, pool_latents_padded
from splare_connect.quiet import quiet_tracing

if TYPE_CHECKING:
    import openvino

    from splare_connect.backbone import LayerReader
    from splare_connect.encoding.batching import EncoderBatch
    from splare_connect.sae import SparseAutoencoder

GRAPH_FILE = "encoder.xml"
CHECKED_FILE = "checked"

# How far a freshly exported graph may stray from torch on the probe batches. Dense
# embeddings agree to ~1e-7; pooled weights to ~1e-6, except where a tie between two
# activations at a token's k-th place resolves the other way, so a few weights may differ.
_DENSE_TOLERANCE = 1e-4
_WEIGHT_TOLERANCE = 1e-3
_DIFFERING_WEIGHTS_ALLOWED = 1e-3  # share of a probe batch's pooled weights


class EncoderGraph(nn.Module):
    """What is exported: token ids and masks in, pooled SAE weights (and dense) out.

    The same computation as :meth:`SplareEncoder.forward`, written with the padded
    pooling (:func:`~splare_connect.pooling.pool_latents_padded`) so it has no
    data-dependent shapes.
    """

    def __init__(self, reader: LayerReader, sae: SparseAutoencoder, dense_pooling: str) -> None:
        super().__init__()
        self.reader = reader
        self.sae = sae
        self.dense_pooling = dense_pooling

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, content_mask: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        states, last_hidden = self.reader(input_ids, attention_mask)
        pooled = pool_latents_padded(self.sae, states, content_mask)
        if self.dense_pooling == "none":
            return (pooled,)
        return pooled, pool_dense(last_hidden, attention_mask, self.dense_pooling)


class CompiledEncoderGraph:
    """A compiled encoder graph, called with the encoder's batches.

    Not thread-safe on its own (one inference request is reused);
    :class:`SplareEncoder` serialises its calls under its lock.
    """

    def __init__(self, compiled: openvino.CompiledModel, *, has_dense: bool, location: Path) -> None:
        self.compiled = compiled
        self.has_dense = has_dense
        self.location = location
        self._request = compiled.create_infer_request()

    def __call__(self, batch: EncoderBatch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(pooled, dense)`` for one batch, as :meth:`SplareEncoder.forward` returns them.

        Rows are fed in slices of at most :data:`GRAPH_TOKEN_BUDGET` padded tokens, which
        bounds the graph's activation buffers whatever the caller's batch size.
        """
        input_ids = batch.input_ids.cpu().numpy()
        attention = batch.attention_mask.cpu().numpy()
        content = batch.content_mask.cpu().numpy().astype(np.int64)
        rows_per_call = max(1, GRAPH_TOKEN_BUDGET // max(1, input_ids.shape[1]))
        pooled_parts, dense_parts = [], []
        for start in range(0, input_ids.shape[0], rows_per_call):
            rows = slice(start, start + rows_per_call)
            outputs = self._request.infer([input_ids[rows], attention[rows], content[rows]])
            pooled_parts.append(np.array(outputs[0], copy=True))
            if self.has_dense:
                dense_parts.append(np.array(outputs[1], copy=True))
        pooled = torch.from_numpy(np.concatenate(pooled_parts))
        dense = torch.from_numpy(np.concatenate(dense_parts)) if self.has_dense else None
        return pooled, dense


def check_runtime(runtime: str, precision: str, device: torch.device) -> str:
    """Validate a runtime for a precision and device; returns its plain name.

    The OpenVINO graph is a CPU path at fp32 for now: the int8 path is torch's own
    dynamic quantization, which OpenVINO does not take.
    """
    try:
        chosen = Runtime(runtime)
    except ValueError:
        raise ConfigError(f"runtime must be one of {[r.value for r in Runtime]}, got {runtime!r}") from None
    if chosen is Runtime.OPENVINO:
        if device.type != "cpu":
            raise ConfigError(f"runtime 'openvino' is a CPU path; on {device.type} use runtime='torch'")
        if precision != "fp32":
            raise ConfigError(f"runtime 'openvino' runs at fp32; precision {precision!r} needs runtime='torch'")
        openvino_version()
    return chosen.value


def openvino_version() -> str:
    """The installed OpenVINO's version, or a ConfigError saying how to install it."""
    try:
        import openvino
    except ImportError:
        raise ConfigError(
            "runtime 'openvino' needs the openvino package: pip install 'splare-connect[openvino]'"
        ) from None
    return str(openvino.get_version()).split("-")[0]


def load_graph(
    build_module: Callable[[], EncoderGraph],
    *,
    has_dense: bool,
    digest: str,
    reference: Callable[[EncoderBatch], tuple[torch.Tensor, torch.Tensor | None]],
    probe_batches: Callable[[], list[EncoderBatch]],
    cache_root: Path,
    threads: int,
    meanwhile: Callable[[], None] = lambda: None,
) -> CompiledEncoderGraph:
    """The compiled graph of an encoder: read from the cache, or exported, checked and cached.

    A cached graph that no longer compiles (a damaged file) is removed and exported again.
    Only an export needs the torch model (``build_module``), so a cached graph loads
    without the backbone's weights.

    Args:
        build_module: Builds the torch module to export (loads the backbone's weights).
        has_dense: Whether the graph also returns the dense embedding.
        digest: The encoder's fingerprint digest: the cache key, with the OpenVINO version.
        reference: The torch forward pass a new graph must agree with.
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
    version = openvino_version()
    location = cache_root / f"{digest}-openvino-{version}"
    probes: list[EncoderBatch] = []
    pending = meanwhile
    while True:  # at most twice: a damaged cached graph is removed, and the second pass exports
        exported = not (location / GRAPH_FILE).is_file()
        if exported:
            try:
                probes = probes or probe_batches()
                _export(build_module().eval(), probes[0], location)
            except Exception as exc:  # any conversion failure: this model stays on torch
                reason = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")[:200]
                raise ConfigError(
                    f"OpenVINO cannot export this model's graph ({type(exc).__name__}: {reason}); use runtime='torch'"
                ) from None
        try:
            graph = _compile(location, has_dense=has_dense, threads=threads, meanwhile=pending)
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
        _check(graph, reference, probes or probe_batches(), location)
        (location / CHECKED_FILE).write_text("outputs agree with torch on the probe batches\n", encoding="utf-8")
    return graph


def _compile(location: Path, *, has_dense: bool, threads: int, meanwhile: Callable[[], None]) -> CompiledEncoderGraph:
    """Compile the graph at ``location`` (from OpenVINO's blob cache when it is there),
    on a second thread while this one runs ``meanwhile``.

    Raises:
        _CompileError: OpenVINO cannot compile it (a damaged file); errors from
            ``meanwhile`` propagate as they are.
    """
    import openvino

    core = openvino.Core()
    core.set_property({"CACHE_DIR": str(location / "compiled")})
    graph_file = str(location / GRAPH_FILE)
    # f32: the CPU plugin would otherwise pick bf16 where the CPU has it, and change the vectors.
    settings = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": str(threads)}
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


class _CompileError(Exception):
    """OpenVINO could not compile a graph file; the cause is OpenVINO's error."""


def _export(module: EncoderGraph, example: EncoderBatch, location: Path) -> None:
    """Trace ``module`` on ``example`` and save it as IR at ``location``, atomically."""
    import openvino

    location.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{location.name}-", dir=location.parent))
    try:
        inputs = (example.input_ids.cpu(), example.attention_mask.cpu(), example.content_mask.cpu().long())
        with torch.no_grad(), quiet_tracing():
            model = openvino.convert_model(module, example_input=inputs, input=[openvino.PartialShape([-1, -1])] * 3)
        openvino.save_model(model, str(staging / GRAPH_FILE), compress_to_fp16=False)
        try:
            staging.rename(location)
        except OSError:
            if not (location / GRAPH_FILE).is_file():  # lost a race to a complete export: fine
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check(
    graph: CompiledEncoderGraph,
    reference: Callable[[EncoderBatch], tuple[torch.Tensor, torch.Tensor | None]],
    batches: list[EncoderBatch],
    location: Path,
) -> None:
    """Refuse (and delete) a graph whose outputs stray from the torch pass on the probe batches."""
    for batch in batches:
        with torch.inference_mode():
            expected_pooled, expected_dense = reference(batch)
        pooled, dense = graph(batch)
        differing = float((pooled - expected_pooled).abs().gt(_WEIGHT_TOLERANCE).float().mean())
        dense_error = 0.0 if dense is None or expected_dense is None else float((dense - expected_dense).abs().max())
        if differing > _DIFFERING_WEIGHTS_ALLOWED or dense_error > _DENSE_TOLERANCE:
            shutil.rmtree(location, ignore_errors=True)
            raise ConfigError(
                f"the OpenVINO graph disagrees with torch on a probe batch ({differing:.2%} of weights off, "
                f"dense off by {dense_error:.1e}); use runtime='torch' for this model"
            )
