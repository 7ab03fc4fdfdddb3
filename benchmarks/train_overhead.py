"""How much does ``mmcourse.train.fit`` cost on top of a bare PyTorch training loop?

Both train the same model (a small two-modality MLP classifier, the size used in notebook 04)
on the same synthetic in-memory data with the same optimizer, batches and epochs. ``fit``
adds: moving batches to the device, input checks, running sums of loss and accuracy,
the history, early-stopping bookkeeping and (when asked) per-epoch validation.

    python benchmarks/train_overhead.py            # prints both timings and their ratio
    python benchmarks/train_overhead.py --repeats 7 --threads 2 --device cuda

Runs are interleaved and the minimum of several repeats is kept, which filters out noise
from other processes; on the CPU the clock is the process's CPU time (on a busy machine,
timings still vary; compare the ratio).
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from mmcourse import seed_everything
from mmcourse.train import InMemoryLoader, fit


class TwoModalityMLP(nn.Module):
    """image (B, 64) and audio (B, 221) -> two MLP encoders -> concat -> logits (B, 10)."""

    def __init__(self, d_image=64, d_audio=221, dim=32, num_classes=10):
        super().__init__()
        self.image = nn.Sequential(nn.Linear(d_image, 64), nn.ReLU(), nn.Linear(64, dim))
        self.audio = nn.Sequential(nn.Linear(d_audio, 64), nn.ReLU(), nn.Linear(64, dim))
        self.head = nn.Linear(2 * dim, num_classes)

    def forward(self, batch):
        return self.head(torch.cat([self.image(batch["image"]), self.audio(batch["audio"])], 1))


def make_data(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (n,), generator=g)
    return {
        "image": torch.randn(n, 64, generator=g) + y[:, None] * 0.1,
        "audio": torch.randn(n, 221, generator=g) + y[:, None] * 0.1,
        "label": y,
    }


def bare_loop(model, train, val, epochs, lr, device):
    """What one writes by hand: the reference the overhead is measured against."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(epochs):
        model.train()
        for batch in train:
            batch = {k: v.to(device) for k, v in batch.items()}
            loss = loss_fn(model(batch), batch["label"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if val is not None:  # the same per-epoch validation that fit does
            model.eval()
            with torch.no_grad():
                for batch in val:
                    batch = {k: v.to(device) for k, v in batch.items()}
                    logits = model(batch)
                    float(loss_fn(logits, batch["label"]))
                    float((logits.argmax(1) == batch["label"]).float().mean())


def timed(fn, device: torch.device) -> float:
    """Seconds spent in ``fn``: CPU time of this process on the CPU (other processes on a
    shared machine then matter less), wall time after a synchronisation on a GPU."""
    if device.type != "cuda":
        start = time.process_time()
        fn()
        return time.process_time() - start
    torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--n", type=int, default=1078, help="training samples")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    train = InMemoryLoader(make_data(args.n), args.batch_size, shuffle=True).to(device)
    val = InMemoryLoader(make_data(args.n // 3, seed=1)).to(device)

    results = {}
    for with_val in (False, True):
        times = {"bare loop": [], "fit": []}
        for _ in range(args.repeats):
            for name in times:  # interleaved, so both see the same background load
                seed_everything(0)
                model = TwoModalityMLP().to(device)
                v = val if with_val else None
                if name == "fit":
                    run = lambda m=model, v=v: fit(  # noqa: E731
                        m, train, v, epochs=args.epochs, lr=1e-3, progress=False
                    )
                else:
                    run = lambda m=model, v=v: bare_loop(  # noqa: E731
                        m, train, v, args.epochs, 1e-3, device
                    )
                times[name].append(timed(run, device))
        best = {k: min(v) for k, v in times.items()}
        label = "with validation" if with_val else "training only"
        results[label] = best["fit"] / best["bare loop"]
        print(
            f"{label:16s} bare loop {best['bare loop']:.3f} s   fit {best['fit']:.3f} s   "
            f"ratio {results[label]:.3f}"
        )
    print(
        f"device={device} threads={args.threads} epochs={args.epochs} "
        f"batch={args.batch_size} n={args.n}: overhead "
        + ", ".join(f"{k} {100 * (r - 1):+.1f}%" for k, r in results.items())
    )


if __name__ == "__main__":
    main()
