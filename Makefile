# Two commands for everyone:  `make lab` (set up and open the course)  and  `make test`.
# Only Python >= 3.10 and make are needed; everything else goes into .venv/.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Optional: a PyTorch wheel index for a CPU-only torch (much smaller than PyPI's CUDA build),
# e.g. make lab TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
TORCH_INDEX_URL ?=
STAMP := $(VENV)/.installed

.PHONY: lab test setup lint unit notebooks benchmark robustness execute clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(if $(TORCH_INDEX_URL),$(BIN)/pip install torch torchvision --index-url $(TORCH_INDEX_URL))
	$(BIN)/pip install -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

lab: setup  ## set up, then open the course in JupyterLab at the first notebook
	$(LAB_SETTINGS_INSTALL)
	$(BIN)/jupyter lab $(LAB_ROOT_FLAG) notebooks/00_welcome.ipynb

# The perturbation CI adds to the plain run: another seed, one thread (as on Binder) and
# another CPU kernel family (as on an older laptop). `make robustness` runs them all.
CI_PERTURBATION := --seeds 1 --threads 1 --kernels avx2
# The robustness run's kernels load the same offline guard as the test run's.
OFFLINE_GUARD := PYTHONPATH=$(CURDIR)/tests/offline TQDM_DISABLE=1 MPLBACKEND=agg

test: setup lint  ## set up, then run everything: lint, unit tests, every notebook (twice)
	TQDM_DISABLE=1 MPLBACKEND=agg $(BIN)/python -m pytest tests notebooks --nbval-lax \
		--timeout=600 -p no:cacheprovider
	$(OFFLINE_GUARD) $(BIN)/python -m mmcourse.perturb $(CI_PERTURBATION)

robustness: setup  ## every notebook under seed offsets 0-2 x 1-2 threads x avx2/default kernels
	mkdir -p build
	$(OFFLINE_GUARD) $(BIN)/python -m mmcourse.perturb --jobs 2 \
		--json build/robustness.json --markdown docs/claim-headroom.md

lint: setup
	$(BIN)/ruff check mmcourse tests notebooks benchmarks website conftest.py setup.py
	$(BIN)/ruff format --check mmcourse tests notebooks benchmarks website conftest.py setup.py

# BENCH_ARGS: --under-load (idle and next to a busy process), --cpus 1 (as on Binder)
BENCH_ARGS ?=
benchmark: setup  ## time and measure every notebook in a fresh kernel; writes benchmark.json
	$(BIN)/python -m mmcourse.benchmark $(BENCH_ARGS) --json benchmark.json

execute: setup  ## for teachers: run every notebook headless, with outputs, into build/executed/
	TQDM_DISABLE=1 $(BIN)/jupyter nbconvert --to notebook --execute \
		--ExecutePreprocessor.timeout=600 --output-dir build/executed notebooks/*.ipynb

clean:
	rm -rf $(VENV) build benchmark.json

# Further targets (site, slides, student copies, wheel) live in their own files.
-include mk/*.mk
