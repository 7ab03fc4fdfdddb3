"""The PyTorch path: a Dataset of modality tensors that yields dicts, and a seeded loader.

    ds = MultimodalDataset({"image": d.images, "audio": d.audio}, d.labels)
    ds[0]  # {"image": (1, 8, 8), "audio": (4000,), "label": (), "present": (2,) bool}

To study missing or damaged modalities without touching the data:

* ``drop=("audio",)`` replaces that modality by zeros and marks it absent in ``present``
  (a model can use the flag, e.g. to swap in a learned "missing" embedding);
* ``corrupt={"image": fn}`` applies ``fn(tensor, index)`` to each sample of that modality,
  e.g. extra noise or an occluder; ``index`` lets ``fn`` seed itself per sample.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mmcourse.utils import seeded_generator


def _as_tensor(name: str, value) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"modality {name!r} must be numeric, got dtype {array.dtype}")
    return torch.from_numpy(np.ascontiguousarray(array))


class MultimodalDataset(Dataset):
    """Samples as dicts: one tensor per modality, ``"label"``, and a ``"present"`` mask."""

    def __init__(
        self,
        modalities: Mapping[str, object],
        labels,
        drop=(),
        corrupt: Mapping[str, Callable] | None = None,
    ):
        if not isinstance(modalities, Mapping) or not modalities:
            raise ValueError("modalities must be a non-empty dict of name -> array/tensor")
        raw = _as_tensor("labels", labels)
        if raw.ndim != 1:
            raise ValueError(f"labels must be 1-D class ids (N,), got shape {tuple(raw.shape)}")
        if raw.is_floating_point():  # accept 0.0/1.0 as ids, but never round 0.5 or NaN away
            bad = ~torch.isfinite(raw) | (raw != raw.round())
            if bool(bad.any()):
                first = int(bad.nonzero()[0])
                raise ValueError(
                    f"labels must be whole class ids, got {raw[first].item()!r} at index "
                    f"{first} ({int(bad.sum())} such value(s)); a long cast would silently "
                    "change them"
                )
        self.labels = raw.long()
        if self.labels.numel() and int(self.labels.min()) < 0:
            raise ValueError(f"labels must be non-negative class ids, got {int(self.labels.min())}")
        self.tensors = {}
        for name, value in modalities.items():
            if name in ("label", "present"):
                raise ValueError(f"modality name {name!r} is reserved")
            tensor = _as_tensor(name, value)
            if tensor.shape[0] != self.labels.shape[0]:
                raise ValueError(
                    f"modality {name!r} has {tensor.shape[0]} samples but labels "
                    f"has {self.labels.shape[0]}"
                )
            self.tensors[name] = tensor
        self.modalities = tuple(self.tensors)
        for name in (*drop, *(corrupt or {})):
            if name not in self.tensors:
                raise ValueError(
                    f"unknown modality {name!r} in drop/corrupt; have {self.modalities}"
                )
        if isinstance(drop, str):
            raise TypeError(f"drop must be a list of modality names, got the string {drop!r}")
        for name, fn in (corrupt or {}).items():
            if not callable(fn):
                raise TypeError(
                    f"corrupt[{name!r}] must be a function (tensor, index) -> tensor, "
                    f"got {type(fn).__name__}"
                )
        self.drop = frozenset(drop)
        self.corrupt = dict(corrupt or {})
        self.present = torch.tensor([m not in self.drop for m in self.modalities])

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = {}
        for name, tensor in self.tensors.items():
            x = tensor[index]
            if name in self.drop:
                x = torch.zeros_like(x)
            elif name in self.corrupt:
                x = self.corrupt[name](x, index)
            item[name] = x
        item["label"] = self.labels[index]
        item["present"] = self.present
        return item


def make_loader(
    dataset: Dataset, batch_size: int = 64, shuffle: bool = False, seed: int = 0
) -> DataLoader:
    """A DataLoader with ``num_workers=0`` and its own seeded generator, so the order of
    batches is the same on every run and does not depend on other random calls."""
    if not isinstance(dataset, Dataset):
        raise TypeError(
            "dataset must be a torch Dataset (e.g. a MultimodalDataset), got "
            f"{type(dataset).__name__}"
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    generator = seeded_generator(seed)
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, num_workers=0, generator=generator
    )
