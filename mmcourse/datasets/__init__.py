"""The course's embedded datasets: generated deterministically, cached and verified in data/.

* ``load_av_digits()``: real handwritten digits + synthetic spoken digit words (10 classes).
* ``load_cats_dogs(variant)``: drawn cats and dogs + compositional captions (2 classes).
* ``scenarios.load_medicine / load_driving / load_hci / load_moderation``: the small
  application sets of notebook 08.
* ``MultimodalDataset`` / ``make_loader``: the PyTorch path, with modality drop/corruption.

See data/README.md, the data card, for how each set is made and its known biases.
"""

from mmcourse.datasets.av_digits import AVDigits, load_av_digits, regenerate_voice_bank
from mmcourse.datasets.cats_dogs import CatsDogs, load_cats_dogs
from mmcourse.datasets.common import stratified_split
from mmcourse.datasets.scenarios import load_driving, load_hci, load_medicine, load_moderation
from mmcourse.datasets.torch_data import MultimodalDataset, make_loader

__all__ = [
    "AVDigits",
    "CatsDogs",
    "MultimodalDataset",
    "load_av_digits",
    "load_cats_dogs",
    "load_driving",
    "load_hci",
    "load_medicine",
    "load_moderation",
    "make_loader",
    "regenerate_voice_bank",
    "stratified_split",
]
