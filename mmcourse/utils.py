"""Reproducibility, device choice and an environment report for bug reports."""

from __future__ import annotations

import os
import platform
import random
import sys

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from mmcourse._checks import check_seed


def seed_offset() -> int:
    """The integer in ``MMCOURSE_SEED_OFFSET`` (default 0), added to every seed the course sets.

    The robustness run sets it to re-run every notebook with other initial weights, batch
    orders and noise draws, so that a claim is tested as a property of the method and not of
    one seed. The datasets do not move with it: they are generated from their own fixed seeds.
    """
    text = os.environ.get("MMCOURSE_SEED_OFFSET", "0").strip() or "0"
    try:
        offset = int(text)
    except ValueError:
        offset = -1
    if offset < 0:
        raise ValueError(f"MMCOURSE_SEED_OFFSET must be a non-negative integer, got {text!r}")
    return offset


def offset_seed(seed: int) -> int:
    """``seed + MMCOURSE_SEED_OFFSET``, after checking that ``seed`` is a non-negative int."""
    return int(check_seed(seed)) + seed_offset()


def seed_everything(seed: int = 0) -> int:
    """Seed Python, NumPy and PyTorch (CPU and CUDA) so that a run can be repeated.

    The seed used is ``seed + MMCOURSE_SEED_OFFSET`` (see :func:`seed_offset`); it is
    returned, so that a notebook can print what it used.
    """
    used = offset_seed(seed)
    random.seed(used)
    np.random.seed(used % 2**32)
    torch.manual_seed(used)  # also seeds every CUDA device
    return used


def seeded_generator(seed: int = 0) -> torch.Generator:
    """A private CPU ``torch.Generator`` seeded with ``seed + MMCOURSE_SEED_OFFSET``: for batch
    orders, noise draws and sampling that should move with the robustness run's seed offset
    but leave the global random state alone."""
    return torch.Generator().manual_seed(offset_seed(seed))


def get_device(prefer: str = "auto") -> torch.device:
    """The device to compute on: CUDA when present (``prefer="auto"``), else the CPU.

    ``prefer="cpu"`` forces the CPU, ``prefer="cuda"`` demands a GPU and fails clearly
    without one. The environment variable ``MMCOURSE_DEVICE`` overrides ``"auto"``.
    """
    if prefer not in ("auto", "cpu", "cuda"):
        raise ValueError(f"prefer must be 'auto', 'cpu' or 'cuda', got {prefer!r}")
    if prefer == "auto":
        prefer = os.environ.get("MMCOURSE_DEVICE", "auto")
    if prefer == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if prefer == "cuda":
        raise RuntimeError("prefer='cuda' was asked for, but PyTorch sees no CUDA device")
    return torch.device("cpu")


def available_cpus() -> int:
    """CPUs this process may really use: the affinity mask, further limited by a container's
    CPU quota (cgroup v2 ``cpu.max``). Binder, for example, gives 1 CPU on a many-core host,
    and ``os.cpu_count()`` reports the host's cores."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


def course_threads() -> int:
    """How many CPU threads the course's models use: 1, unless ``MMCOURSE_THREADS`` says
    otherwise (never more than :func:`available_cpus`).

    Why one: the course's models are tiny (at most a few hundred thousand parameters, batches
    of 64-256), so a matrix product is over before a second thread has started, and an idle
    OpenMP thread spin-waits for a CPU. On a 2-core machine next to one busy process (a browser
    tab, a second notebook) two threads made a small MLP 24x slower (42.9 s instead of 1.8 s),
    while one thread lost only a few percent on the idle machine (the benchmark's table in the
    README). Binder gives 1 CPU anyway.
    """
    wanted = os.environ.get("MMCOURSE_THREADS", "").strip()
    if not wanted:
        return 1
    if not wanted.isdigit() or int(wanted) < 1:
        raise ValueError(f"MMCOURSE_THREADS must be a positive integer, got {wanted!r}")
    return min(int(wanted), available_cpus())


def limit_threads() -> int:
    """Apply :func:`course_threads` to PyTorch and to the BLAS/OpenMP pools of NumPy and
    SciPy. Called once when mmcourse is imported, so every notebook, test and script follows
    the one policy; returns the thread count."""
    threads = course_threads()
    torch.set_num_threads(threads)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)  # for libraries loaded later (SciPy) and subprocesses
    threadpool_limits(limits=threads)  # the pools already loaded (NumPy's OpenBLAS)
    return threads


def env_report(print_it: bool = True) -> dict:
    """Versions, device and threads: paste this into a bug report.

    Returns the report as a dict; prints it as aligned lines unless ``print_it=False``.
    """
    from importlib.metadata import PackageNotFoundError, version

    try:  # the version without importing torchvision (~80 MB) into every notebook
        torchvision_version = version("torchvision")
    except PackageNotFoundError:
        torchvision_version = "not installed"
    device = get_device()
    report = {
        "python": sys.version.split()[0],
        "platform": platform.platform(terse=True),
        "torch": torch.__version__,
        "torchvision": torchvision_version,
        "numpy": np.__version__,
        "device": str(device),
        "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else "none",
        "torch threads": torch.get_num_threads(),
        "cpu cores": os.cpu_count(),
        "cpus available": available_cpus(),
    }
    if print_it:
        width = max(map(len, report))
        for key, value in report.items():
            print(f"{key:<{width}}  {value}")
    return report


def count_parameters(module: torch.nn.Module, trainable_only: bool = True) -> int:
    """Number of parameters of a module (only those with ``requires_grad`` by default)."""
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
