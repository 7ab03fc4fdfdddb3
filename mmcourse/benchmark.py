"""Benchmark the course: run each notebook in a fresh kernel, report wall time and peak memory.

    python -m mmcourse.benchmark [--json benchmark.json] [notebooks ...]

Peak memory is the kernel process's high-water mark of resident memory (Linux ``VmHWM``;
elsewhere, the largest RSS seen by polling). The budgets are the course's promises to a
learner on a 2-core laptop. This reports; it is not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

BUDGET_SECONDS = 60.0
BUDGET_BYTES = 1.2 * 1024**3
BUDGET_TOTAL_SECONDS = 8 * 60.0


def _peak_rss(pid: int, polled: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return polled


def run_notebook(path: Path, timeout: int = 600) -> dict:
    """Execute one notebook in a new kernel; returns seconds, peak bytes and status."""
    import nbformat
    import psutil
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    env = dict(os.environ, TQDM_DISABLE="1", MPLBACKEND="agg")
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "notebooks", nargs="*", type=Path, help="notebooks to run (default: notebooks/*.ipynb)"
    )
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(Path("notebooks").glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        parser.error("no notebooks found; run from the repository root or name them")
    rows = []
    print(f"{'notebook':<40} {'wall s':>7} {'peak MB':>8}  budget")
    for path in paths:
        row = run_notebook(path)
        row["within_budget"] = (
            row["ok"] and row["seconds"] <= BUDGET_SECONDS and row["peak_bytes"] <= BUDGET_BYTES
        )
        rows.append(row)
        verdict = (
            "✓"
            if row["within_budget"]
            else ("✗ FAILED: " + row["error"] if not row["ok"] else "✗ over budget")
        )
        print(
            f"{row['notebook']:<40} {row['seconds']:>7.1f} {row['peak_bytes'] / 2**20:>8.0f}"
            f"  {verdict}",
            flush=True,
        )
    total = sum(r["seconds"] for r in rows)
    total_ok = total <= BUDGET_TOTAL_SECONDS
    print(
        f"{'TOTAL':<40} {total:>7.1f} {max(r['peak_bytes'] for r in rows) / 2**20:>8.0f}"
        f"  {'✓' if total_ok else '✗ over budget'}"
    )
    print(
        f"budgets: each notebook <= {BUDGET_SECONDS:.0f} s and <= "
        f"{BUDGET_BYTES / 2**30:.1f} GiB; whole course <= {BUDGET_TOTAL_SECONDS / 60:.0f} min; "
        f"{os.cpu_count()} CPU cores here"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "python": sys.version.split()[0],
                    "platform": platform.platform(),
                    "cpu_count": os.cpu_count(),
                    "total_seconds": round(total, 2),
                    "budgets": {
                        "notebook_seconds": BUDGET_SECONDS,
                        "notebook_bytes": BUDGET_BYTES,
                        "total_seconds": BUDGET_TOTAL_SECONDS,
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
