"""The seed article's case study, cats vs dogs from a picture and a caption, done right.

The seed's model (section 5), in PyTorch and built from the course's parts:

    I' = ImageCNN(image)                         CNN image branch          (B, d)
    T' = TextRNN(caption ids, mask)              embedding + LSTM branch   (B, d)
    X' = sigma(W_1 I' + W_2 T' + b)              the seed's fusion equation (ConcatFusion)
    z  = W_3 X' + b',   y^ = sigma(z)            one sigmoid output: P(dog)
    loss = binary cross-entropy(y^, y)

:class:`CatsDogsNet` wraps ``mmcourse.models.MultimodalClassifier`` with one output logit
``z`` and returns the two logits ``[0, z]``: ``softmax([0, z])[1] = sigmoid(z)`` and the
cross-entropy of ``[0, z]`` is exactly the binary cross-entropy of ``sigmoid(z)``, so the
course's training loop (``mmcourse.train.fit``) trains the seed's model unchanged.

A net also carries its vocabulary (so a saved model can read new captions) and, per
modality, the mean training feature that stands in for a *missing* modality: a batch may
leave out ``"text"`` (or ``"image"``) or flag absent rows with ``"text_present"`` (B,) bool.
The same substitution gives each modality's contribution to a prediction
(:func:`contributions`, Shapley values from ``mmcourse.explain``).

For learners: :func:`predict` (one picture + one caption, clear errors on bad input),
:func:`save` / :func:`load` (state dict + vocabulary, loaded with ``weights_only=True``), and
:func:`make_demo` (an ipywidgets front end over :func:`demo_view`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mmcourse import explain
from mmcourse._checks import check_finite, check_int, check_real, check_seed
from mmcourse.encoders import ImageCNN, TextRNN
from mmcourse.fusion import ConcatFusion, GatedFusion, LowRankFusion, TensorFusion
from mmcourse.models import MultimodalClassifier
from mmcourse.text import UNK, Vocab, tokenize
from mmcourse.train import InMemoryLoader, fit
from mmcourse.utils import seed_everything, seeded_generator

CLASSES = ("cat", "dog")
IMAGE_SHAPE = (3, 32, 32)
MODALITIES = ("image", "text")
FORMAT = "mmcourse-catsdogs-v1"

# name -> (constructor, description). "seed" is the article's equation; the others are
# operators of mmcourse.fusion that multiply modalities (see notebook 03).
FUSIONS = {
    "seed": "sigma(W [I'; T'] + b), the seed's equation (ConcatFusion, sigmoid)",
    "gmu": "gated multimodal unit (GatedFusion)",
    "low_rank": "low-rank multimodal fusion (LowRankFusion, rank 4)",
    "tensor": "tensor fusion (TensorFusion) + linear layer",
}


def make_fusion(name: str, in_dims: Sequence[int], hidden: int = 32) -> nn.Module:
    """A fusion operator by name (see ``FUSIONS``) for features of sizes ``in_dims``.

    With one modality every name gives ``ConcatFusion([d], hidden, "sigmoid")``: the same
    head as the fused model, so that unimodal baselines differ only by the missing branch.
    """
    if name not in FUSIONS:
        raise ValueError(f"fusion must be one of {sorted(FUSIONS)}, got {name!r}")
    if isinstance(in_dims, (str, bytes)) or not isinstance(in_dims, Sequence):
        raise TypeError(f"in_dims must be a list of feature sizes, got {in_dims!r}")
    check_int(hidden, "hidden")
    in_dims = list(in_dims)
    if len(in_dims) == 1 or name == "seed":
        return ConcatFusion(in_dims, hidden, activation="sigmoid")
    if name == "gmu":
        return GatedFusion(in_dims, hidden)
    if name == "low_rank":
        return LowRankFusion(in_dims, hidden, rank=4)
    tensor = TensorFusion(in_dims)
    return nn.Sequential(tensor, nn.Linear(tensor.out_dim, hidden), nn.ReLU())


def _wrap(fusion: nn.Module) -> nn.Module:
    """Give an nn.Sequential (tensor fusion + linear layer) the ``in_dims``/``out_dim`` that
    MultimodalClassifier expects of a fusion."""
    if isinstance(fusion, nn.Sequential) and not hasattr(fusion, "out_dim"):
        fusion.in_dims = fusion[0].in_dims
        fusion.out_dim = fusion[-2].out_features
    return fusion


class CatsDogsNet(nn.Module):
    """The seed's cats-vs-dogs model (or a unimodal baseline) with its vocabulary.

    Args:
        vocab: a ``mmcourse.text.Vocab`` built on the training captions (or its token list).
        modalities: ``("image", "text")``, ``("image",)`` or ``("text",)``.
        fusion: a name from ``FUSIONS``; "seed" is the article's equation.
        feature_dim: size d of I' and T'. hidden: size of X'.
        max_len: captions are cut to this many tokens.
        image_channels: widths of the CNN blocks (see ``ImageCNN``).

    ``forward(batch)`` -> logits (B, 2) = [0, z]; ``logit(batch)`` -> z (B,);
    ``proba(batch)`` -> P(dog) (B,). ``config`` holds the arguments (for ``save``/``load``).
    """

    def __init__(
        self,
        vocab: Vocab | Sequence[str],
        modalities: Sequence[str] = MODALITIES,
        fusion: str = "seed",
        feature_dim: int = 32,
        hidden: int = 32,
        max_len: int = 16,
        image_channels: Sequence[int] = (8, 16),
        image_pool: int = 4,
    ):
        super().__init__()
        if not isinstance(vocab, Vocab):
            if isinstance(vocab, str) or not isinstance(vocab, Sequence):
                raise TypeError("vocab must be a mmcourse.text.Vocab or its list of tokens")
            vocab = Vocab(list(vocab))
        if isinstance(modalities, str):
            modalities = (modalities,)
        modalities = tuple(modalities)
        if (
            not modalities
            or len(set(modalities)) != len(modalities)
            or not set(modalities) <= set(MODALITIES)
        ):
            raise ValueError(
                f"modalities must be distinct names from {MODALITIES}, got {modalities!r}"
            )
        modalities = tuple(m for m in MODALITIES if m in modalities)  # fixed order
        if not isinstance(max_len, int) or isinstance(max_len, bool) or max_len < 1:
            raise ValueError(f"max_len must be a positive int, got {max_len!r}")
        for name, value in (("feature_dim", feature_dim), ("hidden", hidden)):
            check_int(value, name)  # named here: the layers would call them out_dim
        if (
            isinstance(image_channels, (str, bytes))
            or not isinstance(image_channels, Sequence)
            or not image_channels
            or not all(isinstance(c, int) and not isinstance(c, bool) and c > 0
                       for c in image_channels)
        ):  # fmt: skip
            raise ValueError(
                f"image_channels must be a non-empty tuple of positive ints, got {image_channels!r}"
            )
        check_int(image_pool, "image_pool")
        self.vocab, self.modalities, self.max_len = vocab, modalities, max_len
        self.config = {
            "modalities": list(modalities),
            "fusion": fusion,
            "feature_dim": feature_dim,
            "hidden": hidden,
            "max_len": max_len,
            "image_channels": list(image_channels),
            "image_pool": image_pool,
        }
        encoders: dict[str, nn.Module] = {}
        if "image" in modalities:
            encoders["image"] = ImageCNN(
                3, feature_dim, channels=tuple(image_channels), pool_size=image_pool
            )
        if "text" in modalities:
            encoders["text"] = TextRNN(len(vocab), feature_dim, cell="lstm", embed_dim=32)
        fuse = _wrap(make_fusion(fusion, [feature_dim] * len(encoders), hidden))
        self.net = MultimodalClassifier(encoders, fuse, num_classes=1)
        for name in modalities:  # the stand-in feature of a missing modality (see fit_absent)
            self.register_buffer(f"absent_{name}", torch.zeros(feature_dim))
        # per-channel statistics of the training pictures (see set_image_stats)
        self.register_buffer("image_mean", torch.zeros(3, 1, 1))
        self.register_buffer("image_std", torch.ones(3, 1, 1))

        self.frozen: set[str] = set()

    # ------------------------------------------------------------------ two-stage training
    def adopt_encoders(self, *sources: CatsDogsNet, freeze: bool = True) -> None:
        """Copy the trained encoders of ``sources`` (e.g. the image-only and the text-only
        net) into this net; with ``freeze`` they stay fixed (weights and BatchNorm
        statistics) while the fusion and head train: two-stage training."""
        for source in sources:
            if not isinstance(source, CatsDogsNet):
                raise TypeError(f"sources must be CatsDogsNet models, got {type(source).__name__}")
            if source.config["feature_dim"] != self.config["feature_dim"]:
                raise ValueError("sources must have the same feature_dim as this net")
            for name in source.modalities:
                if name not in self.modalities:
                    raise ValueError(f"this net has no {name!r} branch to adopt")
                self.net.encoders[name].load_state_dict(source.net.encoders[name].state_dict())
                if name == "image":
                    self.image_mean.copy_(source.image_mean)
                    self.image_std.copy_(source.image_std)
                getattr(self, f"absent_{name}").copy_(getattr(source, f"absent_{name}"))
                if freeze:
                    self.frozen.add(name)
                    self.net.encoders[name].requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        for name in self.frozen:  # frozen encoders keep their BatchNorm statistics
            self.net.encoders[name].eval()
        return self

    # ------------------------------------------------------------------ forward
    def _feature(self, batch: Mapping[str, torch.Tensor], name: str, size: int) -> torch.Tensor:
        absent = getattr(self, f"absent_{name}").expand(size, -1)
        if name + "_feature" in batch:  # precomputed by encode() (frozen encoders)
            feature = batch[name + "_feature"]
        elif name not in batch:
            return absent
        elif name == "image":  # standardise with the training set's statistics
            feature = self.net.encoders["image"](
                (batch["image"] - self.image_mean) / self.image_std
            )
        else:
            feature = self.net.encoders[name](batch[name], batch.get(name + "_mask"))
        present = batch.get(name + "_present")
        if present is None:
            return feature
        present = torch.as_tensor(present, dtype=torch.bool, device=feature.device)
        if present.shape != (size,):
            raise ValueError(
                f"batch[{name + '_present'!r}] must be a bool tensor of shape ({size},)"
            )
        return torch.where(present[:, None], feature, absent)

    def logit(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """z (B,): the logit of "dog"; a missing modality uses its stand-in feature."""
        if not isinstance(batch, Mapping):
            raise TypeError(f"batch must be a dict of tensors, got {type(batch).__name__}")
        sizes = [
            len(v)
            for k, v in batch.items()
            if k in self.modalities or k.endswith("_present") or k.endswith("_feature")
        ]
        if not sizes:
            raise ValueError(
                f"batch has none of the modalities {self.modalities}; keys: {sorted(batch)}"
            )
        size = sizes[0]
        features = [self._feature(batch, name, size) for name in self.modalities]
        return self.net.head(self.net.fusion(features))[:, 0]

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        z = self.logit(batch)
        return torch.stack([torch.zeros_like(z), z], dim=1)

    def proba(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """y^ = sigma(z) = P(dog | inputs), (B,)."""
        return torch.sigmoid(self.logit(batch))

    @torch.no_grad()
    def set_image_stats(self, images: torch.Tensor) -> None:
        """Standardise pictures with the per-channel mean and std of ``images`` (N, 3, H, W),
        the TRAINING pictures: the statistics travel with the saved model."""
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError("images must be a (N, 3, H, W) tensor of training pictures")
        self.image_mean.copy_(images.mean(dim=(0, 2, 3)).view(3, 1, 1))
        self.image_std.copy_(images.std(dim=(0, 2, 3)).clamp_min(1e-6).view(3, 1, 1))

    @torch.no_grad()
    def fit_absent(self, batch: Mapping[str, torch.Tensor]) -> None:
        """Set each modality's stand-in to its mean feature over ``batch`` (the training set):
        "missing" then means "an average caption / picture", a neutral input for the head."""
        was_training = self.training
        self.eval()
        for name in self.modalities:
            if name not in batch:
                raise KeyError(f"batch needs {name!r} to compute its mean feature")
            size = batch[name].shape[0]
            only = {k: v for k, v in batch.items() if k in (name, name + "_mask")}
            getattr(self, f"absent_{name}").copy_(self._feature(only, name, size).mean(0))
        self.train(was_training)

    @torch.no_grad()
    def encode(self, batch: Mapping[str, torch.Tensor], names: Sequence[str] | None = None) -> dict:
        """The batch with each modality in ``names`` (default: the frozen ones) replaced by
        its encoder's output, key "<name>_feature": a frozen encoder then runs once instead
        of once per epoch."""
        names = sorted(self.frozen) if names is None else list(names)
        was_training = self.training
        self.eval()
        out = dict(batch)
        for name in names:
            if name not in batch:
                continue
            size = batch[name].shape[0]
            out[name + "_feature"] = self._feature(
                {k: batch[k] for k in (name, name + "_mask") if k in batch}, name, size
            )
            for key in (name, name + "_mask"):
                out.pop(key, None)
        self.train(was_training)
        return out

    # ------------------------------------------------------------------ text
    def encode_captions(self, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and mask (B, max_len) of captions; an empty caption becomes one <unk>
        (every caption needs a token for the LSTM), unknown words map to <unk>."""
        if isinstance(captions, str):
            raise TypeError("captions must be a list of strings, not one string")
        captions = [c if tokenize(c) else UNK for c in captions]
        return self.vocab.encode(captions, max_len=self.max_len)


# --------------------------------------------------------------------------- data
def make_batch(
    data,
    vocab: Vocab | CatsDogsNet,
    captions: Sequence[str] | None = None,
    max_len: int = 16,
    device: torch.device | str = "cpu",
) -> dict[str, torch.Tensor]:
    """One batch dict with every sample of ``data`` (e.g. ``load_cats_dogs().subset("test")``):
    "image" (N, 3, 32, 32), "text" + "text_mask" (N, max_len), "label" (N,).

    ``captions`` replaces ``data.captions`` (e.g. ``data.leaky_captions`` or ``data.paths``).
    """
    if isinstance(vocab, CatsDogsNet):
        max_len, vocab = vocab.max_len, vocab.vocab
    if not isinstance(vocab, Vocab):
        raise TypeError(f"vocab must be a mmcourse.text.Vocab or a CatsDogsNet, got {vocab!r}")
    captions = list(data.captions if captions is None else captions)
    if len(captions) != len(data.labels):
        raise ValueError(f"captions has {len(captions)} entries for {len(data.labels)} samples")
    captions = [c if tokenize(c) else UNK for c in captions]
    ids, mask = vocab.encode(captions, max_len=max_len)
    batch = {
        "image": torch.as_tensor(np.asarray(data.images), dtype=torch.float32),
        "text": ids,
        "text_mask": mask,
        "label": torch.as_tensor(np.asarray(data.labels), dtype=torch.long),
    }
    return {k: v.to(device) for k, v in batch.items()}


def minibatches(batch: Mapping[str, torch.Tensor], batch_size: int = 64, seed: int = 0):
    """Shuffled, seeded mini-batches of an in-memory batch dict, a new order every epoch:
    :class:`mmcourse.train.InMemoryLoader` (no per-item collation, unlike a DataLoader)."""
    if not isinstance(batch, Mapping):
        raise TypeError(f"batch must be a dict of tensors, got {type(batch).__name__}")
    check_int(batch_size, "batch_size")
    return InMemoryLoader(dict(batch), batch_size, shuffle=True, seed=seed)


def only(batch: Mapping[str, torch.Tensor], modalities: Sequence[str]) -> dict:
    """The batch restricted to ``modalities`` (their masks and flags) and the label."""
    if isinstance(modalities, str) or not modalities or not set(modalities) <= set(MODALITIES):
        raise ValueError(
            f"modalities must be a non-empty list of names from {MODALITIES}, got {modalities!r}"
        )
    keep = {"label"} | {m + s for m in modalities for s in ("", "_mask", "_present", "_feature")}
    return {k: v for k, v in batch.items() if k in keep}


def train_model(
    train: Mapping[str, torch.Tensor],
    val: Mapping[str, torch.Tensor],
    vocab: Vocab,
    modalities: Sequence[str] = MODALITIES,
    fusion: str = "seed",
    seed: int = 0,
    epochs: int = 8,
    lr: float = 3e-3,
    batch_size: int = 32,
    scheduler: str | None = "cosine",
    device: torch.device | str = "cpu",
    pretrained: Sequence[CatsDogsNet] = (),
    freeze: bool = True,
    **net_kwargs,
):
    """Build a :class:`CatsDogsNet`, train it with ``mmcourse.train.fit`` (AdamW, the best
    validation-accuracy epoch kept) and set its missing-modality stand-ins.

    ``train``/``val``: batch dicts from :func:`make_batch`. Returns (net, history).
    """

    seed_everything(seed)
    net = CatsDogsNet(vocab, modalities, fusion, **net_kwargs).to(device)
    if "image" in net.modalities:
        net.set_image_stats(train["image"])
    if pretrained:
        net.adopt_encoders(*pretrained, freeze=freeze)
    modalities = net.modalities
    train_in, val_in = only(train, modalities), only(val, modalities)
    if net.frozen:  # run the frozen encoders once, not once per epoch
        train_in, val_in = net.encode(train_in), net.encode(val_in)
    history = fit(
        net,
        minibatches(train_in, batch_size, seed),
        [val_in],
        epochs=epochs,
        lr=lr,
        scheduler=scheduler,
        monitor="val_accuracy",
        seed=seed,
        device=device,
        progress=False,
    )
    if not (pretrained and freeze):
        net.fit_absent(train)
    net.eval()
    return net, history


# --------------------------------------------------------------------------- comparison
UNIMODAL = {"image only": ("image",), "text only": ("text",)}
FUSED_LABELS = {"seed": "fused: seed equation", "gmu": "fused: GMU"}


def _accuracy(net: CatsDogsNet, batch: Mapping[str, torch.Tensor]) -> float:
    with torch.no_grad():
        return float(((net.proba(batch) >= 0.5).long() == batch["label"]).float().mean())


def train_comparison(
    batches: Mapping[str, Mapping[str, torch.Tensor]],
    vocab: Vocab,
    seeds: Sequence[int] = (0, 1, 2),
    fusions: Sequence[str] = ("seed", "gmu"),
    epochs: Mapping[str, int] | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
):
    """Train, per seed, the image-only and text-only models and, on their frozen encoders,
    one fused model per name in ``fusions`` (two-stage training); score each on the
    validation and the test split.

    batches: {"train", "val", "test"} batch dicts from :func:`make_batch`. epochs: per kind,
    {"image": 12, "text": 8, "fused": 10} by default. A tqdm bar counts the models trained.
    Returns (a DataFrame with one row per model and seed: model, seed, val_accuracy,
    test_accuracy; a dict {(model name, seed): net}).
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from mmcourse.train import _progress_enabled

    missing = {"train", "val", "test"} - set(batches)
    if missing:
        raise KeyError(f"batches needs the splits {sorted(missing)}")
    if isinstance(seeds, int) or not seeds:
        raise ValueError(f"seeds must be a non-empty list of seeds, got {seeds!r}")
    unknown = [f for f in fusions if f not in FUSED_LABELS]
    if unknown:
        raise ValueError(f"fusions must be names from {sorted(FUSED_LABELS)}, got {unknown}")
    epochs = {"image": 12, "text": 8, "fused": 10, **(epochs or {})}
    bar = tqdm(
        total=len(seeds) * (2 + len(fusions)),
        desc="training",
        unit="model",
        disable=not _progress_enabled(progress),
    )
    rows, models = [], {}
    for seed in seeds:
        nets = {}
        for name, modalities in UNIMODAL.items():
            nets[name], _ = train_model(
                batches["train"],
                batches["val"],
                vocab,
                modalities,
                seed=seed,
                epochs=epochs[modalities[0]],
                device=device,
            )
            bar.update()
        for fusion in fusions:
            nets[FUSED_LABELS[fusion]], _ = train_model(
                batches["train"],
                batches["val"],
                vocab,
                MODALITIES,
                fusion,
                seed=seed,
                epochs=epochs["fused"],
                pretrained=(nets["image only"], nets["text only"]),
                device=device,
            )
            bar.update()
        for name, net in nets.items():
            models[name, seed] = net
            rows.append(
                {
                    "model": name,
                    "seed": seed,
                    "val_accuracy": _accuracy(net, batches["val"]),
                    "test_accuracy": _accuracy(net, batches["test"]),
                }
            )
    bar.close()
    return pd.DataFrame(rows), models


def choose_on_validation(results, candidates: Sequence[str]) -> str:
    """The candidate model with the best mean *validation* accuracy over the seeds: model
    selection must never look at the test split, or the test score is no longer unbiased."""
    means = results.groupby("model")["val_accuracy"].mean()
    absent = [c for c in candidates if c not in means.index]
    if not candidates or absent:
        raise ValueError(f"candidates must be models of results, missing {absent or candidates}")
    return max(candidates, key=lambda name: means[name])


def pick_examples(y_true, y_pred, per_group: int = 3) -> list[int]:
    """Indices of up to ``per_group`` examples of each group (true class x right/wrong), in
    the order: right cats, right dogs, wrong cats, wrong dogs. A test split sorted by class
    would otherwise show only correctly classified cats."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError("y_true and y_pred must be 1-D arrays of the same length")
    check_int(per_group, "per_group")
    picks = []
    for right in (True, False):
        for label in (0, 1):
            group = np.flatnonzero((y_true == label) & ((y_true == y_pred) == right))
            picks.extend(int(i) for i in group[:per_group])
    return picks


def image_score(net: CatsDogsNet, batch: Mapping[str, torch.Tensor], index: int):
    """score(images (n, 3, H, W)) -> the logit of "dog" of each picture read with the caption
    of example ``index``: the function an image explanation (occlusion, Grad-CAM) explains."""

    def score(images: torch.Tensor) -> torch.Tensor:
        n = images.shape[0]
        inputs = {"image": images}
        if "text" in net.modalities:
            inputs["text"] = batch["text"][index : index + 1].expand(n, -1)
            inputs["text_mask"] = batch["text_mask"][index : index + 1].expand(n, -1)
        return net.logit(inputs)

    return score


def caption_score(net: CatsDogsNet, image: torch.Tensor):
    """score(token lists) -> the logit of "dog" of one picture ``image`` (1, 3, H, W) read with
    each caption (a list of tokens): the function a word explanation (leave one word out)
    explains."""

    def score(token_lists: Sequence[Sequence[str]]) -> torch.Tensor:
        ids, mask = net.encode_captions([" ".join(tokens) for tokens in token_lists])
        n, device = len(token_lists), image.device
        return net.logit(
            {
                "image": image.expand(n, -1, -1, -1),
                "text": ids.to(device),
                "text_mask": mask.to(device),
            }
        )

    return score


def ids_score(net: CatsDogsNet, image: torch.Tensor):
    """score(ids (n, L), mask (n, L)) -> the logit of "dog" of one picture ``image`` (1, 3, H, W)
    with each row of token ids: what integrated gradients on the word embeddings explain."""

    def score(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return net.logit(
            {"image": image.expand(ids.shape[0], -1, -1, -1), "text": ids, "text_mask": mask}
        )

    return score


# --------------------------------------------------------------------------- where the cues are
class _RecordingRNG:
    """Forwards to a numpy Generator and keeps the scalar ``uniform`` draws in order."""

    def __init__(self, rng: np.random.Generator):
        self.rng, self.draws = rng, []

    def uniform(self, *args, **kwargs):
        value = self.rng.uniform(*args, **kwargs)
        self.draws.append(value)
        return value

    def normal(self, *args, **kwargs):
        return self.rng.normal(*args, **kwargs)


def cue_regions(indices: Sequence[int]) -> dict[str, np.ndarray]:
    """Where the species evidence is in pictures ``indices`` of ``load_cats_dogs()``.

    The pictures are drawn from their attributes with positions and sizes that are not
    stored, so the generator is replayed (same seed, same draws) and the drawing's own
    geometry gives, per picture, bool masks (N, 32, 32): "ears" and "muzzle" (the parts that
    carry the species cue, where visible), "cue" (their union) and "occluder" (the post or
    blanket, where present). The replay is checked: each picture is redrawn and compared
    with the stored one, so a changed generator raises instead of giving wrong masks.
    """
    from mmcourse.datasets import cats_dogs as cd

    indices = np.asarray(indices)
    if indices.ndim != 1 or indices.size == 0 or indices.dtype.kind not in "iu":
        raise ValueError("indices must be a non-empty 1-D list of picture indices")
    n_total = 2 * cd.N_PER_CLASS
    if indices.min() < 0 or indices.max() >= n_total:
        raise ValueError(
            f"indices must lie in [0, {n_total}), got {indices.min()}..{indices.max()}"
        )
    stored = cd.load_cats_dogs().images
    rng = np.random.default_rng(cd.SEED)
    attributes = cd._sample_attributes(rng)
    wanted = set(indices.tolist())
    found = {}
    for i, row in enumerate(attributes.itertuples()):
        if i > indices.max():
            break
        if i not in wanted:  # advance the stream as _draw does, without drawing (fast)
            rng.random(6 + (7 if row.occluded else 0))  # 6 draws, occluder 4 + colour 3
            rng.standard_normal((cd.SIZE, cd.SIZE, 3))  # the pixel noise
            continue
        recorder = _RecordingRNG(rng)
        picture = cd._draw(row, recorder)
        if i in wanted:
            redrawn = np.round(picture * 255) / 255
            if np.abs(redrawn.transpose(2, 0, 1) - stored[i]).max() > 1.5 / 255:
                raise RuntimeError("cue_regions: the replay no longer matches the stored pictures")
            found[i] = _regions_of(row, recorder.draws, cd)
    return {k: np.stack([found[i][k] for i in indices.tolist()]) for k in found[indices[0]]}


def _regions_of(row, draws: list, cd) -> dict[str, np.ndarray]:
    """The masks of one picture from its attributes and the draws of ``cats_dogs._draw``
    (in its order: background, stripes, fur, cx, cy, scale, then the occluder's top, left,
    height, width); the shapes repeat the drawing's geometry."""
    big = 2 * cd.SIZE
    yy, xx = np.mgrid[0:big, 0:big].astype(np.float32)
    cx, cy, scale = big / 2 + draws[3], big / 2 + draws[4], draws[5]
    hy, hx, hr = cy - 6 * scale, cx, 8 * scale
    side = 1 if row.facing == "right" else -1
    head = cd._ellipse(yy, xx, hy, hx, hr, hr)
    ears = np.zeros_like(head)
    for s in (-1, 1):
        if row.ears == "pointed":
            base = hx + s * 5 * scale
            ears |= cd._triangle(
                yy,
                xx,
                (hy - 15 * scale, base + s * 1.5 * scale),
                (hy - 3 * scale, base - 4 * scale),
                (hy - 3 * scale, base + 4 * scale),
            )
        else:
            ears |= cd._ellipse(yy, xx, hy + 4 * scale, hx + s * 8 * scale, 9 * scale, 3.5 * scale)
    if row.ears == "pointed":
        ears &= ~head  # the head is drawn over the base of pointed ears
    length = 2 + 7 * row.muzzle
    mx = hx + side * (2 + length / 2) * scale
    nose_x = hx + side * (2 + length) * scale
    muzzle = cd._ellipse(yy, xx, hy + 3 * scale, mx, 3 * scale, length * scale)
    muzzle |= cd._ellipse(yy, xx, hy + 2 * scale, nose_x, 1.6 * scale, 1.6 * scale)
    ears &= ~muzzle
    occluder = np.zeros_like(head)
    if row.occluded:
        top, left, height, width = draws[6:10]
        occluder = (yy >= top) & (yy < top + height) & (xx >= left) & (xx < left + width)

    def small(mask):  # 64x64 -> 32x32 as the picture: a pixel counts if it is mostly covered
        return mask.reshape(cd.SIZE, 2, cd.SIZE, 2).mean(axis=(1, 3)) >= 0.5

    hidden = small(occluder)
    ears, muzzle = small(ears & ~occluder) & ~hidden, small(muzzle & ~occluder) & ~hidden
    return {"ears": ears, "muzzle": muzzle, "cue": ears | muzzle, "occluder": hidden}


# --------------------------------------------------------------------------- robustness
def mislead(captions: Sequence[str], labels, seed: int = 0) -> list[str]:
    """Each caption with its behaviour replaced by the OTHER species' strong cue
    ("..., barking" for a cat): a caption that lies, to test how much the model trusts text."""
    from mmcourse.datasets.cats_dogs import STRONG

    if isinstance(captions, str) or not all(isinstance(c, str) for c in captions):
        raise TypeError("captions must be a list of strings")
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(captions) != len(labels):
        raise ValueError(f"captions ({len(captions)}) and labels ({labels.size}) differ in length")
    if labels.dtype.kind not in "iub" or not np.isin(labels, (0, 1)).all():
        raise ValueError(f"labels must be 0 (cat) or 1 (dog), got dtype {labels.dtype}")
    check_seed(seed)
    rng = np.random.default_rng(seed)
    out = []
    for caption, label in zip(captions, labels, strict=True):
        other = CLASSES[1 - int(label)]
        out.append(f"{caption.split(',')[0]}, {rng.choice(STRONG[other])}")
    return out


def corrupt(images: torch.Tensor, noise_std: float = 0.3, seed: int = 0) -> torch.Tensor:
    """Pictures with Gaussian pixel noise of std ``noise_std`` added, clipped to [0, 1]."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError("images must be a (N, C, H, W) tensor")
    if not images.is_floating_point() or images.shape[0] == 0:
        raise ValueError(
            f"images must be a non-empty float (N, C, H, W) tensor in [0, 1], got "
            f"{images.dtype} {tuple(images.shape)}"
        )
    check_finite(images, "images")
    check_real(noise_std, "noise_std", low=0.0)
    generator = seeded_generator(seed)
    noise = torch.randn(images.shape, generator=generator).to(images.device)
    return (images + noise_std * noise).clamp(0, 1)


# --------------------------------------------------------------------------- explanations
def remove(batch: Mapping[str, torch.Tensor], name: str) -> dict:
    """The batch with modality ``name`` marked absent for every row."""
    if name not in MODALITIES:
        raise ValueError(f"name must be one of {MODALITIES}, got {name!r}")
    first = next(iter(batch.values()))
    out = dict(batch)
    out[name + "_present"] = torch.zeros(len(first), dtype=torch.bool, device=first.device)
    return out


@torch.no_grad()
def contributions(
    net: CatsDogsNet,
    batch: Mapping[str, torch.Tensor],
    method: str = "shapley",
    background: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Each modality's contribution to P(dog), per example (see ``explain.modality_contributions``).

    What "absent" means sets the reference every contribution is measured against:

    * ``background=None``: an absent modality is its *mean training feature* (one "average
      picture"), so ``none`` = P(dog | average picture, average caption) for every example;
    * ``background`` = a batch of K examples (e.g. a balanced sample of training pairs): an
      absent modality takes the feature of background example k, and every v(S) is averaged
      over k, as SHAP's interventional explainer does (Lundberg & Lee, 2017); ``none`` is then
      the model's average prediction over the background.

    Returns {"image": (B,), "text": (B,), "full": P(dog), "none": the reference}; with Shapley
    values image + text = full - none in both cases.
    """
    net.eval()
    ablations = {m: (lambda b, m=m: remove(b, m)) for m in net.modalities}
    if background is None:
        return explain.modality_contributions(
            net.proba, only(batch, net.modalities), ablations, method
        )
    if not isinstance(background, Mapping):
        raise TypeError(f"background must be a batch dict, got {type(background).__name__}")
    missing = [m for m in net.modalities if m not in background]
    if missing:
        raise KeyError(f"background needs the modalities {missing}; it has {sorted(background)}")
    features = net.encode(only(batch, net.modalities), names=net.modalities)
    reference = net.encode(only(background, net.modalities), names=net.modalities)
    keys = [m + "_feature" for m in net.modalities]

    def averaged_over_background(b):
        size = b[keys[0]].shape[0]
        total = torch.zeros(size, device=b[keys[0]].device)
        for k in range(reference[keys[0]].shape[0]):
            swapped = {
                key: b[key] if (m + "_present") not in b else reference[key][k].expand(size, -1)
                for m, key in zip(net.modalities, keys, strict=True)
            }
            total += net.proba(swapped)
        return total / reference[keys[0]].shape[0]

    return explain.modality_contributions(
        averaged_over_background, {k: features[k] for k in keys}, ablations, method
    )


# --------------------------------------------------------------------------- prediction
@dataclass
class Prediction:
    """What :func:`predict` returns for one picture and caption."""

    label: str  # "cat" or "dog"
    p_dog: float  # P(dog | inputs)
    contributions: dict = field(default_factory=dict)  # modality -> change of P(dog)
    tokens: list = field(default_factory=list)  # the caption's tokens
    unknown_words: list = field(default_factory=list)  # tokens not in the vocabulary
    baseline: float = 0.5  # P(dog) with every modality absent

    @property
    def confidence(self) -> float:
        return self.p_dog if self.label == "dog" else 1.0 - self.p_dog

    def __str__(self) -> str:
        parts = [f"{self.label} (P(dog) = {self.p_dog:.2f})"]
        for name, value in self.contributions.items():
            parts.append(f"{name} {value:+.2f}")
        if self.unknown_words:
            parts.append(f"unknown words: {', '.join(self.unknown_words)}")
        return "; ".join(parts)


def check_image(image) -> torch.Tensor:
    """Turn one picture into a float tensor (3, 32, 32) in [0, 1], or raise a clear error.

    Accepts a tensor or array, channels first (3, 32, 32) or last (32, 32, 3), floats in
    [0, 1] or uint8 in [0, 255] (as loaded from a PNG).
    """
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
    elif isinstance(image, np.ndarray):
        image = torch.from_numpy(np.ascontiguousarray(image))
    else:
        raise TypeError(
            f"image must be a torch.Tensor or numpy array of shape (3, 32, 32), "
            f"got {type(image).__name__}"
        )
    if image.dim() == 4 and image.shape[0] == 1:
        image = image[0]
    if image.dim() != 3:
        raise ValueError(
            f"image must be one RGB picture of shape (3, 32, 32) or (32, 32, 3), "
            f"got shape {tuple(image.shape)}"
        )
    if image.shape[0] not in (1, 3, 4) and image.shape[-1] in (1, 3, 4):
        image = image.permute(2, 0, 1)  # channels last -> first
    if image.shape[0] != 3:
        raise ValueError(
            f"image must have 3 colour channels (RGB), got {image.shape[0]} "
            f"(shape {tuple(image.shape)}); convert grey or RGBA pictures to RGB first"
        )
    if tuple(image.shape[1:]) != IMAGE_SHAPE[1:]:
        raise ValueError(
            f"image must be 32x32 pixels, got {image.shape[1]}x{image.shape[2]}; resize it "
            "first, e.g. mmcourse.image.resize(image[None], 32)[0]"
        )
    if image.dtype == torch.uint8:
        image = image.float() / 255.0
    if not image.is_floating_point():
        raise TypeError(f"image must be float in [0, 1] or uint8, got dtype {image.dtype}")
    image = image.float()
    if not torch.isfinite(image).all():
        raise ValueError("image contains NaN or infinite values")
    if image.min() < 0 or image.max() > 1:
        raise ValueError(
            f"image values must lie in [0, 1], got [{image.min():.3g}, {image.max():.3g}]; "
            "divide 0-255 pixel values by 255"
        )
    return image


def check_caption(caption, vocab: Vocab) -> tuple[list[str], list[str]]:
    """The caption's tokens and the unknown ones; None means "no caption"."""
    if not isinstance(vocab, Vocab):
        raise TypeError(f"vocab must be a mmcourse.text.Vocab, got {type(vocab).__name__}")
    if caption is None:
        return [], []
    if not isinstance(caption, str):
        raise TypeError(
            f"caption must be a str (or None for no caption), got {type(caption).__name__}"
        )
    tokens = tokenize(caption)
    if not tokens:
        raise ValueError(
            f"caption {caption!r} has no words; pass caption=None to predict without a caption"
        )
    return tokens, [t for t in tokens if t not in vocab]


@torch.no_grad()
def predict(net: CatsDogsNet, image=None, caption: str | None = None) -> Prediction:
    """Classify one picture and caption; either may be None (that modality is missing).

    Unknown words are allowed (they map to <unk> and are listed in ``unknown_words``).
    Also returns each modality's Shapley contribution to P(dog).
    """
    if not isinstance(net, CatsDogsNet):
        raise TypeError(
            f"net must be a CatsDogsNet (see train_model or load), got {type(net).__name__}"
        )
    if image is None and caption is None:
        raise ValueError("give an image, a caption or both")
    device = next(net.parameters()).device
    batch: dict[str, torch.Tensor] = {}
    if image is not None and "image" in net.modalities:
        batch["image"] = check_image(image)[None].to(device)
    tokens, unknown = check_caption(caption, net.vocab)
    if tokens and "text" in net.modalities:
        ids, mask = net.encode_captions([caption])
        batch["text"], batch["text_mask"] = ids.to(device), mask.to(device)
    if not batch:
        raise ValueError(f"this model reads only {net.modalities}; none of them was given")
    for m in net.modalities:  # a missing modality is marked absent (its stand-in is used)
        if m not in batch:
            batch[m + "_present"] = torch.zeros(1, dtype=torch.bool, device=device)
    contrib = contributions(net, batch)
    p_dog = float(contrib["full"][0])
    return Prediction(
        label=CLASSES[int(p_dog >= 0.5)],
        p_dog=p_dog,
        contributions={m: float(contrib[m][0]) for m in net.modalities},
        tokens=tokens,
        unknown_words=unknown,
        baseline=float(contrib["none"][0]),
    )


# --------------------------------------------------------------------------- save / load
def save(net: CatsDogsNet, path: str | Path) -> Path:
    """Save weights, configuration and vocabulary: plain tensors, lists and strings only."""
    if not isinstance(net, CatsDogsNet):
        raise TypeError(f"net must be a CatsDogsNet, got {type(net).__name__}")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or pathlib.Path, got {type(path).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    torch.save(
        {
            "format": FORMAT,
            "config": net.config,
            "vocab": list(net.vocab.tokens),
            "state_dict": state,
        },
        path,
    )
    return path


def load(path: str | Path, map_location: torch.device | str = "cpu") -> CatsDogsNet:
    """Rebuild a :class:`CatsDogsNet` saved by :func:`save` (``torch.load(weights_only=True)``:
    loading never runs code from the file)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or pathlib.Path, got {type(path).__name__}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no saved model at {path}")
    try:
        saved = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # any unpickling failure: not a file written by us
        raise ValueError(
            f"{path} is not a model saved by mmcourse.casestudy.save "
            f"(torch.load failed: {str(exc).splitlines()[0]})"
        ) from exc
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise ValueError(f"{path} is not a model saved by mmcourse.casestudy.save")
    config = dict(saved["config"])
    config["image_channels"] = tuple(config["image_channels"])
    net = CatsDogsNet(saved["vocab"], **config)
    net.load_state_dict(saved["state_dict"])
    return net.to(map_location).eval()


# --------------------------------------------------------------------------- demo
def demo_view(net: CatsDogsNet, images, index: int, caption: str | None) -> tuple[Prediction, str]:
    """The logic of the widget demo: predict picture ``images[index]`` with ``caption``
    (blank = no caption); returns the prediction and the text the widget shows."""
    if not isinstance(index, int) or not 0 <= index < len(images):
        raise ValueError(f"index must be an int in [0, {len(images)}), got {index!r}")
    caption = caption if caption and caption.strip() else None
    prediction = predict(net, images[index], caption)
    lines = [
        f"Prediction: {prediction.label.upper()}   P(dog) = {prediction.p_dog:.2f}",
        f"  with no input at all P(dog) would be {prediction.baseline:.2f}",
    ]
    for name, value in prediction.contributions.items():
        towards = "dog" if value > 0 else "cat"
        lines.append(f"  {name:>5}: {value:+.2f}  (pushes towards {towards})")
    if caption is None:
        lines.append("  (no caption: the text branch sees its average caption)")
    if prediction.unknown_words:
        lines.append(f"  unknown words (read as <unk>): {', '.join(prediction.unknown_words)}")
    return prediction, "\n".join(lines)


def make_demo(net: CatsDogsNet, images, captions: Sequence[str], index: int = 0):
    """An ipywidgets demo: a slider picks a picture, a text box holds its caption (edit it!),
    the output shows the picture, the prediction and each modality's contribution."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    slider = widgets.IntSlider(value=index, min=0, max=len(images) - 1, description="picture")
    text = widgets.Text(
        value=captions[index], description="caption", layout=widgets.Layout(width="95%")
    )
    out = widgets.Output()

    def render(*_):
        out.clear_output(wait=True)
        with out:
            try:
                _, summary = demo_view(net, images, slider.value, text.value)
            except (ValueError, TypeError) as exc:
                summary = f"error: {exc}"
            fig, ax = plt.subplots(figsize=(1.8, 1.8))
            ax.imshow(check_image(images[slider.value]).permute(1, 2, 0).numpy())
            ax.axis("off")
            plt.show()
            print(summary)

    def new_picture(change):
        text.value = captions[change["new"]]  # triggers render through the text box
        render()

    slider.observe(new_picture, names="value")
    text.observe(render, names="value")
    render()
    box = widgets.VBox([slider, text, out])
    box.render = render  # for tests: re-render on demand
    box.slider, box.text, box.out = slider, text, out
    return box
