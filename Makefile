# Two commands for everyone:  `make lab` (set up and open the course)  and  `make test`.
# Only Python >= 3.10 and make are needed; everything else goes into .venv/.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Optional: a PyTorch wheel index for a CPU-only torch (much smaller than PyPI's CUDA build),
# e.g. make lab TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
TORCH_INDEX_URL ?=
STAMP := $(VENV)/.installed

.PHONY: lab test setup lint unit notebooks benchmark execute clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(if $(TORCH_INDEX_URL),$(BIN)/pip install torch torchvision --index-url $(TORCH_INDEX_URL))
	$(BIN)/pip install -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

lab: setup  ## set up, then open the course in JupyterLab at the first notebook
	$(BIN)/jupyter lab notebooks/00_welcome.ipynb

test: setup lint  ## set up, then run everything: lint, unit tests, every notebook under nbval
	TQDM_DISABLE=1 MPLBACKEND=agg $(BIN)/python -m pytest tests notebooks --nbval-lax \
		--timeout=600 -p no:cacheprovider

lint: setup
	$(BIN)/ruff check mmcourse tests notebooks benchmarks conftest.py
	$(BIN)/ruff format --check mmcourse tests notebooks benchmarks conftest.py

benchmark: setup  ## time and measure every notebook in a fresh kernel; writes benchmark.json
	$(BIN)/python -m mmcourse.benchmark --json benchmark.json

execute: setup  ## for teachers: run every notebook headless, with outputs, into build/executed/
	TQDM_DISABLE=1 $(BIN)/jupyter nbconvert --to notebook --execute \
		--ExecutePreprocessor.timeout=600 --output-dir build/executed notebooks/*.ipynb

clean:
	rm -rf $(VENV) build benchmark.json
