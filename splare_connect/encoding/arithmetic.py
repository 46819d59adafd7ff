"""Which runtime runs the encoder and at what arithmetic: chosen from the device.

The defaults are ``runtime="auto"`` and ``precision="auto"``:

- **Runtime.** On a CPU, the compiled OpenVINO graph (the same vectors as torch at fp32,
  faster); torch where OpenVINO is not installed (it has no wheel for every platform and
  Python) or cannot take the model, with a note saying so. On a GPU, torch.
- **Precision.** fp32. bf16 is opt-in (``precision="bf16"``): on a CPU with bf16
  arithmetic (``avx512_bf16``, AMX) the graph encodes documents about 1.5x as fast, with
  the same weights and so the same vector space, but on the whole man-page dev collection
  its sparse quality fell 1.0 % on average over the query sets and 3.4 % on the Spanish
  set (dense and hybrid stayed within 1 %; BENCHMARKS.md). That misses the bar a default
  must meet (the mean within 1 %, no set more than 2 % below), so bf16 stays a choice. int8
  (torch's dynamic quantization) moves vectors further and keeps a vector space of its own.

On torch, ``"bf16"`` runs the model under bf16 autocast, which any CPU computes (slowly
where it lacks the instructions): that is how bf16 quality is measured on any machine. On
the graph, bf16 asked on a CPU without it runs fp32, and the encoder says so.

Nothing here imports torch unless a GPU may be present.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from splare_connect.choices import Precision, Runtime
from splare_connect.errors import ConfigError

# Device nodes whose presence means torch may see a GPU (NVIDIA's, AMD's ROCm): only then
# is torch imported to ask.
_GPU_DEVICE_NODES = ("/dev/nvidiactl", "/dev/kfd")


@dataclass(frozen=True)
class Arithmetic:
    """What runs an encoder: the runtime, the device type, the precision, and why.

    Attributes:
        runtime: ``"torch"`` or ``"openvino"``.
        device: ``"cpu"``, ``"cuda"``... (a device string torch accepts).
        precision: ``"fp32"``, ``"bf16"`` or ``"int8"``: what was chosen or asked for.
            The OpenVINO runtime reports what it compiled at once the graph is loaded
            (``SplareEncoder.precision``).
        note: One line saying why a slower path than asked or expected was taken, or ``None``.
    """

    runtime: str
    device: str
    precision: str
    note: str | None = None


def choose_arithmetic(runtime: str, precision: str, device: str | None) -> Arithmetic:
    """Resolve ``"auto"`` choices and validate named ones.

    Args:
        runtime: ``"auto"``, ``"torch"`` or ``"openvino"``.
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"int8"``.
        device: A device string (``"cpu"``, ``"cuda:1"``) or ``None`` (a GPU when torch
            sees one, else the CPU).

    Raises:
        ConfigError: An unknown runtime or precision, or a combination that does not run
            (OpenVINO off the CPU or at int8; int8 on a GPU).
    """
    chosen_runtime = _member(Runtime, runtime, "runtime")
    chosen_precision = _member(Precision, precision, "precision")
    device = str(device) if device is not None else _default_device()
    device_type = device.split(":")[0]
    note = None
    if chosen_runtime is Runtime.AUTO:
        if device_type != "cpu" or chosen_precision is Precision.INT8:
            chosen_runtime = Runtime.TORCH
        elif openvino_installed():
            chosen_runtime = Runtime.OPENVINO
        else:
            chosen_runtime = Runtime.TORCH
            note = "OpenVINO is not installed (no wheel for this platform or Python): encoding with torch, slower"
    if chosen_runtime is Runtime.OPENVINO:
        if device_type != "cpu":
            raise ConfigError(f"runtime 'openvino' is a CPU path; on {device_type} use runtime='torch'")
        if chosen_precision is Precision.INT8:
            raise ConfigError("precision 'int8' is torch's dynamic quantization; use runtime='torch' with it")
        if not openvino_installed():
            raise ConfigError(
                "runtime 'openvino' needs the openvino package, which is not installed (it ships no wheel for "
                "this platform or Python); use runtime='torch'"
            )
    if chosen_precision is Precision.INT8 and device_type != "cpu":
        raise ConfigError(f"precision 'int8' is a CPU path; on {device_type} use precision='bf16'")
    if chosen_precision is Precision.AUTO:
        chosen_precision = Precision.FP32
    if chosen_runtime is Runtime.OPENVINO and chosen_precision is Precision.BF16 and not cpu_has_bf16():
        # Decided now, not when the graph compiles: a lazy encoder records its precision in a
        # collection before it encodes anything. (The compiled graph's report is checked too.)
        chosen_precision = Precision.FP32
        note = "bf16 was asked, but this CPU has no bf16 arithmetic (avx512_bf16 or AMX): the graph runs fp32"
    return Arithmetic(chosen_runtime.value, device, chosen_precision.value, note)


def openvino_installed() -> bool:
    """Whether OpenVINO can be imported (without importing it)."""
    return importlib.util.find_spec("openvino") is not None


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether the CPU computes bf16 natively: ``avx512_bf16`` or ``amx_bf16`` in its flags (Linux),
    else what OpenVINO's CPU plugin reports (``BF16`` in ``OPTIMIZATION_CAPABILITIES``).

    Tests force either answer by replacing this function.
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("flags"):
                    return bool({"avx512_bf16", "amx_bf16"} & set(line.partition(":")[2].split()))
    except OSError:
        pass
    if not openvino_installed():
        return False
    import openvino

    return "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def _default_device() -> str:
    if any(Path(node).exists() for node in _GPU_DEVICE_NODES):
        import torch

        if torch.cuda.is_available():
            return "cuda"
    return "cpu"


def _member(kind: type[Precision] | type[Runtime], value: str, what: str) -> Precision | Runtime:
    try:
        return kind(value)
    except ValueError:
        raise ConfigError(f"{what} must be one of {[member.value for member in kind]}, got {value!r}") from None
