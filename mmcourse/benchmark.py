"""Benchmark the course: run each notebook in a fresh kernel, report wall time and peak memory.

    python -m mmcourse.benchmark [--cpus N] [--under-load] [--json benchmark.json] [notebooks ...]

Peak memory is the kernel process's high-water mark of resident memory (Linux ``VmHWM``;
elsewhere, the largest RSS seen by polling). The budgets are the course's promises to a
learner on a 2-core laptop, and on Binder's 1 CPU (``--cpus 1`` pins the kernels to one core).
``--under-load`` runs every notebook twice, idle and next to one busy process (a loop that
keeps one core busy, like a browser tab or a second notebook), and prints the slowdown.
This reports; it is not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import platform
import sys
import threading
import time
from pathlib import Path

BUDGET_SECONDS = 45.0
BUDGET_BYTES = 1.2 * 1024**3
BUDGET_TOTAL_SECONDS = 300.0
BUDGET_SLOWDOWN = 1.5  # next to one busy process


def _peak_rss(pid: int, polled: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return polled


def run_notebook(path: Path, timeout: int = 600, env: dict | None = None) -> dict:
    """Execute one notebook in a new kernel; returns seconds, peak bytes and status.

    ``env`` adds environment variables for the kernel (the robustness run's perturbations).
    """
    import nbformat
    import psutil
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    env = dict(os.environ, TQDM_DISABLE="1", MPLBACKEND="agg", **(env or {}))
    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(path.parent), env=env)
    pid = km.provisioner.process.pid
    polled, done = [0], threading.Event()

    def poll():
        process = psutil.Process(pid)
        while not done.is_set():
            try:
                polled[0] = max(polled[0], process.memory_info().rss)
            except psutil.Error:
                return
            done.wait(0.05)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    error = None
    start = time.perf_counter()
    try:
        NotebookClient(nb, km=km, timeout=timeout, kernel_name="python3").execute()
    except Exception as exc:  # report the failure in the table, keep benchmarking the rest
        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:120]}"
    seconds = time.perf_counter() - start
    peak = _peak_rss(pid, polled[0])
    done.set()
    km.shutdown_kernel(now=True)
    return {
        "notebook": path.name,
        "seconds": round(seconds, 2),
        "peak_bytes": peak,
        "ok": error is None,
        "error": error,
    }


def _spin(stop) -> None:
    while not stop.is_set():
        for _ in range(100_000):
            pass


@contextlib.contextmanager
def busy_process():
    """One other process keeping one core busy for as long as the block runs."""
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    process = context.Process(target=_spin, args=(stop,), daemon=True)
    process.start()
    try:
        yield
    finally:
        stop.set()
        process.join(timeout=5)
        if process.is_alive():
            process.terminate()


def _verdict(row: dict) -> str:
    if not row["ok"]:
        return "✗ FAILED: " + row["error"]
    return "✓" if row["within_budget"] else "✗ over budget"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "notebooks", nargs="*", type=Path, help="notebooks to run (default: notebooks/*.ipynb)"
    )
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--cpus", type=int, help="pin the kernels to this many cores (Linux)")
    parser.add_argument(
        "--under-load", action="store_true", help="run each notebook idle and next to a busy loop"
    )
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(Path("notebooks").glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        parser.error("no notebooks found; run from the repository root or name them")
    if args.cpus is not None:
        if not hasattr(os, "sched_setaffinity"):
            parser.error("--cpus needs Linux (os.sched_setaffinity)")
        cores = sorted(os.sched_getaffinity(0))
        if not 1 <= args.cpus <= len(cores):
            parser.error(f"--cpus must be between 1 and {len(cores)}, got {args.cpus}")
        os.sched_setaffinity(0, cores[: args.cpus])  # the kernels inherit it
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    rows = []
    header = f"{'notebook':<40} {'wall s':>7} {'peak MB':>8}"
    print(header + (f" {'loaded s':>8} {'slowdown':>8}" if args.under_load else "") + "  budget")
    for path in paths:
        row = run_notebook(path)
        row["within_budget"] = (
            row["ok"] and row["seconds"] <= BUDGET_SECONDS and row["peak_bytes"] <= BUDGET_BYTES
        )
        line = f"{row['notebook']:<40} {row['seconds']:>7.1f} {row['peak_bytes'] / 2**20:>8.0f}"
        if args.under_load:
            with busy_process():
                loaded = run_notebook(path)
            row["loaded_seconds"] = loaded["seconds"]
            row["slowdown"] = round(loaded["seconds"] / max(row["seconds"], 1e-9), 2)
            row["ok"] = row["ok"] and loaded["ok"]
            row["error"] = row["error"] or loaded["error"]
            row["within_budget"] = row["within_budget"] and row["slowdown"] <= BUDGET_SLOWDOWN
            line += f" {row['loaded_seconds']:>8.1f} {row['slowdown']:>7.2f}x"
        rows.append(row)
        print(f"{line}  {_verdict(row)}", flush=True)
    total = sum(r["seconds"] for r in rows)
    total_ok = total <= BUDGET_TOTAL_SECONDS
    line = f"{'TOTAL':<40} {total:>7.1f} {max(r['peak_bytes'] for r in rows) / 2**20:>8.0f}"
    if args.under_load:
        loaded_total = sum(r["loaded_seconds"] for r in rows)
        line += f" {loaded_total:>8.1f} {loaded_total / total:>7.2f}x"
    print(f"{line}  {'✓' if total_ok else '✗ over budget'}")
    print(
        f"budgets: each notebook <= {BUDGET_SECONDS:.0f} s and <= "
        f"{BUDGET_BYTES / 2**30:.1f} GiB; whole course <= {BUDGET_TOTAL_SECONDS:.0f} s"
        + (f"; under load <= {BUDGET_SLOWDOWN}x" if args.under_load else "")
        + f"; {cpus} CPU cores for the kernels"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "python": sys.version.split()[0],
                    "platform": platform.platform(),
                    "cpus": cpus,
                    "under_load": args.under_load,
                    "total_seconds": round(total, 2),
                    "budgets": {
                        "notebook_seconds": BUDGET_SECONDS,
                        "notebook_bytes": BUDGET_BYTES,
                        "total_seconds": BUDGET_TOTAL_SECONDS,
                        "slowdown_under_load": BUDGET_SLOWDOWN,
                    },
                    "notebooks": rows,
                },
                indent=1,
            )
            + "\n"
        )
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
