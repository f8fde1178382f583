"""Process settings for Paddle on CPU: threads, math library code path, log noise.

At its defaults Paddle on CPU runs one thread, and its bundled MKL takes a slow code path on AMD
processors unless ``MKL_DEBUG_CPU_TYPE=5`` tells it otherwise; on Intel processors that setting costs
speed instead (docs/performance.md), so it is set on AMD processors only, read from ``/proc/cpuinfo``.
The MKL and log settings are environment variables that must be set before Paddle is imported
(``pdfewshot/__init__`` does it); the thread count is applied after import with ``set_num_threads``,
because Paddle warns at import about any ``OMP_NUM_THREADS`` above 1. Settings the user made are left
alone.
"""

import os
import warnings
from pathlib import Path

THREADS_VARIABLE = "PDFEWSHOT_THREADS"


def available_cores() -> int:
    """Cores this process may run on (honours CPU affinity, e.g. under taskset or a container)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cpu_info() -> dict[str, str]:
    """The first processor's entries of ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return {}
    entries: dict[str, str] = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        entries[key.strip()] = value.strip()
    return entries


def is_amd() -> bool:
    return cpu_info().get("vendor_id") == "AuthenticAMD"


def _positive_variable(name: str) -> int | None:
    """The environment variable ``name`` as a whole number above 0, else None."""
    value = os.environ.get(name, "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def local_processes() -> int:
    """Processes that ``paddle.distributed.launch`` started on this machine (they share its cores)."""
    return _positive_variable("PADDLE_LOCAL_SIZE") or 1


def default_threads() -> int:
    """This process's share of the cores it may run on."""
    return max(1, available_cores() // local_processes())


def configure_runtime(threads: int | None = None) -> None:
    """Records the thread count and sets MKL's code path and the log level for Paddle to read."""
    if threads is not None:
        os.environ[THREADS_VARIABLE] = str(threads)
    # Read before Paddle's import, which sets OMP_NUM_THREADS to 1 when it is unset.
    os.environ.setdefault(THREADS_VARIABLE, os.environ.get("OMP_NUM_THREADS", str(default_threads())))
    # MKL picks its AVX2 kernels only on Intel unless told otherwise; on Intel the setting costs speed.
    if is_amd():
        os.environ.setdefault("MKL_DEBUG_CPU_TYPE", "5")
    os.environ.setdefault("GLOG_minloglevel", "2")
    warnings.filterwarnings("ignore", message=".*ccache.*")
    # Paddle notes on every train-mode batch norm that it tracks running statistics; not actionable.
    warnings.filterwarnings("ignore", message="When training, we now always track global mean")


def thread_count() -> int:
    """``--threads`` / ``$PDFEWSHOT_THREADS``, else the user's ``$OMP_NUM_THREADS``, else this process's
    share of the cores (all of them unless several training processes were launched)."""
    return _positive_variable(THREADS_VARIABLE) or default_threads()


def set_paddle_threads() -> None:
    """Applies :func:`thread_count` to Paddle's CPU math; stages call it before they compute."""
    import paddle

    paddle.base.core.set_num_threads(thread_count())
