"""The robustness run: every notebook under other seeds, thread counts and CPU kernels.

    python -m mmcourse.perturb [--seeds 0 1 2] [--threads 1 2] [--kernels avx2 default]
                               [--jobs 2] [--json FILE] [--markdown FILE] [notebooks ...]

A claim must state a property of the method, not of seed 0 on one CPU. This executes each
notebook once per combination of

- ``MMCOURSE_SEED_OFFSET`` (added to every seed the course sets; the datasets do not move),
- ``MMCOURSE_THREADS`` (1 as on Binder, 2 as on a laptop), and
- ``ATEN_CPU_CAPABILITY`` (which vectorised kernels PyTorch picks: ``avx2`` as on an older
  laptop, ``default`` for plain C++ loops; ``native`` leaves PyTorch's own choice),

collects every claim through ``MMCOURSE_CLAIMS_LOG`` and prints, per claim, the smallest
headroom seen and how much that headroom moved across the runs (its spread: for a comparison
such as "fused beats image only", both sides move, so the spread of the distance between
them is what says how close the next run may come to failing). It exits non-zero
if any notebook fails or any claim fails. A claim whose smallest headroom is below its spread
is marked ``tight``: the next machine may well break it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mmcourse.benchmark import run_notebook

KERNELS = ("native", "avx2", "default")


def perturbation_env(seed_offset: int, threads: int, kernel: str, log: Path) -> dict:
    """The environment variables for one run of one notebook."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    env = {
        "MMCOURSE_SEED_OFFSET": str(seed_offset),
        "MMCOURSE_THREADS": str(threads),
        "MMCOURSE_CLAIMS_LOG": str(log),
        # Idle OpenMP threads sleep instead of spinning: with --jobs 2 and 2 threads each, a
        # 2-core machine is oversubscribed. This changes waiting only, never a result.
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    if kernel != "native":
        env["ATEN_CPU_CAPABILITY"] = kernel
    return env


def summarise(runs: list[dict]) -> list[dict]:
    """One row per claim (notebook, message, occurrence): runs, failures, smallest headroom,
    and the spread (max - min) of its headroom across the runs."""
    claims: dict[tuple, dict] = {}
    for run in runs:
        for row in run["claims"]:
            key = (run["notebook"], row["id"])
            entry = claims.setdefault(
                key,
                {
                    "notebook": run["notebook"],
                    "id": row["id"],
                    "text": row["text"],
                    "kind": row["kind"],
                    "runs": 0,
                    "failed": 0,
                    "headrooms": [],
                },
            )
            entry["runs"] += 1
            entry["failed"] += not row["holds"]
            if row["headroom"] is not None:
                entry["headrooms"].append(row["headroom"])
    rows = []
    for entry in claims.values():
        headrooms = entry.pop("headrooms")
        entry["min_headroom"] = min(headrooms) if headrooms else None
        entry["spread"] = (max(headrooms) - min(headrooms)) if len(headrooms) > 1 else None
        entry["tight"] = (
            entry["min_headroom"] is not None
            and entry["spread"] is not None
            and entry["min_headroom"] < entry["spread"]
        )
        rows.append(entry)
    return rows


def _fmt(x) -> str:
    return "—" if x is None else f"{x:.3g}"


def print_table(rows: list[dict], file=None) -> None:
    file = file or sys.stdout
    print(
        f"\n{'notebook':<12} {'runs':>4} {'fail':>4} {'headroom':>9} {'spread':>9}  claim",
        file=file,
    )
    for r in rows:
        mark = "✗" if r["failed"] else ("tight" if r["tight"] else "")
        print(
            f"{r['notebook'][:12]:<12} {r['runs']:>4} {r['failed']:>4} "
            f"{_fmt(r['min_headroom']):>9} {_fmt(r['spread']):>9}  {mark:<5} {r['text'][:90]}",
            file=file,
        )


def markdown_table(rows: list[dict], settings: str) -> str:
    lines = [
        "# Claim headroom",
        "",
        "Written by `make robustness` (`python -m mmcourse.perturb --markdown ...`). Each",
        "numeric claim's smallest headroom (how far its value stayed from the bound) and the",
        "spread of that headroom (max - min) over all the runs below: a claim is `tight` when",
        "its smallest headroom is below its spread. Boolean claims have neither.",
        "",
        f"Runs: {settings}.",
        "",
        "| notebook | claim (as printed in the first run) |"
        " kind | runs | failed | smallest headroom | spread |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        text = r["text"].replace("|", "\\|")
        lines.append(
            f"| {r['notebook']} | {text} | {r['kind']} | {r['runs']} | {r['failed']} | "
            f"{_fmt(r['min_headroom'])} | {_fmt(r['spread'])} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "notebooks", nargs="*", type=Path, help="notebooks to run (default: notebooks/*.ipynb)"
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--kernels", nargs="+", choices=KERNELS, default=["avx2", "default"])
    parser.add_argument("--jobs", type=int, default=1, help="notebooks executed at once")
    parser.add_argument("--json", type=Path, help="write every run and claim to this file")
    parser.add_argument("--markdown", type=Path, help="write the claim table to this file")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(Path("notebooks").glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        parser.error("no notebooks found; run from the repository root or name them")
    if min(args.seeds) < 0 or min(args.threads) < 1 or args.jobs < 1:
        parser.error("seeds must be >= 0, threads and jobs >= 1")
    combos = list(itertools.product(args.seeds, args.threads, args.kernels))
    logs = Path(tempfile.mkdtemp(prefix="mmcourse-claims-"))

    def one(job):
        (seed, threads, kernel), path = job
        log = logs / f"{path.stem}-s{seed}-t{threads}-{kernel}.jsonl"
        result = run_notebook(path, env=perturbation_env(seed, threads, kernel, log))
        claims = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        return {
            **result,
            "seed_offset": seed,
            "threads": threads,
            "kernel": kernel,
            "claims": claims,
        }

    jobs = [(combo, path) for combo in combos for path in paths]
    print(
        f"{len(jobs)} runs: {len(paths)} notebooks x {len(combos)} settings "
        f"(seed offsets {args.seeds}, threads {args.threads}, kernels {args.kernels})"
    )
    runs = []
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for run in pool.map(one, jobs):
            runs.append(run)
            failed = sum(not c["holds"] for c in run["claims"])
            status = "ok" if run["ok"] else f"FAILED: {run['error']}"
            print(
                f"{run['notebook']:<40} seed+{run['seed_offset']} threads={run['threads']} "
                f"{run['kernel']:<8} {run['seconds']:>6.1f} s  {len(run['claims'])} claims"
                f"{f', {failed} failed' if failed else ''}  {status}",
                flush=True,
            )
    rows = summarise(runs)
    print_table(rows)
    settings = (
        f"seed offsets {args.seeds} x threads {args.threads} x kernels {args.kernels}, "
        f"{len(paths)} notebooks"
    )
    if args.markdown:
        args.markdown.write_text(markdown_table(rows, settings))
    if args.json:
        args.json.write_text(json.dumps({"settings": settings, "runs": runs}, indent=1) + "\n")
    notebooks_failed = sum(not r["ok"] for r in runs)
    claims_failed = sum(r["failed"] > 0 for r in rows)
    tight = sum(r["tight"] for r in rows)
    print(f"\n{len(rows)} claims, {tight} tight (smallest headroom below the spread)")
    print(
        f"robustness: {len(runs) - notebooks_failed} passed, {notebooks_failed} failed "
        f"(notebook runs); {claims_failed} claims failed somewhere"
    )
    return 0 if notebooks_failed == 0 and claims_failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
