# The course website and the slides (issue 17), both usable with no network once installed.
#   make site         build/site/_build/html/index.html, from the executed notebooks
#   make site-check   open the built site and decks in headless chromium, network blocked
#   make slides       build/slides/index.html: a reveal.js deck per notebook
#   make slide-metadata  the same slide metadata written into notebooks/ (for RISE)
# Browser libraries (MathJax, reveal.js, ...) come from npm into website/node_modules (needs
# node and npm); the Python side from the [site] extra (Jupyter Book 1, playwright).

.PHONY: site site-check slides slide-metadata

EXECUTED := build/executed
SITE_DIR := build/site
SITE_HTML := $(SITE_DIR)/_build/html
SLIDES_DIR := build/slides
SITE_STAMP := $(VENV)/.site-installed
NPM_STAMP := website/node_modules/.installed
COURSE_NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.ipynb))
EXECUTED_NOTEBOOKS := $(COURSE_NOTEBOOKS:notebooks/%=$(EXECUTED)/%)
# An executed copy is fresh when it is newer than its notebook and than the course's code.
COURSE_CODE := $(shell find mmcourse -name '*.py' -not -path '*/__pycache__/*')

$(SITE_STAMP): pyproject.toml | $(STAMP)
	$(BIN)/pip install -e ".[site]"
	touch $@

$(NPM_STAMP): website/package.json website/package-lock.json
	cd website && npm ci --no-audit --no-fund
	touch $@

# One notebook at a time, as `make execute` runs them, with matplotlib's inline backend even
# where MPLBACKEND=agg is set (agg would leave the pages without figures).
$(EXECUTED)/%.ipynb: notebooks/%.ipynb $(COURSE_CODE) | $(STAMP)
	TQDM_DISABLE=1 MPLBACKEND=module://matplotlib_inline.backend_inline \
		$(BIN)/jupyter nbconvert --to notebook --execute --ExecutePreprocessor.timeout=600 \
		--output-dir $(EXECUTED) $<

site: $(SITE_STAMP) $(NPM_STAMP) $(EXECUTED_NOTEBOOKS)  ## the course website, offline
	$(BIN)/python website/stage.py --executed $(EXECUTED) --out $(SITE_DIR)/src
	$(BIN)/jupyter-book build $(SITE_DIR)/src --path-output $(SITE_DIR)
	@echo "Open $(SITE_HTML)/index.html in a browser (no server or network needed)."

# Checks the decks too: a deck that loads a CDN or fails to typeset its math fails the check.
site-check: site slides  ## open the site and decks in headless chromium, network blocked
	$(BIN)/python website/check.py $(SITE_HTML) --slides $(SLIDES_DIR) \
		--screenshots $(SITE_DIR)/screenshots

slides: $(NPM_STAMP) $(EXECUTED_NOTEBOOKS) | $(STAMP)  ## a reveal.js deck per notebook, offline
	$(BIN)/python website/export_slides.py --out $(SLIDES_DIR) $(EXECUTED_NOTEBOOKS)
	@echo "Open $(SLIDES_DIR)/index.html in a browser (no server or network needed)."

# Once, by a maintainer: write the same slide metadata into notebooks/ itself, so that RISE in
# JupyterLab (View > Render as slides, Alt+R) presents each notebook as the deck above.
slide-metadata: | $(STAMP)  ## write slide metadata into notebooks/*.ipynb (idempotent)
	$(BIN)/python -m mmcourse.slides --in-place $(COURSE_NOTEBOOKS)
