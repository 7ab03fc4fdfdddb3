"""mmcourse.train: learning, reproducibility, early stopping, checkpoints, clipping, errors."""

import matplotlib

matplotlib.use("agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from mmcourse import metrics as M
from mmcourse import seed_everything
from mmcourse.train import (
    History,
    InMemoryLoader,
    evaluate,
    fit,
    load_checkpoint,
    mean_std,
    predict_proba,
    save_checkpoint,
)


class DictData(Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"x": self.x[i], "label": self.y[i]}


class MLP(nn.Module):
    """Takes the batch dict, returns logits: the contract of mmcourse.train."""

    def __init__(self, d=8, k=3, hidden=16, p=0.2):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(d, hidden), nn.ReLU(), nn.Dropout(p), nn.Linear(hidden, k)
        )

    def forward(self, batch):
        return self.net(batch["x"])


def blobs(n=240, d=8, k=3, seed=0, flip=False):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % k
    centers = torch.randn(k, d, generator=torch.Generator().manual_seed(99)) * 2
    x = centers[y] + torch.randn(n, d, generator=g)
    if flip:  # same inputs, other labels: what the model learns hurts on this set
        y = (y + 1) % k
    return x, y


def loader(x, y, batch_size=32, shuffle=True, seed=0):
    return DataLoader(
        DictData(x, y),
        batch_size=batch_size,
        shuffle=shuffle,
        generator=torch.Generator().manual_seed(seed),
    )


def test_fit_learns_and_records_history():
    seed_everything(0)
    model = MLP()
    history = fit(
        model,
        loader(*blobs()),
        loader(*blobs(seed=1), shuffle=False),
        epochs=15,
        lr=1e-2,
        metrics=("accuracy", "macro_f1", "ece"),
        progress=False,
    )
    assert isinstance(history, History) and len(history) == 15
    assert history["epoch"] == list(range(1, 16))
    assert history["val_accuracy"][-1] > 0.9
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert set(history.records) >= {"lr", "train_accuracy", "val_loss", "val_macro_f1", "val_ece"}
    assert history.monitor == "val_loss" and not history.stopped_early
    df = history.to_dataframe()
    assert len(df) == 15 and "val_accuracy" in df
    axes = history.plot()
    assert len(axes) == 2
    plt.close("all")


def test_full_batch_list_loader():
    seed_everything(0)
    x, y = blobs()
    history = fit(MLP(), [{"x": x, "label": y}], epochs=30, lr=3e-2, progress=False)
    assert history["train_accuracy"][-1] > 0.9
    assert history.monitor == "train_loss"


def test_two_seeded_runs_give_identical_histories():
    runs = []
    train = loader(*blobs())  # the same DataLoader reused: fit must reseed its generator
    for _ in range(2):
        seed_everything(0)
        model = MLP(p=0.5)  # dropout: the global RNG matters too
        history = fit(
            model,
            train,
            [dict(zip(("x", "label"), blobs(seed=1), strict=True))],
            epochs=5,
            lr=1e-2,
            seed=123,
            progress=False,
        )
        runs.append((history, [p.detach().clone() for p in model.parameters()]))
    assert runs[0][0] == runs[1][0]
    assert runs[0][0].records == runs[1][0].records
    for a, b in zip(runs[0][1], runs[1][1], strict=True):
        assert torch.equal(a, b)
    # and a different seed gives a different run
    seed_everything(0)
    other = fit(MLP(p=0.5), train, epochs=5, lr=1e-2, seed=7, progress=False)
    assert other["train_loss"] != runs[0][0]["train_loss"]


def test_early_stopping_stops_and_restores_best_weights(tmp_path):
    seed_everything(0)
    model = MLP(p=0.0)
    val = [dict(zip(("x", "label"), blobs(seed=1, flip=True), strict=True))]
    history = fit(
        model,
        loader(*blobs()),
        val,
        epochs=50,
        lr=1e-2,
        monitor="val_loss",
        patience=3,
        checkpoint=tmp_path / "best.pt",
        progress=False,
    )
    losses = history["val_loss"]
    assert history.stopped_early and len(history) < 50
    assert len(history) == history.best_epoch + 3  # patience epochs after the best
    assert history.best_epoch == int(np.argmin(losses)) + 1
    # the model now holds the best epoch's weights, not the last epoch's
    assert evaluate(model, val)["loss"] == pytest.approx(min(losses), rel=1e-5)
    assert evaluate(model, val)["loss"] < losses[-1]
    # and the checkpoint on disk holds the same weights
    fresh = MLP(p=0.0)
    meta = load_checkpoint(fresh, tmp_path / "best.pt")
    assert meta["epoch"] == history.best_epoch and meta["monitor"] == "val_loss"
    assert meta["score"] == pytest.approx(min(losses))
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_monitor_accuracy_is_maximised():
    seed_everything(0)
    val = loader(*blobs(seed=1), shuffle=False)
    history = fit(
        MLP(), loader(*blobs()), val, epochs=8, lr=1e-2, monitor="val_accuracy", progress=False
    )
    assert history.best_score == max(history["val_accuracy"])


def test_save_load_round_trip(tmp_path):
    seed_everything(0)
    a, b = MLP(), MLP()
    path = save_checkpoint(a, tmp_path / "sub" / "m.pt", epoch=3, note="hi")
    assert not torch.equal(a.net[0].weight, b.net[0].weight)
    meta = load_checkpoint(b, path)
    assert meta == {"epoch": 3, "note": "hi"}
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a checkpoint"):
        load_checkpoint(b, tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(b, tmp_path / "missing.pt")


def test_gradient_clipping_bounds_the_step():
    x, y = blobs(n=64)
    batch = [{"x": x * 100, "label": y}]  # huge inputs: huge gradients

    def step_size(clip):
        seed_everything(0)
        model = MLP(p=0.0)
        before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
        opt = torch.optim.SGD(model.parameters(), lr=1.0)
        fit(model, batch, epochs=1, optimizer=opt, grad_clip=clip, progress=False)
        after = torch.cat([p.detach().flatten() for p in model.parameters()])
        return float((after - before).norm())

    # plain SGD with lr=1 moves the weights by exactly the (clipped) gradient
    assert step_size(1e-3) == pytest.approx(1e-3, rel=1e-3)
    assert step_size(None) > 1.0


def test_scheduler_options():
    x, y = blobs()
    batch = [{"x": x, "label": y}]
    h = fit(MLP(), batch, epochs=5, lr=1e-2, scheduler="cosine", progress=False)
    assert h["lr"][0] == pytest.approx(1e-2) and h["lr"] == sorted(h["lr"], reverse=True)
    h = fit(
        MLP(),
        batch,
        batch,
        epochs=4,
        lr=1e-2,
        monitor="val_accuracy",
        progress=False,
        scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.1),
    )
    assert h["lr"] == pytest.approx([1e-2, 1e-2, 1e-3, 1e-3])
    h = fit(
        MLP(),
        batch,
        batch,
        epochs=3,
        progress=False,
        scheduler=lambda opt: torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="max", patience=0
        ),
    )
    assert len(h) == 3


def test_evaluate_and_predict_proba_agree_with_metrics():
    seed_everything(0)
    model = MLP()
    val = loader(*blobs(seed=1), batch_size=50, shuffle=False)
    fit(model, loader(*blobs()), epochs=3, lr=1e-2, progress=False)
    probs, labels = predict_proba(model, val, return_labels=True)
    assert probs.shape == (240, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
    np.testing.assert_array_equal(labels, blobs(seed=1)[1].numpy())  # loader order kept
    scores = evaluate(model, val, metrics=("accuracy", "macro_f1", "ece"))
    assert scores["accuracy"] == pytest.approx(M.accuracy(labels, probs))
    assert scores["macro_f1"] == pytest.approx(M.macro_f1(labels, probs, num_classes=3))
    assert scores["ece"] == pytest.approx(M.expected_calibration_error(probs, labels))
    logp = np.log(probs[np.arange(240), labels])
    assert scores["loss"] == pytest.approx(-logp.mean(), rel=1e-4)
    assert not model.training  # evaluation leaves the model in eval mode


def test_progress_bar_respects_flag_and_env(capsys, monkeypatch):
    batch = [dict(zip(("x", "label"), blobs(), strict=True))]
    fit(MLP(), batch, epochs=2, progress=False)
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("TQDM_DISABLE", "1")
    fit(MLP(), batch, epochs=2, progress=True)
    assert capsys.readouterr().err == ""
    monkeypatch.delenv("TQDM_DISABLE")
    fit(MLP(), batch, epochs=2, progress=True)
    assert "epochs" in capsys.readouterr().err


def test_mean_std():
    assert mean_std([1.0, 2.0, 3.0]) == pytest.approx((2.0, 1.0))
    with pytest.raises(ValueError, match="at least 2"):
        mean_std([1.0])


class WrongShape(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 1)

    def forward(self, batch):
        return self.lin(batch["x"])


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"train_loader": []}, ValueError, "no batches"),
        ({"train_loader": [(torch.zeros(2, 8), torch.zeros(2))]}, TypeError, "dict of tensors"),
        ({"train_loader": [{"x": torch.zeros(2, 8)}]}, KeyError, "label"),
        ({"model": WrongShape()}, ValueError, r"\(B, num_classes\)"),
        ({"model": "mlp"}, TypeError, "nn.Module"),
        ({"epochs": 0}, ValueError, "epochs"),
        ({"metrics": ("auc",)}, ValueError, "unknown metric"),
        ({"monitor": "val_accuracy"}, ValueError, "monitor"),
        ({"grad_clip": -1.0}, ValueError, "grad_clip"),
        ({"patience": 0}, ValueError, "patience"),
        ({"scheduler": "linear"}, ValueError, "scheduler"),
        ({"loss_fn": lambda logits, y: logits.sum() * float("nan")}, FloatingPointError, "lr"),
    ],
)
def test_fit_bad_input(kwargs, error, match):
    args = {
        "model": MLP(),
        "train_loader": [dict(zip(("x", "label"), blobs(), strict=True))],
        "epochs": 1,
        "progress": False,
    }
    args.update(kwargs)
    with pytest.raises(error, match=match):
        fit(**args)


def test_evaluate_bad_input():
    with pytest.raises(ValueError, match="no batches"):
        evaluate(MLP(), [])
    with pytest.raises(ValueError, match="label"):
        evaluate(MLP(), [{"x": torch.zeros(2, 8)}])
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate(
            MLP(), [{"x": torch.zeros(2, 8), "label": torch.zeros(2).long()}], metrics=["top5"]
        )


def test_exercise_early_stopping_solution_passes_and_wrong_answers_fail():
    from mmcourse.exercises import check, get

    exercise = get("04.early_stopping")
    exercise.check(exercise.solution())  # the worked solution passes

    def off_by_one(losses, patience):  # counts epochs from 0
        best, stop = exercise.solution()(losses, patience)
        return best - 1, stop - 1

    def ties_improve(losses, patience):  # treats an equal loss as an improvement
        best, best_epoch, bad = float("inf"), 0, 0
        for epoch, loss in enumerate(losses, 1):
            best, best_epoch, bad = (
                (loss, epoch, 0) if loss <= best else (best, best_epoch, bad + 1)
            )
            if bad >= patience:
                return best_epoch, epoch
        return best_epoch, len(losses)

    for wrong in (off_by_one, ties_improve):
        with pytest.raises(AssertionError):
            exercise.check(wrong)
        assert check("04.early_stopping", wrong, quiet=True) is False
    assert check("04.early_stopping", None, quiet=True) is False


def test_exercise_early_stopping_agrees_with_fit():
    # the exercise's rule is the one fit uses: replay a recorded val-loss curve through fit
    losses = [1.0, 0.8, 0.7, 0.75, 0.9, 1.0, 1.2]

    class Replay(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(()))
            self.calls = 0

        def forward(self, batch):
            if not self.training:
                self.calls += 1
            loss = losses[min(self.calls, len(losses)) - 1] if not self.training else 1.0
            # logits whose cross-entropy on label 0 equals the recorded loss
            p = float(np.exp(-loss))
            row = torch.tensor([np.log(p), np.log(1 - p)]) + 0 * self.w
            return row.expand(batch["label"].shape[0], 2)

    from mmcourse.exercises import get

    batch = [{"x": torch.zeros(4, 1), "label": torch.zeros(4).long()}]
    history = fit(Replay(), batch, batch, epochs=7, patience=2, progress=False)
    best, stop = get("04.early_stopping").solution()(losses, 2)
    assert (history.best_epoch, len(history)) == (best, stop)


def test_in_memory_loader_batches_cover_each_sample_once_per_epoch():
    x, y = torch.arange(10).float()[:, None], torch.arange(10)
    loader = InMemoryLoader({"x": x, "label": y}, batch_size=4, shuffle=True, seed=0)
    assert len(loader) == 3
    epochs = [torch.cat([b["label"] for b in loader]) for _ in range(2)]
    for order in epochs:
        assert sorted(order.tolist()) == list(range(10))
    assert not torch.equal(epochs[0], epochs[1])  # a fresh permutation each epoch
    batch = next(iter(loader))
    assert torch.equal(batch["x"][:, 0].long(), batch["label"])  # rows stay aligned
    again = InMemoryLoader({"x": x, "label": y}, batch_size=4, shuffle=True, seed=0)
    assert torch.equal(torch.cat([b["label"] for b in again]), epochs[0])  # seeded
    plain = InMemoryLoader({"x": x, "label": y}, batch_size=4)
    assert [b["label"].tolist() for b in plain] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert len(InMemoryLoader({"x": x}, batch_size=4, drop_last=True)) == 2
    full = InMemoryLoader({"x": x, "label": y})
    assert len(full) == 1 and next(iter(full))["x"] is x  # one full batch, no copy
    moved = loader.to("cpu")
    assert moved.generator is loader.generator and len(moved) == 3


def test_fit_reseeds_an_in_memory_loader():
    x, y = blobs()
    train = InMemoryLoader({"x": x, "label": y}, batch_size=32, shuffle=True)
    histories = []
    for _ in range(2):
        seed_everything(0)
        histories.append(fit(MLP(), train, epochs=3, lr=1e-2, seed=5, progress=False))
    assert histories[0] == histories[1]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"tensors": {}}, TypeError, "non-empty dict"),
        ({"tensors": {"x": torch.zeros(3), "label": torch.zeros(4)}}, ValueError, "same length"),
        ({"tensors": {"x": torch.zeros(0, 2)}}, ValueError, "empty"),
        ({"tensors": {"x": [1, 2]}}, TypeError, "tensor"),
        ({"tensors": {"x": torch.zeros(3)}, "batch_size": 0}, ValueError, "batch_size"),
    ],
)
def test_in_memory_loader_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        InMemoryLoader(**kwargs)


def test_fit_equals_a_hand_written_loop_bit_for_bit():
    # the single-process path is the plain loop: seed, shuffle, AdamW step, nothing else
    # (notebook 04's own loop and notebook 09's distributed proof rely on it)
    x, y = blobs()
    train = InMemoryLoader({"x": x, "label": y}, batch_size=32, shuffle=True)
    seed_everything(0)
    model = MLP(p=0.0)
    history = fit(model, train, epochs=3, lr=1e-2, seed=4, progress=False, restore_best=False)

    seed_everything(0)
    reference = MLP(p=0.0)
    seed_everything(4)
    order = torch.Generator().manual_seed(4)
    optimizer = torch.optim.AdamW(reference.parameters(), lr=1e-2, weight_decay=0.0)
    losses = []
    for _ in range(3):
        total = 0.0
        for idx in torch.randperm(len(y), generator=order).split(32):
            loss = nn.functional.cross_entropy(reference({"x": x[idx]}), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        losses.append(total / len(y))
    for a, b in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.equal(a, b)
    assert history["train_loss"] == pytest.approx(losses, rel=1e-6)
