"""Test-run settings shared by the unit tests and the notebooks executed by nbval."""

import os
import pathlib
import sys

OFFLINE = pathlib.Path(__file__).parent / "tests" / "offline"

# Notebook kernels inherit this environment: quiet progress bars, a non-GUI matplotlib, and
# the offline guard (tests/offline/sitecustomize.py) loaded into every Python process.
os.environ["TQDM_DISABLE"] = "1"
os.environ["MPLBACKEND"] = "agg"
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(OFFLINE), os.environ.get("PYTHONPATH", "")) if p
)
if "sitecustomize" not in sys.modules or not hasattr(
    sys.modules["sitecustomize"], "NetworkBlockedError"
):
    sys.path.insert(0, str(OFFLINE))
    import importlib

    sys.modules.pop("sitecustomize", None)
    importlib.import_module("sitecustomize")
