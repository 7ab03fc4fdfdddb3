"""One small training loop that every notebook shares: ``fit``, ``evaluate``, ``predict_proba``.

The contract is deliberately narrow, so that the loop stays readable in one sitting:

* a *batch* is a dict of tensors; its ``"label"`` entry (B,) long is the target;
* a *model* takes the whole batch dict and returns logits (B, num_classes);
* a *loader* is anything that can be iterated once per epoch and yields batches: a
  ``torch.utils.data.DataLoader``, or simply a list such as ``[full_batch]`` for full-batch
  training on small data (much faster than a DataLoader for a few thousand samples).

``fit`` does: optimizer (AdamW unless you pass one) and an optional learning-rate scheduler,
gradient clipping, per-epoch validation, early stopping on a monitored validation metric,
keeping (and optionally checkpointing to disk) the best weights, and restoring them at the
end. It returns a :class:`History` of per-epoch numbers that is easy to tabulate and plot.

    >>> history = fit(model, train_loader, val_loader, epochs=50, lr=1e-3,
    ...               monitor="val_accuracy", patience=5, seed=0)
    >>> history.plot()                       # loss and accuracy curves
    >>> evaluate(model, test_loader)         # {"loss": ..., "accuracy": ...}
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from mmcourse import distributed as D
from mmcourse import metrics as M
from mmcourse._checks import check_callable, check_int, check_module, check_real
from mmcourse.utils import (
    count_parameters,  # noqa: F401  (re-exported)
    seed_everything,
    seeded_generator,
)

Batch = dict[str, torch.Tensor]

# Metrics that ``fit``/``evaluate`` can compute from logits and labels, besides the loss.
EVAL_METRICS = ("accuracy", "macro_f1", "ece")


@dataclass
class History:
    """Per-epoch numbers of one ``fit`` run.

    ``records`` maps a name ("epoch", "lr", "train_loss", "train_accuracy", "val_loss",
    "val_accuracy", ...) to a list with one value per epoch, so ``history["val_loss"]`` is a
    curve and ``pandas.DataFrame(history.records)`` is a table. ``best_epoch`` / ``best_score``
    describe the epoch whose weights were kept; ``stopped_early`` says whether early stopping
    ended the run. Wall-clock seconds per epoch are kept apart (``seconds``) because they
    differ between runs, while everything else is reproducible.
    """

    records: dict[str, list[float]] = field(default_factory=dict)
    monitor: str | None = None
    best_epoch: int | None = None
    best_score: float | None = None
    stopped_early: bool = False
    seconds: list[float] = field(default_factory=list, compare=False, repr=False)

    def __getitem__(self, key: str) -> list[float]:
        if key not in self.records:
            raise KeyError(f"no {key!r} in this history; it has {sorted(self.records)}")
        return self.records[key]

    def __len__(self) -> int:
        return len(self.records.get("epoch", []))

    def append(self, row: dict[str, float]) -> None:
        for key, value in row.items():
            self.records.setdefault(key, []).append(float(value))

    def last(self) -> dict[str, float]:
        """The numbers of the last epoch."""
        return {key: values[-1] for key, values in self.records.items()}

    def to_dataframe(self):
        """The history as a pandas DataFrame, one row per epoch."""
        import pandas as pd

        return pd.DataFrame(self.records).set_index("epoch")

    def plot(self, axes=None, metric: str = "accuracy"):
        """Loss curves (left) and ``metric`` curves (right), train vs validation.

        A dashed line marks the epoch whose weights were kept. Returns the two axes.
        """
        import matplotlib.pyplot as plt

        if axes is None:
            _, axes = plt.subplots(1, 2, figsize=(9, 3.2))
        epochs = self.records.get("epoch", [])
        for ax, name in zip(axes, ("loss", metric), strict=True):
            for split, style in (("train", "-"), ("val", "-")):
                key = f"{split}_{name}"
                if key in self.records:
                    ax.plot(epochs, self.records[key], style, label=split)
            if self.best_epoch is not None:
                ax.axvline(self.best_epoch, color="grey", ls="--", lw=1, label="kept")
            ax.set_xlabel("epoch")
            ax.set_ylabel(name)
            ax.legend()
        return axes


# --------------------------------------------------------------------------- helpers


def to_device(batch: Batch, device: torch.device | str) -> Batch:
    """Move every tensor of a batch dict to ``device`` (other values pass through)."""
    if not isinstance(batch, dict):
        raise TypeError(
            f"a batch must be a dict of tensors with a 'label' entry, got {type(batch).__name__}"
        )
    device = _as_device(device)
    return {
        k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()
    }


def _as_device(device) -> torch.device:
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise TypeError(f"device must be a str such as 'cpu' or 'cuda', got {device!r}")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise ValueError(
            f"device must name a device such as 'cpu' or 'cuda', got {device!r}"
        ) from exc


def _check_loader(loader, name: str) -> None:
    if isinstance(loader, (str, bytes, dict)) or not isinstance(loader, Iterable):
        raise TypeError(
            f"{name} must be an iterable of batches (dicts of tensors with a 'label'), e.g. an "
            f"InMemoryLoader, a DataLoader or a list of dicts; got {type(loader).__name__}"
        )


def _check_batch(batch, name: str) -> None:
    if not isinstance(batch, dict):
        raise TypeError(
            f"{name} must yield batches, each a dict of tensors with a 'label' entry, "
            f"got a {type(batch).__name__}"
        )


def _check_labels(labels, num_classes: int, name: str, check_range: bool = True) -> None:
    """The 'label' entry of a batch: class ids (B,) of an integer dtype in [0, num_classes)."""
    if not torch.is_tensor(labels):
        raise TypeError(
            f"{name}: the batch's 'label' must be a tensor, got {type(labels).__name__}"
        )
    if labels.ndim != 1:
        raise ValueError(
            f"{name}: the batch's 'label' must be class ids of shape (B,), got shape "
            f"{tuple(labels.shape)} (one-hot or (B, 1) labels: use labels.argmax(1) or "
            "labels.squeeze(1))"
        )
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(
            f"{name}: the batch's 'label' must be integer class ids (torch.long), got "
            f"{labels.dtype}; cast exact ids with .long(), never fractional values"
        )
    if check_range and labels.numel():
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= num_classes:
            raise ValueError(
                f"{name}: the batch's 'label' must lie in [0, {num_classes}) for a model with "
                f"{num_classes} logits, got values in [{low}, {high}]"
            )


def _labels_of(batch: Batch) -> torch.Tensor:
    if "label" not in batch:
        raise KeyError(f"the batch has no 'label' entry (keys: {sorted(batch)})")
    return batch["label"]


def _check_logits(logits, labels: torch.Tensor) -> None:
    if not torch.is_tensor(logits) or logits.ndim != 2 or logits.shape[1] < 2:
        shape = tuple(logits.shape) if torch.is_tensor(logits) else type(logits).__name__
        raise ValueError(
            f"the model must return logits of shape (B, num_classes) with num_classes >= 2, "
            f"got {shape}; for a binary task return 2 logits"
        )
    if logits.shape[0] != labels.shape[0]:
        raise ValueError(
            f"the model returned {logits.shape[0]} rows of logits for a batch of "
            f"{labels.shape[0]} labels"
        )


def _default_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _progress_enabled(progress: bool) -> bool:
    # tqdm reads TQDM_DISABLE only for arguments we do not pass, so honour it here too.
    return bool(progress) and not os.environ.get("TQDM_DISABLE")


def _check_metrics(names: Sequence[str]) -> tuple[str, ...]:
    if isinstance(names, str):
        names = (names,)
    if not isinstance(names, Iterable):
        raise TypeError(f"metrics must be a list of names from {EVAL_METRICS}, got {names!r}")
    unknown = [n for n in names if n not in EVAL_METRICS]
    if unknown:
        raise ValueError(f"unknown metric {unknown[0]!r}; choose from {EVAL_METRICS}")
    return tuple(names)


class InMemoryLoader:
    """Mini-batches of a dict of equal-length tensors that already sit in memory.

    ``torch.utils.data.DataLoader`` fetches and collates samples one by one, which for a few
    thousand small samples costs more than the model itself; this loader slices whole
    tensors instead. Iterating yields dicts ``{name: tensor[batch_indices]}``; with
    ``shuffle=True`` the order is a fresh permutation each epoch from ``self.generator``
    (seeded with ``seed``, and re-seeded by ``fit(seed=...)``).

        >>> train = InMemoryLoader({"image": x, "label": y}, batch_size=128, shuffle=True)
        >>> full = InMemoryLoader({"image": x, "label": y})   # one full batch
    """

    def __init__(
        self,
        tensors: dict[str, torch.Tensor],
        batch_size: int | None = None,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
    ):
        if isinstance(tensors, dict) and tensors and all(isinstance(k, str) for k in tensors):
            pass
        elif isinstance(tensors, dict) and tensors:
            raise TypeError(f"tensors must have str keys, got {list(tensors)!r:.80}")
        if not isinstance(tensors, dict) or not tensors:
            raise TypeError("tensors must be a non-empty dict {name: tensor}")
        sizes = {}
        for name, value in tensors.items():
            if not torch.is_tensor(value) or value.ndim == 0:
                raise TypeError(
                    f"tensors[{name!r}] must be a tensor with a batch axis, "
                    f"got {type(value).__name__}"
                )
            sizes[name] = value.shape[0]
        if len(set(sizes.values())) != 1:
            raise ValueError(f"all tensors must have the same length (first axis), got {sizes}")
        self.n = next(iter(sizes.values()))
        if self.n == 0:
            raise ValueError("tensors are empty (length 0)")
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
        ):
            raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
        if drop_last and batch_size is not None and batch_size > self.n:
            raise ValueError(
                f"batch_size={batch_size} is larger than the {self.n} samples and drop_last=True:"
                " the loader would yield no batch at all"
            )
        self.tensors = tensors
        self.batch_size = batch_size or self.n
        self.shuffle, self.drop_last = shuffle, drop_last
        self.generator = seeded_generator(seed)

    def __len__(self) -> int:
        full, rest = divmod(self.n, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def __iter__(self):
        if self.batch_size >= self.n and not self.shuffle:
            yield dict(self.tensors)  # one full batch: no copy at all
            return
        order = torch.randperm(self.n, generator=self.generator) if self.shuffle else None
        for b in range(len(self)):
            start = b * self.batch_size
            if order is None:
                yield {k: v[start : start + self.batch_size] for k, v in self.tensors.items()}
            else:
                idx = order[start : start + self.batch_size]
                yield {k: v[idx.to(v.device)] for k, v in self.tensors.items()}

    def to(self, device) -> InMemoryLoader:
        """The same loader with its tensors moved to ``device`` once (not every batch)."""
        moved = InMemoryLoader(
            {k: v.to(device) for k, v in self.tensors.items()},
            self.batch_size,
            self.shuffle,
            drop_last=self.drop_last,
        )
        moved.generator = self.generator
        return moved


# --------------------------------------------------------------------------- evaluation


@torch.no_grad()
def collect_logits(
    model: nn.Module, loader: Iterable[Batch], device: torch.device | str | None = None
):
    """Run ``model`` in eval mode over ``loader``; return (logits (N, K), labels (N,)) on the CPU.

    ``labels`` is None when the batches carry no ``"label"``.
    """
    return _collect(model, loader, device, "loader")


@torch.no_grad()
def _collect(model, loader, device, name: str):
    check_module(model, "model")
    _check_loader(loader, name)
    device = _as_device(device) if device is not None else _default_device(model)
    was_training = model.training
    model.eval()
    all_logits, all_labels = [], []
    for batch in loader:
        _check_batch(batch, name)
        on_cpu = torch.is_tensor(batch.get("label")) and batch["label"].device.type == "cpu"
        batch = to_device(batch, device)
        logits = model(batch)
        if "label" in batch:
            _check_logits(logits, batch["label"])
            # the range check reads the labels: free on the CPU, once per call on a GPU
            _check_labels(batch["label"], logits.shape[1], name, on_cpu or not all_labels)
            all_labels.append(batch["label"].cpu())
        all_logits.append(logits.float().cpu())
    model.train(was_training)
    if not all_logits:
        raise ValueError("the loader yielded no batches; is the dataset (or split) empty?")
    labels = torch.cat(all_labels) if len(all_labels) == len(all_logits) else None
    return torch.cat(all_logits), labels


def predict_proba(
    model: nn.Module,
    loader: Iterable[Batch],
    device: torch.device | str | None = None,
    return_labels: bool = False,
):
    """Class probabilities (N, K) as a NumPy array (softmax of the logits), in loader order.

    With ``return_labels=True`` also returns the labels (N,) as a NumPy array.
    """
    logits, labels = collect_logits(model, loader, device)
    probs = torch.softmax(logits, dim=1).numpy()
    if return_labels:
        if labels is None:
            raise ValueError("return_labels=True but the batches carry no 'label'")
        return probs, labels.numpy()
    return probs


def evaluate(
    model: nn.Module,
    loader: Iterable[Batch],
    metrics: Sequence[str] = ("accuracy",),
    loss_fn: Callable | None = None,
    device: torch.device | str | None = None,
) -> dict:
    """Loss and ``metrics`` (names from ``EVAL_METRICS``) of ``model`` on ``loader``.

    Returns e.g. ``{"loss": 0.31, "accuracy": 0.91}``; the loss is the mean over samples.
    """
    metrics = _check_metrics(metrics)
    if loss_fn is not None:
        check_callable(loss_fn, "loss_fn")
    logits, labels = collect_logits(model, loader, device)
    if labels is None:
        raise ValueError("evaluate needs batches with a 'label' entry")
    return _scores(logits, labels, metrics, loss_fn or nn.CrossEntropyLoss())


def _scores(
    logits: torch.Tensor, labels: torch.Tensor, metrics: tuple[str, ...], loss_fn: Callable
) -> dict:
    out = {"loss": float(loss_fn(logits, labels))}
    if not metrics:
        return out
    y_true = labels.numpy()
    y_pred = logits.argmax(1).numpy()
    for name in metrics:
        if name == "accuracy":
            out[name] = M.accuracy(y_true, y_pred)
        elif name == "macro_f1":
            out[name] = M.macro_f1(y_true, y_pred, num_classes=logits.shape[1])
        elif name == "ece":
            out[name] = M.expected_calibration_error(torch.softmax(logits, 1).numpy(), y_true)
    return out


# --------------------------------------------------------------------------- checkpoints


def save_checkpoint(model: nn.Module, path: str | Path, **meta) -> Path:
    """Save the model's weights and small metadata (numbers, strings) to ``path``."""
    check_module(model, "model")
    path = _as_path(path)
    if path.is_dir():
        raise IsADirectoryError(f"path {path} is a folder; give a file name such as model.pt")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict(), "meta": meta}, path)
    return path


def load_checkpoint(
    model: nn.Module, path: str | Path, map_location: torch.device | str | None = None
) -> dict:
    """Load weights saved by ``save_checkpoint`` (or ``fit(checkpoint=...)``) into ``model``.

    Uses ``torch.load(weights_only=True)``: a checkpoint can hold tensors and plain data but
    never runs code when loaded. Returns the metadata dict (e.g. epoch and score).
    """
    check_module(model, "model")
    path = _as_path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(
            path, map_location=map_location or _default_device(model), weights_only=True
        )
    except Exception as exc:  # any unpickling failure: not a file written by us
        raise ValueError(
            f"{path} is not a checkpoint written by mmcourse.train.save_checkpoint "
            f"(torch.load failed: {str(exc).splitlines()[0]})"
        ) from exc
    if not isinstance(state, dict) or "state_dict" not in state:
        raise ValueError(f"{path} is not a checkpoint written by mmcourse.train.save_checkpoint")
    try:
        model.load_state_dict(state["state_dict"])
    except RuntimeError as exc:
        raise ValueError(
            f"model does not match the checkpoint at {path} (another architecture or size?): "
            f"{str(exc).splitlines()[0]} ..."
        ) from exc
    return dict(state.get("meta", {}))


def _as_path(path) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or pathlib.Path, got {type(path).__name__}")
    return Path(path)


# --------------------------------------------------------------------------- training


def _make_scheduler(scheduler, optimizer: torch.optim.Optimizer, epochs: int):
    if scheduler is None:
        return None
    if scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    if callable(scheduler):  # a factory: optimizer -> scheduler
        return scheduler(optimizer)
    raise ValueError(
        f"scheduler must be None, 'cosine' or a function optimizer -> scheduler, got {scheduler!r}"
    )


def fit(
    model: nn.Module,
    train_loader: Iterable[Batch],
    val_loader: Iterable[Batch] | None = None,
    *,
    epochs: int = 10,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler=None,
    loss_fn: Callable | None = None,
    grad_clip: float | None = None,
    metrics: Sequence[str] = ("accuracy",),
    monitor: str | None = None,
    patience: int | None = None,
    min_delta: float = 0.0,
    restore_best: bool = True,
    checkpoint: str | Path | None = None,
    seed: int | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> History:
    """Train ``model`` on ``train_loader``; validate on ``val_loader`` after every epoch.

    Args:
        epochs: maximum number of passes over ``train_loader``.
        lr, weight_decay: for the default optimizer, ``torch.optim.AdamW``.
        optimizer: your own optimizer over ``model``'s parameters (then ``lr`` is ignored).
        scheduler: None, ``"cosine"`` (cosine annealing over ``epochs``) or a function
            ``optimizer -> scheduler``; stepped once per epoch (``ReduceLROnPlateau`` is
            stepped with the monitored score).
        loss_fn: ``loss_fn(logits, labels)``; cross-entropy by default.
        grad_clip: clip the global gradient norm to this value before each step.
        metrics: computed on the validation set each epoch (and accuracy on the training
            batches), from ``EVAL_METRICS``.
        monitor: the history key that picks the best epoch, e.g. ``"val_accuracy"``;
            ``"val_loss"`` by default with a validation loader, else ``"train_loss"``.
            Losses are minimised, every other metric maximised (``ece`` is minimised).
        patience: stop after this many epochs without improvement (None: never stop early).
        min_delta: the smallest change of the monitored value that counts as improvement.
        restore_best: load the best epoch's weights into ``model`` when training ends.
        checkpoint: also save the best weights to this file (see ``load_checkpoint``).
        seed: re-seed Python, NumPy, PyTorch and the train loader's generator first, so that
            the same call gives the same history (model initialisation happens before
            ``fit``: seed that yourself with ``mmcourse.seed_everything``).
        device: where to train; by default where the model's parameters are.
        progress: show a tqdm progress bar over epochs (also off when TQDM_DISABLE is set).

    **Many processes.** Started by ``torchrun`` (a ``torch.distributed`` process group is
    initialised), the same call trains data-parallel: the model is wrapped in
    ``DistributedDataParallel``, each batch of the loaders counts as the *global* batch and
    every rank takes its share of it (``mmcourse.distributed.shard_loader``), the loss of each
    share is weighted by its size so that the averaged gradient is the gradient of the global
    batch's mean loss (``loss_fn`` must therefore average over the batch, as cross-entropy
    does), the training numbers are summed and the validation logits gathered over the ranks,
    so that every rank records the same history and takes the same early-stopping decision;
    only rank 0 shows progress and writes the checkpoint. On one process nothing of this runs.

    Training numbers (``train_loss``, ``train_accuracy``) are running means over the
    epoch's batches, measured in train mode (dropout on) while the weights change.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    _check_loader(train_loader, "train_loader")
    if val_loader is not None:
        _check_loader(val_loader, "val_loader")
    check_int(epochs, "epochs")
    check_real(lr, "lr", low=0.0, low_open=True)
    check_real(weight_decay, "weight_decay", low=0.0)
    check_real(min_delta, "min_delta", low=0.0)
    if grad_clip is not None:
        check_real(grad_clip, "grad_clip", low=0.0, low_open=True, what="a positive number or None")
    if patience is not None:
        check_int(patience, "patience")
    if loss_fn is not None:
        check_callable(loss_fn, "loss_fn")
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"optimizer must be a torch.optim.Optimizer over model.parameters() (or None), "
            f"got {type(optimizer).__name__}"
        )
    metrics = _check_metrics(metrics)
    monitor = monitor or ("val_loss" if val_loader is not None else "train_loss")
    allowed = ["train_loss", "train_accuracy"]
    if val_loader is not None:
        allowed += ["val_loss"] + [f"val_{m}" for m in metrics]
    if monitor not in allowed:
        raise ValueError(
            f"monitor must be one of {allowed} (given these loaders and metrics), got {monitor!r}"
        )
    minimise = monitor.endswith("loss") or monitor.endswith("ece")

    if seed is not None:
        used = seed_everything(seed)  # the seed plus MMCOURSE_SEED_OFFSET
        generator = getattr(train_loader, "generator", None)
        if isinstance(generator, torch.Generator):  # a DataLoader's shuffling generator
            generator.manual_seed(used)
    device = _as_device(device) if device is not None else _default_device(model)
    model.to(device)
    distributed = D.is_distributed()
    if distributed:  # torchrun: the same call, data-parallel over the ranks
        net = D.wrap_model(model)
        train_loader = D.shard_loader(train_loader)
        val_loader = None if val_loader is None else D.shard_loader(val_loader)
    else:
        net = model
    main_process = not distributed or D.is_main_process()
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("model has no trainable parameters (all frozen): fit would change nothing")
    if optimizer is None:
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    else:
        owned = {id(p) for group in optimizer.param_groups for p in group["params"]}
        if not any(id(p) in owned for p in trainable):
            raise ValueError(
                "optimizer holds none of model's trainable parameters, so fit would train "
                "nothing; build it from this model, e.g. torch.optim.SGD(model.parameters(), "
                "lr=0.1), after any re-creation of the model"
            )
    sched = _make_scheduler(scheduler, optimizer, epochs)

    history = History(monitor=monitor)
    best_score, best_state, bad_epochs = math.inf if minimise else -math.inf, None, 0
    bar = tqdm(
        range(1, epochs + 1),
        desc="epochs",
        disable=not (_progress_enabled(progress) and main_process),
    )
    for epoch in bar:
        start = time.perf_counter()
        row = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"]}
        row.update(
            _train_one_epoch(net, train_loader, optimizer, loss_fn, grad_clip, device, distributed)
        )
        if val_loader is not None:
            logits, labels = _collect(model, val_loader, device, "val_loader")
            if labels is None:
                raise ValueError("the validation batches carry no 'label'")
            if distributed:  # every rank scored its share: put the shares together
                logits, labels = D.gather_cat(logits), D.gather_cat(labels)
            scores = _scores(logits, labels, metrics, loss_fn)
            row.update({f"val_{k}": v for k, v in scores.items()})
        history.append(row)
        history.seconds.append(time.perf_counter() - start)

        score = row[monitor]
        if not math.isfinite(row["train_loss"]):
            raise FloatingPointError(
                f"the training loss became {row['train_loss']} at epoch {epoch}; "
                "try a smaller lr or grad_clip"
            )
        improved = score < best_score - min_delta if minimise else score > best_score + min_delta
        if improved:
            best_score, bad_epochs = score, 0
            history.best_epoch, history.best_score = epoch, float(score)
            if restore_best:  # a copy, because training keeps changing the tensors in place
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if checkpoint is not None and main_process:
                save_checkpoint(model, checkpoint, epoch=epoch, monitor=monitor, score=float(score))
        else:
            bad_epochs += 1
        bar.set_postfix({k: f"{v:.3g}" for k, v in row.items() if k not in ("epoch", "lr")})

        if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
            sched.step(score)
        elif sched is not None:
            sched.step()
        if patience is not None and bad_epochs >= patience:
            history.stopped_early = epoch < epochs
            break
    bar.close()
    if restore_best and best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return history


def _train_one_epoch(model, loader, optimizer, loss_fn, grad_clip, device, distributed=False):
    """One pass over ``loader``; ``model`` may be a DistributedDataParallel wrapper."""
    model.train()
    # Sums stay tensors on the device: calling .item() per batch would force a GPU sync.
    loss_sum = correct = 0
    seen = 0
    for batch in loader:
        _check_batch(batch, "train_loader")
        on_cpu = torch.is_tensor(batch.get("label")) and batch["label"].device.type == "cpu"
        batch = to_device(batch, device)
        labels = _labels_of(batch)
        logits = model(batch)
        if seen == 0:
            _check_logits(logits, labels)
        # the range check reads the labels: free on the CPU, once per epoch on a GPU
        _check_labels(labels, logits.shape[1], "train_loader", on_cpu or seen == 0)
        loss = loss_fn(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        if distributed:
            # DDP averages the ranks' gradients; weighting each rank's mean loss by its share
            # of the global batch makes that average the gradient of the global mean loss.
            (global_n,) = D.all_reduce_sum(labels.shape[0])
            (loss * (labels.shape[0] * D.get_world_size() / global_n)).backward()
        else:
            loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        n = labels.shape[0]
        loss_sum = loss_sum + loss.detach() * n
        correct = correct + (logits.detach().argmax(1) == labels).sum()
        seen += n
    if distributed:  # the epoch's numbers over all ranks, the same on each
        loss_sum, correct, seen = D.all_reduce_sum(loss_sum, correct, seen)
    if seen == 0:
        raise ValueError("train_loader yielded no batches; is the training set empty?")
    return {"train_loss": float(loss_sum) / seen, "train_accuracy": float(correct) / seen}


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1) of a few runs' results."""
    try:
        values = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"values must be a 1-D sequence of numbers, got {values!r:.60}") from exc
    if values.ndim != 1 or values.size < 2:
        raise ValueError(f"values must be a 1-D sequence of at least 2 numbers, got {values!r}")
    return float(values.mean()), float(values.std(ddof=1))
