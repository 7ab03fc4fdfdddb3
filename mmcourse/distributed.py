"""Data parallelism with ``torch.distributed``: the pieces that ``mmcourse.train.fit`` uses.

Under ``torchrun`` every process (a *rank*) runs the same script. ``fit`` notices that a
process group is initialised (:func:`is_distributed`), wraps the model in
``DistributedDataParallel`` (gradients averaged by an all-reduce after ``backward``), gives
each rank its share of every batch (:func:`shard_loader`), sums the training numbers over
the ranks (:func:`all_reduce_sum`) and gathers the validation logits (:func:`gather_cat`),
so that every rank sees the same history; only rank 0 prints and writes checkpoints.

The sharding follows ``DistributedSampler``: rank ``r`` of ``W`` takes rows ``r, r+W, r+2W,
...`` of each *global* batch. The loader you pass therefore keeps meaning the same thing on
one process or on many: its ``batch_size`` is the global batch, and ``W`` processes with the
same seed train the same model as one process (up to float rounding; the notebook 09 and
tests/test_distributed.py measure how close).

:func:`torchrun_command` and :func:`launch` start such a run from Python (a notebook or a
test) with ``sys.executable -m torch.distributed.run`` on a free local port.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterable, Sequence

import torch
import torch.distributed as dist

from mmcourse._checks import check_int


def is_distributed() -> bool:
    """True inside a run with an initialised process group (e.g. started by torchrun)."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    """The number of processes (1 when not distributed)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """Rank 0, the one that logs and writes files."""
    return get_rank() == 0


def shard_batch(batch: dict, rank: int, world_size: int) -> dict:
    """Rows ``rank, rank + world_size, ...`` of every tensor of a batch dict."""
    check_int(world_size, "world_size")
    check_int(rank, "rank", minimum=0)
    if rank >= world_size:
        raise ValueError(f"rank must be < world_size={world_size}, got {rank}")
    if not isinstance(batch, dict):
        raise TypeError(f"batch must be a dict of tensors, got {type(batch).__name__}")
    return {k: v[rank::world_size] if torch.is_tensor(v) else v for k, v in batch.items()}


class ShardedLoader:
    """Iterates ``loader`` and yields this rank's rows of each global batch.

    Every rank iterates the full loader with the same seeded shuffling, so all ranks agree
    on the global batch and each keeps a disjoint share of it, as ``DistributedSampler``
    does with indices. ``generator`` is forwarded, so that ``fit(seed=...)`` re-seeds the
    underlying loader.
    """

    def __init__(self, loader: Iterable, rank: int, world_size: int):
        self.loader, self.rank, self.world_size = loader, rank, world_size

    @property
    def generator(self):
        return getattr(self.loader, "generator", None)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            yield shard_batch(batch, self.rank, self.world_size)


def shard_loader(loader: Iterable, rank: int | None = None, world_size: int | None = None):
    """This rank's view of ``loader`` (the loader itself on a single process).

    A ``torch.utils.data.DataLoader`` that does not shuffle is rebuilt with a
    ``DistributedSampler`` and a per-rank batch size ``batch_size // world_size`` (the
    union of the ranks' batches is then exactly the original batch). Any other loader (an
    ``InMemoryLoader``, a list of batch dicts, a shuffling DataLoader) is wrapped in
    :class:`ShardedLoader`, which splits each global batch after the (seeded) shuffle.
    """
    rank = get_rank() if rank is None else rank
    world_size = get_world_size() if world_size is None else world_size
    if world_size == 1:
        return loader
    from torch.utils.data import DataLoader, DistributedSampler, SequentialSampler

    if (
        isinstance(loader, DataLoader)
        and isinstance(loader.sampler, SequentialSampler)
        and loader.batch_size is not None
    ):
        if loader.batch_size % world_size:
            raise ValueError(
                f"the loader's batch_size ({loader.batch_size}) is the global batch and must "
                f"be divisible by the number of processes ({world_size})"
            )
        sampler = DistributedSampler(
            loader.dataset, num_replicas=world_size, rank=rank, shuffle=False, drop_last=False
        )
        return DataLoader(
            loader.dataset,
            batch_size=loader.batch_size // world_size,
            sampler=sampler,
            collate_fn=loader.collate_fn,
            drop_last=loader.drop_last,
            num_workers=loader.num_workers,
        )
    return ShardedLoader(loader, rank, world_size)


def all_reduce_sum(*values: float | torch.Tensor) -> list[float]:
    """Sum numbers over all ranks (the numbers themselves on a single process)."""
    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64)
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def gather_cat(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's tensor (rank order) along the first axis, on every rank."""
    if not is_distributed():
        return tensor
    parts: list = [None] * get_world_size()
    dist.all_gather_object(parts, tensor.cpu())
    return torch.cat(parts)


def wrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """``DistributedDataParallel(model)`` in a distributed run, else ``model`` itself.

    DDP first broadcasts rank 0's weights, so every rank starts from the same model; then each
    ``backward`` averages the gradients over the ranks with an all-reduce, bucket by bucket,
    while the rest of the backward pass still runs.
    """
    if not is_distributed():
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [model_device(model).index] if model_device(model).type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def model_device(model: torch.nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


# --------------------------------------------------------------------------- launching


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (for the rendezvous of a local run)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun_command(
    module: str, args: Sequence[str] = (), nproc_per_node: int = 2, port: int | None = None
) -> list[str]:
    """The command that runs ``python -m module args`` on ``nproc_per_node`` local processes.

    ``sys.executable -m torch.distributed.run`` is ``torchrun`` (a notebook kernel's PATH may
    not contain the environment's ``bin``). One machine, a fixed rendezvous on 127.0.0.1.
    """
    check_int(nproc_per_node, "nproc_per_node")
    if not isinstance(module, str) or not module:
        raise TypeError(f"module must be a module name such as 'mmcourse.ddp_demo', got {module!r}")
    port = free_port() if port is None else port
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=1",
        f"--nproc_per_node={nproc_per_node}",
        "--master_addr=127.0.0.1",
        f"--master_port={port}",
        "-m",
        module,
        *map(str, args),
    ]


def launch(
    module: str,
    args: Sequence[str] = (),
    nproc_per_node: int = 2,
    timeout: float = 120.0,
    retries: int = 1,
) -> subprocess.CompletedProcess:
    """Run :func:`torchrun_command` and wait; raise with the processes' output if it fails.

    The children get ``OMP_NUM_THREADS=1`` (each rank one thread, so that two ranks do not
    fight over the cores) and no progress bars. A run in which a rank was killed by a signal
    is started again up to ``retries`` times: on a healthy run gloo has, rarely, aborted a rank
    (SIGABRT, "terminate called without an active exception"; once in many CI runs), and a
    class should not see that. A run that fails with an ordinary error is not repeated.
    """
    check_int(retries, "retries", minimum=0)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MMCOURSE_THREADS": "1", "TQDM_DISABLE": "1"}
    for attempt in range(retries + 1):
        command = torchrun_command(module, args, nproc_per_node)  # a fresh free port each time
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
        if result.returncode == 0 or attempt == retries or not killed_by_signal(result.stderr):
            break
        print(
            f"torchrun: a rank was killed by a signal; running again ({attempt + 1} of {retries})",
            file=sys.stderr,
        )
    if result.returncode != 0:
        raise RuntimeError(
            f"torchrun failed with exit code {result.returncode}:\n"
            f"{' '.join(command)}\n--- stdout ---\n{result.stdout[-3000:]}\n"
            f"--- stderr ---\n{result.stderr[-3000:]}"
        )
    return result


def killed_by_signal(torchrun_stderr: str) -> bool:
    """Whether torchrun's failure summary names a rank with a negative exit code (a signal)."""
    return re.search(r"exitcode\s*:\s*-\d+", torchrun_stderr) is not None
