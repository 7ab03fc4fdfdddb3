"""mmcourse: the helper library of 'Multimodal Large Models: Principles and Practice'.

Small, tested functions that the notebooks import instead of pasting code. Submodules are
imported on demand (``from mmcourse import datasets``) to keep ``import mmcourse`` fast.
"""

from mmcourse.check import claim
from mmcourse.utils import env_report, get_device, limit_threads, seed_everything

limit_threads()

__all__ = ["claim", "env_report", "get_device", "seed_everything"]
__version__ = "0.1.0"
