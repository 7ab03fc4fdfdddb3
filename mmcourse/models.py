"""Multimodal models: encoders -> fusion -> head, and the seed article's two-equation network.

``MultimodalClassifier`` is the pipeline of the whole course in one module:

    features_m = encoders[m](batch[m])            one encoder per modality, (B, d_m)
    z          = fusion([features_1, ...])        any operator of mmcourse.fusion, (B, out_dim)
    logits     = head(z)                           (B, num_classes)

``SeedFusionNet`` is the seed article's model, written with its own symbols:

    X' = sigma(W_1 I' + W_2 T' + b),    y^ = sigma(W_3 X' + b')
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from mmcourse._checks import check_dropout
from mmcourse.fusion import ConcatFusion

__all__ = ["MultimodalClassifier", "SeedFusionNet"]


def _positive_int(value, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


class MultimodalClassifier(nn.Module):
    """Encoders per modality, a fusion operator, then a classification head.

    Args:
        encoders: ``{name: module}``, in the order the fusion expects its inputs; each maps
            ``batch[name]`` (B, ...) to features (B, d_name) (or (B, L, d_name) for
            sequence-aware fusion). When ``batch`` has a key ``name + "_mask"`` the encoder
            is called as ``encoder(batch[name], batch[name + "_mask"])`` (text encoders).
            ``nn.Identity()`` is a valid encoder for precomputed features.
        fusion: a module with ``in_dims`` (one per encoder) and ``out_dim``, e.g. any
            ``mmcourse.fusion`` operator.
        num_classes: size of the output.
        hidden: None for a linear head, or the width of one hidden ReLU layer.
        dropout: dropout before the head.

    ``forward(batch)`` returns logits (B, num_classes). When the fusion already produces
    class scores (``fusion.produces_logits``, e.g. ``LateFusion``) there is no head.
    ``features(batch)`` returns the encoders' outputs as a dict (to inspect or explain).
    """

    def __init__(
        self,
        encoders: Mapping[str, nn.Module],
        fusion: nn.Module,
        num_classes: int,
        hidden: int | None = None,
        dropout: float = 0.0,
    ):
        super().__init__()
        if not isinstance(encoders, Mapping) or not encoders:
            raise TypeError(
                "encoders must be a non-empty dict {modality name: nn.Module}, got "
                f"{type(encoders).__name__}"
            )
        for name, enc in encoders.items():
            if not isinstance(name, str) or not name or name.endswith("_mask") or name == "label":
                raise ValueError(f"encoder names must be batch keys like 'image', got {name!r}")
            if not isinstance(enc, nn.Module):
                raise TypeError(
                    f"encoders[{name!r}] must be an nn.Module, got {type(enc).__name__}"
                )
        if not isinstance(fusion, nn.Module) or not hasattr(fusion, "out_dim"):
            raise TypeError(
                "fusion must be an nn.Module with an out_dim attribute (see "
                f"mmcourse.fusion), got {type(fusion).__name__}"
            )
        in_dims = getattr(fusion, "in_dims", None)
        if in_dims is not None and len(in_dims) != len(encoders):
            raise ValueError(
                f"fusion expects {len(in_dims)} modalities (in_dims={in_dims}) but "
                f"{len(encoders)} encoders were given: {list(encoders)}"
            )
        self.num_classes = _positive_int(num_classes, "num_classes")
        if hidden is not None:
            _positive_int(hidden, "hidden")
        check_dropout(dropout)
        self.names = list(encoders)
        self.encoders = nn.ModuleDict(encoders)
        self.fusion = fusion
        if getattr(fusion, "produces_logits", False):
            if fusion.out_dim != self.num_classes:
                raise ValueError(
                    f"fusion produces {fusion.out_dim} class scores but num_classes={num_classes}"
                )
            if hidden is not None:
                raise ValueError("hidden must be None when the fusion produces class scores")
            self.head = nn.Identity()
        elif hidden is None:
            self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(fusion.out_dim, num_classes))
        else:
            self.head = nn.Sequential(
                nn.Dropout(dropout),
                nn.Linear(fusion.out_dim, hidden),
                nn.ReLU(),
                nn.Linear(hidden, num_classes),
            )

    def _encode(self, batch) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
        if not isinstance(batch, Mapping):
            raise TypeError(
                f"batch must be a dict of tensors with keys {self.names}, got "
                f"{type(batch).__name__}"
            )
        features, masks = [], []
        for name in self.names:
            if name not in batch:
                raise KeyError(
                    f"batch has no key {name!r} (needed by its encoder); keys: {sorted(batch)}"
                )
            mask = batch.get(name + "_mask")
            encoder = self.encoders[name]
            features.append(encoder(batch[name]) if mask is None else encoder(batch[name], mask))
            masks.append(mask)
        in_dims = getattr(self.fusion, "in_dims", None)
        if in_dims is not None:
            for name, x, d in zip(self.names, features, in_dims, strict=True):
                if x.shape[-1] != d:
                    raise ValueError(
                        f"encoder {name!r} returns {x.shape[-1]} features (shape "
                        f"{tuple(x.shape)}) but the fusion expects {d}"
                    )
        return features, masks

    def features(self, batch) -> dict[str, torch.Tensor]:
        """Each encoder's output, ``{name: (B, d_name)}``."""
        features, _ = self._encode(batch)
        return dict(zip(self.names, features, strict=True))

    def forward(self, batch) -> torch.Tensor:
        features, masks = self._encode(batch)
        if getattr(self.fusion, "uses_masks", False):
            # sequence encoders keep their positions; the mask says which ones are real
            masks = [m if x.ndim == 3 else None for m, x in zip(masks, features, strict=True)]
            z = self.fusion(features, masks=masks)
        else:
            z = self.fusion(features)
        return self.head(z)


class SeedFusionNet(nn.Module):
    """The seed article's fusion network, with its own symbols.

        X' = sigma(W_1 I' + W_2 T' + b)          fusion layer, (B, hidden)
        y^ = sigma(W_3 X' + b')                   prediction, (B, num_outputs)

    ``I'`` (B, image_dim) and ``T'`` (B, text_dim) are features from any encoders.
    ``forward`` returns the logits W_3 X' + b' (train with ``BCEWithLogitsLoss``, which is
    numerically safer than BCE on y^); ``predict_proba`` returns y^. ``fused`` returns X'.
    ``concat_weight()`` is W = [W_1 W_2], the weight of the equivalent ``ConcatFusion``
    (``to_concat_fusion()`` builds it): W_1 I' + W_2 T' = W [I'; T'].
    ``manual_gradients`` derives the gradients of the binary cross-entropy by hand.

    Parameters: (image_dim + text_dim + 1) * hidden + (hidden + 1) * num_outputs.
    """

    def __init__(self, image_dim: int, text_dim: int, hidden: int = 32, num_outputs: int = 1):
        super().__init__()
        self.image_dim = _positive_int(image_dim, "image_dim")
        self.text_dim = _positive_int(text_dim, "text_dim")
        self.hidden = _positive_int(hidden, "hidden")
        self.num_outputs = _positive_int(num_outputs, "num_outputs")
        self.W1 = nn.Linear(image_dim, hidden, bias=False)
        self.W2 = nn.Linear(text_dim, hidden, bias=False)
        self.b = nn.Parameter(torch.zeros(hidden))
        self.W3 = nn.Linear(hidden, num_outputs)  # its bias is b'

    def _check(self, image_features, text_features) -> None:
        for name, x, d in (
            ("image_features", image_features, self.image_dim),
            ("text_features", text_features, self.text_dim),
        ):
            if not isinstance(x, torch.Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
            if x.ndim != 2 or x.shape[1] != d:
                raise ValueError(f"{name} must have shape (B, {d}), got {tuple(x.shape)}")
            if not x.is_floating_point():
                raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
            if x.shape[0] == 0:
                raise ValueError(f"{name} is an empty batch (shape {tuple(x.shape)})")
        if image_features.shape[0] != text_features.shape[0]:
            raise ValueError(
                f"image_features and text_features must share the batch size, "
                f"got {image_features.shape[0]} and {text_features.shape[0]}"
            )

    def fused(self, image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        """X' = sigma(W_1 I' + W_2 T' + b), (B, hidden)."""
        self._check(image_features, text_features)
        return torch.sigmoid(self.W1(image_features) + self.W2(text_features) + self.b)

    def forward(self, image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        """Logits W_3 X' + b', (B, num_outputs)."""
        return self.W3(self.fused(image_features, text_features))

    def predict_proba(
        self, image_features: torch.Tensor, text_features: torch.Tensor
    ) -> torch.Tensor:
        """y^ = sigma(W_3 X' + b'), (B, num_outputs)."""
        return torch.sigmoid(self(image_features, text_features))

    def concat_weight(self) -> torch.Tensor:
        """W = [W_1 W_2], shape (hidden, image_dim + text_dim)."""
        return torch.cat([self.W1.weight, self.W2.weight], dim=1)

    @torch.no_grad()
    def to_concat_fusion(self) -> ConcatFusion:
        """The same fusion layer as ``ConcatFusion([image_dim, text_dim], hidden, "sigmoid")``."""
        fusion = ConcatFusion([self.image_dim, self.text_dim], self.hidden, activation="sigmoid")
        fusion.linear.weight.copy_(self.concat_weight())
        fusion.linear.bias.copy_(self.b)
        return fusion

    @torch.no_grad()
    def manual_gradients(
        self, image_features: torch.Tensor, text_features: torch.Tensor, targets: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Gradients of the mean binary cross-entropy, derived by hand (no autograd).

        With a = W_1 I' + W_2 T' + b, X' = sigma(a), o = W_3 X' + b', y^ = sigma(o) and
        L = mean over the batch of BCE(y^, y):
            dL/do   = (y^ - y) / B                       (sigmoid + BCE simplify)
            dL/dW_3 = (dL/do)^T X',   dL/db' = sum_batch dL/do
            dL/da   = (dL/do W_3) * X' (1 - X')          (chain rule through the sigmoid)
            dL/dW_1 = (dL/da)^T I',   dL/dW_2 = (dL/da)^T T',   dL/db = sum_batch dL/da
        and dL/dW = [dL/dW_1  dL/dW_2] for the concatenated weight.
        Returns a dict keyed like the parameters: "W1", "W2", "b", "W3", "b_prime".
        """
        targets = torch.as_tensor(targets, dtype=image_features.dtype)
        x = self.fused(image_features, text_features)
        y_hat = torch.sigmoid(self.W3(x))
        if targets.shape != y_hat.shape:
            raise ValueError(
                f"targets must have shape {tuple(y_hat.shape)} (B, num_outputs), "
                f"got {tuple(targets.shape)}"
            )
        d_o = (y_hat - targets) / y_hat.numel()
        d_a = (d_o @ self.W3.weight) * x * (1 - x)
        return {
            "W1": d_a.T @ image_features,
            "W2": d_a.T @ text_features,
            "b": d_a.sum(0),
            "W3": d_o.T @ x,
            "b_prime": d_o.sum(0),
        }
