"""Which ONNX Runtime execution provider runs the model, and how its sessions are opened.

``auto`` takes the first of these the machine offers, CPU last:

- CUDA, with onnxruntime-gpu installed and a GPU that a session really gets (onnxruntime-gpu
  without a GPU quietly runs on CPU; auto then says so and uses the CPU provider);
- OpenVINO (the ``onnxruntime-ep-openvino`` plugin, or an ``onnxruntime-openvino`` build), on CPUs
  with AMX or AVX-512 VNNI only: its kernels exist for those. On an AVX2-only AMD EPYC it was
  measured slower than the default CPU kernels (fp32 about equal, static int8 0.6x), and the
  plugin offers no device there at all;
- the default CPU provider.

Naming a provider (``cuda``, ``openvino``, ``cpu``) uses it or fails at startup with what to install.
"""

import contextlib
import functools
import os
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import onnxruntime as ort

from stream.errors import BundleError, ConfigError

Choice = Literal["auto", "cpu", "cuda", "openvino"]
Name = Literal["cpu", "cuda", "openvino"]
EP_NAMES: dict[Name, str] = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
}
# CPU features the OpenVINO kernels are worth it on (lscpu / /proc/cpuinfo flag names).
OPENVINO_CPU_FLAGS = frozenset({"amx_int8", "amx_bf16", "avx512_vnni", "avx512_bf16"})
_INSTALL = {
    "cuda": "pip install onnxruntime-gpu (same version as onnxruntime) on a machine with an NVIDIA GPU",
    "openvino": "pip install -e '.[openvino]' (the onnxruntime-ep-openvino plugin)",
}


def usable_cores() -> int:
    """The cores this process may run on: under taskset or a cpuset that is fewer than the
    machine has, and sessions and threads planned for the machine would oversubscribe them."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags, as the kernel lists them (empty where /proc/cpuinfo is absent)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def auto_order(offered: Collection[Name], flags: Collection[str]) -> list[Name]:
    """The providers auto tries, best first; CPU is always the last."""
    order: list[Name] = []
    if "cuda" in offered:
        order.append("cuda")
    if "openvino" in offered and OPENVINO_CPU_FLAGS & set(flags):
        order.append("openvino")
    return [*order, "cpu"]


@functools.cache
def _openvino_plugin() -> list[Any]:
    """The CPU devices of the OpenVINO plugin EP, registered once per process; [] without it."""
    try:
        import onnxruntime_ep_openvino as plugin
    except ImportError:
        return []
    # An already registered or a broken plugin: the devices below tell.
    with contextlib.suppress(Exception):
        ort.register_execution_provider_library("openvino", plugin.get_library_path())
    return [
        d
        for d in ort.get_ep_devices()
        if d.ep_name == EP_NAMES["openvino"] and d.ep_metadata.get("ov_device") == "CPU"
    ]


def offered() -> set[Name]:
    """The providers this onnxruntime installation can open (CUDA: built in, GPU not checked)."""
    available = set(ort.get_available_providers())
    names: set[Name] = {n for n, ep in EP_NAMES.items() if ep in available}
    if _openvino_plugin():
        names.add("openvino")
    return names


@functools.cache
def _load_cuda_libraries() -> None:
    """CUDA and cuDNN from NVIDIA's pip packages, where they are (onnxruntime-gpu >= 1.21)."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        with contextlib.suppress(Exception):  # system libraries may serve instead
            preload()


@dataclass(frozen=True)
class Opened:
    session: ort.InferenceSession
    name: Name


def open_session(model: Path, name: Name, threads: int) -> Opened:
    """A session on one provider; ConfigError when that provider does not really run it."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    providers: list[Any] = [EP_NAMES["cpu"]]
    if name == "cuda":
        _load_cuda_libraries()
        providers = [(EP_NAMES["cuda"], {"device_id": 0}), EP_NAMES["cpu"]]
    elif name == "openvino":
        if EP_NAMES["openvino"] in ort.get_available_providers():  # an onnxruntime-openvino build
            options_ov = {"device_type": "CPU", "num_of_threads": str(threads)}
            providers = [(EP_NAMES["openvino"], options_ov), EP_NAMES["cpu"]]
        else:
            options.add_provider_for_devices(_openvino_plugin()[:1], {"num_of_threads": str(threads)})
            providers = []
    try:
        session = ort.InferenceSession(str(model), options, providers=providers or None)
    except (ort.capi.onnxruntime_pybind11_state.Fail, RuntimeError) as exc:
        raise BundleError(f"{model}: ONNX Runtime cannot load it on {name} ({exc})") from None
    got = session.get_providers()
    if not got or got[0] != EP_NAMES[name]:
        raise ConfigError(f"execution provider {name!r} did not take the model (session runs on {got})")
    return Opened(session, name)


def open_first(model: Path, choice: Choice, threads: Callable[[Name], int]) -> Opened:
    """A session on the chosen provider (auto: the first that opens, see the module doc).

    threads(name) is the intra-op thread count for a session on that provider.
    """
    have = offered()
    if choice != "auto":
        if choice not in have:
            hint = _INSTALL.get(choice)
            raise ConfigError(
                f"execution provider {choice!r} is not available in this onnxruntime "
                f"(offers {', '.join(sorted(have))})" + (f"; {hint}" if hint else "")
            )
        return open_session(model, choice, threads(choice))
    last: ConfigError | None = None
    for name in auto_order(have, cpu_flags()):
        try:
            return open_session(model, name, threads(name))
        except ConfigError as exc:  # e.g. onnxruntime-gpu on a machine without a GPU
            last = exc
    raise last or ConfigError("no execution provider could open the model")
