"""Experiments of notebook 03 (fusion), as small tested functions.

* ``make_xor_modalities``: the "XOR of modalities" task, where each modality alone carries no
  information about the label and additive fusion cannot succeed.
* ``av_digit_features`` and ``compare_fusions``: every fusion operator on the audio-visual
  digits, with fixed simple features, several seeds, parameters and time.
* ``two_noisy_views``, ``gated_score``, ``gate_accuracy``, ``optimal_gate``,
  ``plot_gate_demo``: the logic behind the widget where a gate moves a decision boundary.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from mmcourse import fusion as F
from mmcourse._checks import check_finite, check_real, check_seed
from mmcourse.models import MultimodalClassifier
from mmcourse.utils import seed_everything

__all__ = [
    "make_xor_modalities",
    "train_full_batch",
    "accuracy_of",
    "av_digit_features",
    "fusion_zoo",
    "compare_fusions",
    "two_noisy_views",
    "gated_score",
    "gate_accuracy",
    "optimal_gate",
    "plot_gate_demo",
]


def _positive_int(value, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


# --------------------------------------------------------------------------------------------
# The XOR of modalities
# --------------------------------------------------------------------------------------------


def make_xor_modalities(
    n: int = 400, noise: float = 0.3, dim: int = 2, seed: int = 0
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """A task that only an interaction between modalities can solve.

    Each example has two hidden bits s_a, s_b in {-1, +1} (independent, fair coins). Modality
    "a" shows s_a in its first feature, modality "b" shows s_b in its first feature, both with
    Gaussian noise of std ``noise``; the other ``dim - 1`` features are pure noise. The label
    is XOR: y = 1 when s_a != s_b. Each modality alone is independent of y (50 % at best), and
    no linear score w_a . x_a + w_b . x_b + c can separate the classes: the label depends on
    the PRODUCT s_a * s_b, an interaction that additive fusion does not contain.

    Returns ({"a": (n, dim), "b": (n, dim)} float32, labels (n,) int64).
    """
    _positive_int(n, "n")
    _positive_int(dim, "dim")
    check_real(noise, "noise", low=0.0, what="a non-negative std")
    check_seed(seed)
    g = torch.Generator().manual_seed(seed)
    s = torch.randint(0, 2, (n, 2), generator=g) * 2 - 1  # the two hidden bits
    x = noise * torch.randn(n, 2, dim, generator=g)
    x[:, :, 0] += s.float()
    labels = (s[:, 0] != s[:, 1]).long()
    return {"a": x[:, 0].contiguous(), "b": x[:, 1].contiguous()}, labels


# --------------------------------------------------------------------------------------------
# Training on one full batch
# --------------------------------------------------------------------------------------------


def _check_batch(batch, labels) -> None:
    if not isinstance(batch, Mapping) or not batch:
        raise TypeError(f"batch must be a non-empty dict of tensors, got {type(batch).__name__}")
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.long or labels.ndim != 1:
        raise ValueError("labels must be a 1-D int64 tensor of class indices")
    for key, value in batch.items():
        if not isinstance(value, torch.Tensor) or value.shape[0] != labels.shape[0]:
            raise ValueError(
                f"batch[{key!r}] must be a tensor with {labels.shape[0]} rows (one per label)"
            )


def train_full_batch(
    model: nn.Module,
    batch: Mapping[str, torch.Tensor],
    labels: torch.Tensor,
    epochs: int = 200,
    lr: float = 0.01,
    weight_decay: float = 0.0,
) -> list[float]:
    """Adam on the whole training set at once (small data: one step per epoch, no loader).

    ``model(batch)`` must return logits (B, C). Returns the loss per epoch. For validation,
    early stopping and checkpoints use ``mmcourse.train.fit`` with ``[batch]`` as loader.
    """
    _check_batch(batch, labels)
    _positive_int(epochs, "epochs")
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    model.train()
    losses = []
    for _ in range(epochs):
        loss = nn.functional.cross_entropy(model(batch), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    return losses


@torch.no_grad()
def accuracy_of(model: nn.Module, batch: Mapping[str, torch.Tensor], labels: torch.Tensor) -> float:
    """Fraction of correct argmax predictions of ``model(batch)``."""
    _check_batch(batch, labels)
    model.eval()
    return (model(batch).argmax(1) == labels).float().mean().item()


# --------------------------------------------------------------------------------------------
# Audio-visual digits: simple fixed features and the comparison of all operators
# --------------------------------------------------------------------------------------------


def av_digit_features(data, n_mfcc: int = 13) -> dict[str, torch.Tensor]:
    """Fixed, cheap features of ``mmcourse.datasets.load_av_digits()``, standardised with the
    training split's mean and std (no statistics leak from validation or test).

    Returns a dict of float32 tensors, N rows each:
      "image"     (N, 64)            the degraded 8x8 image, flattened
      "audio"     (N, 2 * n_mfcc)    MFCCs pooled over time: mean and std of each coefficient
      "image_seq" (N, 8, 8)          the image as a sequence of 8 rows (for cross-attention)
      "audio_seq" (N, frames // 4, n_mfcc)  MFCC frames averaged in groups of 4 (40 ms at the
                  default hop of 10 ms), as a sequence (for cross-attention)
    """
    from mmcourse.audio import mfcc

    for name in ("images", "audio", "split", "sample_rate"):
        if not hasattr(data, name):
            raise TypeError(
                f"data must be an AVDigits set (it has no {name!r}); use load_av_digits()"
            )
    train = torch.as_tensor(np.asarray(data.split) == "train")
    if not train.any():
        raise ValueError("data has no 'train' rows to compute the standardisation from")

    def standardise(x: torch.Tensor) -> torch.Tensor:
        flat = x[train].reshape(-1, x.shape[-1])  # statistics per last-axis feature
        return (x - flat.mean(0)) / (flat.std(0) + 1e-6)

    images = torch.as_tensor(np.asarray(data.images, dtype=np.float32))
    audio = torch.as_tensor(np.asarray(data.audio, dtype=np.float32))
    # in chunks of 256 clips: the STFT of all clips at once would add ~250 MB of peak memory
    coeffs = torch.cat(
        [mfcc(chunk, data.sample_rate, n_mfcc=n_mfcc) for chunk in audio.split(256)]
    )  # (N, n_mfcc, frames)
    pooled = torch.cat([coeffs.mean(-1), coeffs.std(-1)], dim=1)
    return {
        "image": standardise(images.reshape(len(images), -1)),
        "audio": standardise(pooled),
        "image_seq": standardise(images.reshape(len(images), 8, 8)),
        "audio_seq": standardise(_group_frames(coeffs.transpose(1, 2), 4)),
    }


def _group_frames(x: torch.Tensor, group: int) -> torch.Tensor:
    """(N, frames, d) -> (N, frames // group, d): average consecutive frames (drop the rest)."""
    n, frames, d = x.shape
    keep = frames // group * group
    return x[:, :keep].reshape(n, frames // group, group, d).mean(2)


class TokenEncoder(nn.Module):
    """Per-position encoder for a sequence: h_t = ReLU(W x_t + b + p_t), with a learned
    position embedding p_t. Attention alone ignores order; p_t tells it which row / frame
    a token is. x (B, length, in_dim) -> (B, length, out_dim)."""

    def __init__(self, in_dim: int, length: int, out_dim: int):
        super().__init__()
        self.in_dim = _positive_int(in_dim, "in_dim")
        self.length = _positive_int(length, "length")
        self.out_dim = _positive_int(out_dim, "out_dim")
        self.linear = nn.Linear(in_dim, out_dim)
        self.position = nn.Parameter(0.1 * torch.randn(length, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            not isinstance(x, torch.Tensor)
            or x.ndim != 3
            or x.shape[1:]
            != (
                self.length,
                self.in_dim,
            )
        ):
            raise ValueError(
                f"x must have shape (B, {self.length}, {self.in_dim}), got "
                f"{tuple(getattr(x, 'shape', ()))}"
            )
        return torch.relu(self.linear(x) + self.position)


def fusion_zoo(in_dims: Sequence[int], num_classes: int, dim: int = 32) -> dict[str, Callable]:
    """One factory per operator, each giving a fused vector of about ``dim`` units (late
    fusion gives class scores). Used to compare the operators on equal terms."""
    in_dims = F._check_in_dims(in_dims, "fusion_zoo", 2, None)  # fail here, not in a factory
    _positive_int(num_classes, "num_classes")
    _positive_int(dim, "dim")
    return {
        "concat": lambda: F.ConcatFusion(in_dims, dim, activation="relu"),
        "weighted": lambda: F.WeightedFusion(in_dims, dim),
        "late (mean)": lambda: F.LateFusion(in_dims, num_classes, mode="mean"),
        "late (product)": lambda: F.LateFusion(in_dims, num_classes, mode="product"),
        "attention": lambda: F.AttentionFusion(in_dims, dim),
        "GMU": lambda: F.GatedFusion(in_dims, dim),
        "TFN": lambda: F.TensorFusion(in_dims, dim),
        "LMF": lambda: F.LowRankFusion(in_dims, dim, rank=4),
        "FiLM": lambda: F.FiLMFusion(in_dims, dim),
    }


def compare_fusions(
    builders: Mapping[str, Callable[[], nn.Module]],
    features: Mapping[str, torch.Tensor],
    labels,
    split,
    seeds: Sequence[int] = (0, 1, 2),
    epochs: int = 150,
    lr: float = 0.01,
    weight_decay: float = 1e-4,
    device: torch.device | str = "cpu",
    progress: bool = False,
):
    """Train every model of ``builders`` with every seed; test accuracy, size and time.

    ``builders[name]()`` returns a fresh model (called after seeding, so initialisation
    follows the seed) that takes a batch dict from ``features``. Training is full-batch Adam
    on the "train" rows for ``epochs`` steps; the weights of the epoch with the best
    validation accuracy are kept (``mmcourse.train.fit``) and scored on the "test" rows.

    Returns a pandas DataFrame, one row per (model, seed): model, seed, test_accuracy,
    val_accuracy, parameters, seconds. ``progress`` shows a tqdm bar over the models (also
    off when TQDM_DISABLE is set).
    """
    import os

    import pandas as pd
    from tqdm.auto import tqdm

    from mmcourse.train import fit

    labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    split = np.asarray(split)
    if split.shape != (len(labels),):
        raise ValueError(f"split must have one entry per label ({len(labels)}), got {split.shape}")
    if not seeds:
        raise ValueError("seeds must list at least one seed")

    def part(name: str) -> dict[str, torch.Tensor]:
        rows = torch.as_tensor(split == name)
        if not rows.any():
            raise ValueError(f"split has no {name!r} rows")
        batch = {k: v[rows].to(device) for k, v in features.items()}
        batch["label"] = labels[rows].to(device)
        return batch

    train, val, test = part("train"), part("val"), part("test")
    rows = []
    bar = tqdm(
        builders.items(),
        desc="models",
        disable=not progress or bool(os.environ.get("TQDM_DISABLE")),
    )
    for name, build in bar:
        for seed in seeds:
            seed_everything(seed)
            model = build().to(device)
            start = time.perf_counter()
            fit(
                model,
                [train],
                [val],
                epochs=epochs,
                lr=lr,
                weight_decay=weight_decay,
                monitor="val_accuracy",
                progress=False,
            )
            seconds = time.perf_counter() - start
            with torch.no_grad():
                val_acc = (model(val).argmax(1) == val["label"]).float().mean().item()
                test_acc = (model(test).argmax(1) == test["label"]).float().mean().item()
            rows.append(
                {
                    "model": name,
                    "seed": seed,
                    "test_accuracy": test_acc,
                    "val_accuracy": val_acc,
                    "parameters": F.count_parameters(model),
                    "seconds": seconds,
                }
            )
    return pd.DataFrame(rows)


def classifier_builders(
    zoo: Mapping[str, Callable[[], nn.Module]],
    encoders: Mapping[str, Callable[[], nn.Module]],
    num_classes: int,
) -> dict[str, Callable[[], MultimodalClassifier]]:
    """Wrap fusion factories into classifier factories sharing the same encoder factories."""
    return {
        name: (
            lambda make=make: MultimodalClassifier(
                {k: enc() for k, enc in encoders.items()}, make(), num_classes
            )
        )
        for name, make in zoo.items()
    }


# --------------------------------------------------------------------------------------------
# The gate widget: two noisy views of one binary label
# --------------------------------------------------------------------------------------------


def two_noisy_views(
    n: int = 400, sigma_a: float = 0.6, sigma_b: float = 1.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two scalar "modalities" of one binary label, each the class mean plus Gaussian noise:

        a = m + N(0, sigma_a^2),   b = m + N(0, sigma_b^2),   m = -1 (class 0) or +1 (class 1)

    Classes are balanced. Returns (a, b, y): float arrays (n,) and an int array (n,)."""
    _positive_int(n, "n")
    check_real(sigma_a, "sigma_a", low=0.0, low_open=True, what="positive (a finite std)")
    check_real(sigma_b, "sigma_b", low=0.0, low_open=True, what="positive (a finite std)")
    check_seed(seed)
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    m = 2.0 * y - 1.0
    return m + sigma_a * rng.standard_normal(n), m + sigma_b * rng.standard_normal(n), y


def _check_gate(gate) -> float:
    if isinstance(gate, bool) or not isinstance(gate, (int, float)) or not 0.0 <= gate <= 1.0:
        raise ValueError(f"gate must be a number in [0, 1], got {gate!r}")
    return float(gate)


def gated_score(a, b, gate: float) -> np.ndarray:
    """The fused score g * a + (1 - g) * b: a GMU with a fixed gate g and identity candidates
    (or a weighted fusion with weights g and 1 - g). Predict class 1 when it is > 0."""
    g = _check_gate(gate)
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    return g * a + (1.0 - g) * b


def gate_accuracy(a, b, y, gate: float) -> float:
    """Accuracy of the rule "class 1 when g * a + (1 - g) * b > 0"."""
    score = gated_score(a, b, gate)
    y = np.asarray(y)
    if y.shape != score.shape:
        raise ValueError(f"y must have the shape of a and b {score.shape}, got {y.shape}")
    if y.dtype.kind not in "iub" or not np.isin(y, (0, 1)).all():
        raise ValueError(f"y must hold the labels 0 and 1, got dtype {y.dtype}")
    check_finite(score, "a and b")
    return float(np.mean((score > 0) == (y == 1)))


def optimal_gate(sigma_a: float, sigma_b: float) -> float:
    """The Bayes-optimal gate for ``two_noisy_views``: weight each view by its precision,
    g = (1/sigma_a^2) / (1/sigma_a^2 + 1/sigma_b^2) = sigma_b^2 / (sigma_a^2 + sigma_b^2)."""
    check_real(sigma_a, "sigma_a", low=0.0, low_open=True, what="positive (a finite std)")
    check_real(sigma_b, "sigma_b", low=0.0, low_open=True, what="positive (a finite std)")
    return sigma_b**2 / (sigma_a**2 + sigma_b**2)


def boundary_line(gate: float, span: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """Two end points (xs, ys) of the decision boundary g * a + (1 - g) * b = 0 in the
    (a, b) plane, within [-span, span]."""
    g = _check_gate(gate)
    check_real(span, "span", low=0.0, low_open=True)
    if g == 1.0:  # b does not count: the boundary is the vertical line a = 0
        return np.array([0.0, 0.0]), np.array([-span, span])
    a = np.array([-span, span])
    b = -g / (1.0 - g) * a
    return a, np.clip(b, -10 * span, 10 * span)


def plot_gate_demo(a, b, y, gate: float, ax=None):
    """Scatter the two views, draw the boundary of gate ``g`` and report its accuracy."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4.2))
    y = np.asarray(y)
    ax.scatter(a[y == 0], b[y == 0], s=8, alpha=0.5, label="class 0")
    ax.scatter(a[y == 1], b[y == 1], s=8, alpha=0.5, label="class 1")
    xs, ys = boundary_line(gate)
    ax.plot(xs, ys, "k-", lw=2, label="boundary")
    ax.set(
        xlim=(-4, 4),
        ylim=(-4, 4),
        xlabel="modality a",
        ylabel="modality b",
        title=f"gate g = {gate:.2f}: accuracy {gate_accuracy(a, b, y, gate):.1%}",
    )
    ax.legend(loc="lower right", fontsize=8)
    return ax


def gate_sweep(a, b, y, gates=None) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy for each gate in ``gates`` (default 101 values from 0 to 1)."""
    if gates is not None and (
        isinstance(gates, (str, bytes)) or np.ndim(gates) != 1 or len(gates) == 0
    ):
        raise ValueError(
            f"gates must be None or a non-empty list of numbers in [0, 1], got {gates!r}"
        )
    gates = np.linspace(0, 1, 101) if gates is None else np.asarray(gates, dtype=float)
    return gates, np.array([gate_accuracy(a, b, y, float(g)) for g in gates])


# --------------------------------------------------------------------------------------------
# Pictures
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def xor_decision_grid(
    model: nn.Module, span: float = 2.0, steps: int = 81, dim: int = 2
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """P(y = 1) of a model trained on ``make_xor_modalities`` over a grid of the two
    informative features (a_0, b_0), the other features set to 0.

    Returns (U, V, P), each (steps, steps): a_0 = U, b_0 = V, P the predicted probability.
    """
    _positive_int(steps, "steps")
    _positive_int(dim, "dim")
    check_real(span, "span", low=0.0, low_open=True)
    axis = torch.linspace(-span, span, steps)
    U, V = torch.meshgrid(axis, axis, indexing="xy")
    a = torch.zeros(steps * steps, dim)
    b = torch.zeros(steps * steps, dim)
    a[:, 0], b[:, 0] = U.reshape(-1), V.reshape(-1)
    device = next(iter(model.parameters()), torch.empty(0)).device
    model.eval()
    probs = torch.softmax(model({"a": a.to(device), "b": b.to(device)}), dim=1)[:, 1]
    return U.numpy(), V.numpy(), probs.reshape(steps, steps).cpu().numpy()


def _box(ax, x, y, text, color, width=0.26, height=0.17):
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(
        FancyBboxPatch(
            (x - width / 2, y - height / 2),
            width,
            height,
            boxstyle="round,pad=0.01",
            fc=color,
            ec="0.3",
        )
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=8)


def _arrow(ax, start, end):
    ax.annotate("", xy=end, xytext=start, arrowprops={"arrowstyle": "->", "color": "0.3"})


def plot_fusion_levels(axes=None):
    """Four schematic diagrams: early, late, model-level in parallel, model-level in series.

    Returns the four axes. Blue boxes are inputs, green ones learned modules, orange ones
    the point where the modalities meet.
    """
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 4, figsize=(15, 3.2))
    axes = list(np.ravel(axes))
    if len(axes) != 4:
        raise ValueError(f"axes must hold 4 subplots, got {len(axes)}")
    blue, green, orange = "#cfe2f3", "#d9ead3", "#fce5cd"
    # early: features concatenated, one model
    ax = axes[0]
    _box(ax, 0.15, 0.75, "image I", blue)
    _box(ax, 0.15, 0.25, "audio A", blue)
    _box(ax, 0.5, 0.5, "concat\n[I; A]", orange, width=0.22)
    _box(ax, 0.84, 0.5, "one model\n-> y", green, width=0.26)
    for y in (0.75, 0.25):
        _arrow(ax, (0.28, y), (0.39, 0.5))
    _arrow(ax, (0.61, 0.5), (0.71, 0.5))
    ax.set_title("early (feature-level) fusion")
    # late: one model per modality, predictions combined
    ax = axes[1]
    for y, name in ((0.75, "image I"), (0.25, "audio A")):
        _box(ax, 0.13, y, name, blue, width=0.2)
        _box(ax, 0.46, y, "model\n-> p(y | .)", green)
        _arrow(ax, (0.23, y), (0.33, y))
        _arrow(ax, (0.59, y), (0.71, 0.5))
    _box(ax, 0.85, 0.5, "average /\nproduct", orange, width=0.26)
    ax.set_title("late (decision-level) fusion")
    # model-level, parallel: branches side by side, joined inside the network
    ax = axes[2]
    for y, name in ((0.75, "image I"), (0.25, "audio A")):
        _box(ax, 0.13, y, name, blue, width=0.2)
        _box(ax, 0.42, y, "encoder", green, width=0.2)
        _arrow(ax, (0.23, y), (0.32, y))
        _arrow(ax, (0.52, y), (0.6, 0.5))
    _box(ax, 0.7, 0.5, "fusion\nlayer", orange, width=0.2)
    _box(ax, 0.92, 0.5, "head", green, width=0.13)
    _arrow(ax, (0.8, 0.5), (0.855, 0.5))
    ax.set_title("model-level: in parallel")
    # model-level, series: one model's output steers the next
    ax = axes[3]
    _box(ax, 0.13, 0.78, "audio A", blue, width=0.2)
    _box(ax, 0.45, 0.78, "model 1", green, width=0.2)
    _box(ax, 0.13, 0.25, "image I", blue, width=0.2)
    _box(ax, 0.55, 0.25, "model 2\n(conditioned)", orange, width=0.3)
    _box(ax, 0.9, 0.25, "-> y", green, width=0.14)
    _arrow(ax, (0.23, 0.78), (0.35, 0.78))
    _arrow(ax, (0.5, 0.69), (0.55, 0.34))
    _arrow(ax, (0.23, 0.25), (0.4, 0.25))
    _arrow(ax, (0.7, 0.25), (0.83, 0.25))
    ax.text(0.6, 0.52, "e.g. FiLM:\ngamma, beta", fontsize=8)
    ax.set_title("model-level: in series")
    for ax in axes:
        ax.set(xlim=(0, 1), ylim=(0, 1))
        ax.axis("off")
    return axes


@torch.no_grad()
def response_grid(
    fusion: nn.Module, span: float = 2.0, steps: int = 41
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What a two-input fusion operator computes, as a surface over two SCALAR modalities.

    ``fusion`` must take two (B, 1) tensors. The response is output unit 0, or, for an
    operator that produces class scores (late fusion), the score difference of class 1 and
    class 0. Returns (U, V, R), each (steps, steps): x_a = U, x_b = V, R the response.
    """
    if list(getattr(fusion, "in_dims", [])) != [1, 1]:
        raise ValueError("fusion must be built for two scalar modalities: in_dims=[1, 1]")
    _positive_int(steps, "steps")
    check_real(span, "span", low=0.0, low_open=True)
    axis = torch.linspace(-span, span, steps)
    U, V = torch.meshgrid(axis, axis, indexing="xy")
    was_training = fusion.training
    fusion.eval()
    out = fusion([U.reshape(-1, 1), V.reshape(-1, 1)])
    fusion.train(was_training)
    if getattr(fusion, "produces_logits", False):
        response = out[:, 1] - out[:, 0]
    else:
        response = out[:, 0]
    return U.numpy(), V.numpy(), response.reshape(steps, steps).numpy()


def interaction_strength(response: np.ndarray) -> float:
    """How far a surface R(x_a, x_b) on a grid is from additive, f(x_a) + g(x_b).

    Uses the mixed difference R(u, v) - R(u, v_0) - R(u_0, v) + R(u_0, v_0) at the grid's
    centre (u_0, v_0), which is 0 for every additive surface; returns its largest absolute
    value divided by the range of R (so the scale of the weights does not matter).
    """
    try:
        r = np.asarray(response, dtype=float)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"response must be a 2-D grid of numbers, got {response!r:.60}") from exc
    if r.ndim != 2 or min(r.shape) < 3:
        raise ValueError(f"response must be a 2-D grid of at least 3 x 3, got shape {r.shape}")
    check_finite(r, "response")
    i0, j0 = r.shape[0] // 2, r.shape[1] // 2
    mixed = r - r[i0 : i0 + 1, :] - r[:, j0 : j0 + 1] + r[i0, j0]
    spread = r.max() - r.min()
    return float(np.abs(mixed).max() / spread) if spread > 0 else 0.0
