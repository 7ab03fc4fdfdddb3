"""Reproducibility, device choice and an environment report for bug reports."""

from __future__ import annotations

import os
import platform
import random
import sys

import numpy as np
import torch


def seed_everything(seed: int = 0) -> int:
    """Seed Python, NumPy and PyTorch (CPU and CUDA) so that a run can be repeated.

    Returns the seed, so that a notebook can print what it used.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return seed


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


def limit_threads() -> int:
    """Cap PyTorch's CPU threads at :func:`available_cpus`, unless ``MMCOURSE_THREADS`` says
    otherwise. More threads than CPUs make small models many times slower, because the idle
    threads spin-wait for a CPU. Called when mmcourse is imported; returns the thread count."""
    wanted = os.environ.get("MMCOURSE_THREADS")
    threads = int(wanted) if wanted else min(torch.get_num_threads(), available_cpus())
    if threads < 1:
        raise ValueError(f"MMCOURSE_THREADS must be a positive integer, got {wanted!r}")
    torch.set_num_threads(threads)
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
