"""Train one small model on one process or on many, with the same code: notebook 09's proof.

    python -m mmcourse.distributed_demo --out single.pt                # one process
    torchrun --nproc_per_node=2 -m mmcourse.distributed_demo --out ddp.pt

The script trains an MLP on scikit-learn's real handwritten digits with ``mmcourse.train.fit``
(which turns data-parallel by itself under torchrun), then takes a few full-batch steps of
the same model sharded with FSDP2 (``torch.distributed.fsdp.fully_shard``). Rank 0 saves the
history, the trained weights, the FSDP2 losses and the timings to ``--out``; the notebook and
tests/test_distributed.py compare them with :func:`run` called in their own process.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from mmcourse import distributed as D
from mmcourse.train import InMemoryLoader, fit
from mmcourse.utils import seed_everything

N_TRAIN = 1200  # of the 1,797 digits; divisible by 2, 4 and every batch size used here


class DigitsMLP(nn.Module):
    """64 pixels -> hidden -> 10 classes, on the course's batch-dict contract."""

    def __init__(self, hidden: int = 128):
        super().__init__()
        self.hidden = nn.Sequential(nn.Linear(64, hidden), nn.ReLU())
        self.out = nn.Linear(hidden, 10)

    def forward(self, batch: dict) -> torch.Tensor:
        return self.out(self.hidden(batch["image"]))


def load_digits_table() -> np.ndarray:
    """scikit-learn's 1,797 digits (64 pixel values 0-16, then the label) as one array.

    Read straight from the CSV file that scikit-learn ships, the same numbers as
    ``sklearn.datasets.load_digits()``: importing scikit-learn would cost each process of a
    distributed run about a second of start-up.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("scikit-learn is needed for its bundled digits")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
    return np.loadtxt(path, delimiter=",", dtype=np.float64)


def digits_tensors() -> tuple[dict, dict]:
    """The train (1,200) and validation (597) digits as batch dicts, pixels scaled to [0, 1]."""
    table = load_digits_table()
    order = np.random.default_rng(0).permutation(len(table))  # a fixed split
    x = torch.tensor(table[order, :64] / 16.0, dtype=torch.float32)
    y = torch.tensor(table[order, 64], dtype=torch.long)
    return (
        {"image": x[:N_TRAIN], "label": y[:N_TRAIN]},
        {"image": x[N_TRAIN:], "label": y[N_TRAIN:]},
    )


def train_ddp(epochs: int = 4, batch_size: int = 100, lr: float = 3e-3, seed: int = 0):
    """``fit`` on the digits: plain on one process, data-parallel under torchrun.

    ``batch_size`` is the global batch. Returns (model, history, seconds of ``fit``).
    """
    train, val = digits_tensors()
    seed_everything(seed)
    model = DigitsMLP()
    loader = InMemoryLoader(train, batch_size=batch_size, shuffle=True, seed=seed)
    # A process's first optimizer imports torch._dynamo (about a second): not training time.
    import torch._dynamo  # noqa: F401

    start = time.perf_counter()
    history = fit(
        model, loader, [val], epochs=epochs, lr=lr, seed=seed, progress=False, restore_best=False
    )
    return model, history, time.perf_counter() - start


def train_fsdp(steps: int = 5, lr: float = 3e-3, seed: int = 0, shard: bool = True):
    """A few full-batch AdamW steps with the model sharded by FSDP2 (when distributed).

    Returns the global mean loss of each step and the number of parameter values this rank
    holds between steps. FSDP2 all-gathers a layer's full weights just before it computes,
    frees them after, and reduce-scatters the gradients so that each rank keeps (and
    updates, with its optimiser state) only its own shard.
    """
    train, _ = digits_tensors()
    seed_everything(seed)
    model = DigitsMLP()
    if shard and D.is_distributed():
        from torch.distributed.fsdp import fully_shard

        fully_shard(model.hidden)
        fully_shard(model.out)
        fully_shard(model)
        train = D.shard_batch(train, D.get_rank(), D.get_world_size())
    held = sum(
        p.to_local().numel() if hasattr(p, "to_local") else p.numel() for p in model.parameters()
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss = nn.functional.cross_entropy(model(train), train["label"])
        optimizer.zero_grad()
        loss.backward()  # FSDP2 averages the gradients over the ranks (equal shards here)
        optimizer.step()
        (total,) = D.all_reduce_sum(loss.item())
        losses.append(total / D.get_world_size())
    return losses, held


def run(epochs: int = 4, batch_size: int = 100, fsdp_steps: int = 5) -> dict:
    """Everything the notebook compares, as plain data (the same on one or many processes)."""
    model, history, seconds = train_ddp(epochs=epochs, batch_size=batch_size)
    fsdp_losses, fsdp_held = train_fsdp(steps=fsdp_steps)
    return {
        "world_size": D.get_world_size(),
        "history": history.records,
        "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "fit_seconds": seconds,
        "fsdp_losses": fsdp_losses,
        "fsdp_params_held": fsdp_held,
        "params": sum(p.numel() for p in model.parameters()),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="where rank 0 saves the results (.pt)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=100, help="the global batch")
    parser.add_argument("--fsdp-steps", type=int, default=5)
    args = parser.parse_args(argv)
    started = "WORLD_SIZE" in os.environ  # set by torchrun for every rank it starts
    if started:
        dist.init_process_group("gloo")  # CPU; on GPUs one would use "nccl"
    try:
        results = run(args.epochs, args.batch_size, args.fsdp_steps)
        if D.is_main_process():
            torch.save(results, args.out)
        if started:
            dist.barrier()  # every rank done before any tears the group down
    finally:
        if started:
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
