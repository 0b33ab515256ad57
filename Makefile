# Everything a reader, a learner or CI needs, from a fresh clone:
#   make book   - create .venv, install, execute every notebook (reduced mode), render _build/html
#   make test   - create .venv, install, run the unit tests, every notebook on a non-zero seed (smoke) and nbval
#   make lab    - JupyterLab with rfy importable
#   make student - copies of the notebooks without outputs or exercise solutions, in _build/student
#   make html   - render _build/html from the notebooks' stored outputs (no execution)
#   make check-book - open every built page in headless Chromium and fail on what a reader would see broken
#   make pdf    - the whole book as one PDF, _build/html/rfy-book.pdf (after make html; Chromium prints it)
#   make gpu-wheels   - the wheels a lent GPU machine lacks, in .whl/ (then see gpu-campaign)
#   make gpu-campaign - ON the lent GPU machine: `python -m rfy campaign`, its records packed into $(OUT)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))
TABLE := book/_generated/reproduction_table.md
ROBUSTNESS := book/_generated/robustness_table.md
COSTS := book/_generated/cost_table.md
CHAPTERS := book/_generated/chapters_table.md

MATHJAX := _mathjax/mathjax/tex-mml-chtml.js

.PHONY: install book html notebooks table test unit smoke nbval lab student lock clean check-book diagrams pdf \
	gpu-wheels gpu-campaign

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c requirements.lock torch torchvision
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[book,test,mujoco]"
	touch $(STAMP)

install: $(STAMP)

notebooks: $(STAMP)
	TQDM_DISABLE=1 $(BIN)/python -m rfy notebooks execute $(NOTEBOOKS)

diagrams: $(STAMP)
	$(BIN)/python book/diagrams/draw.py

table: $(STAMP)
	$(BIN)/python -m rfy results table --output $(TABLE)
	$(BIN)/python -m rfy results robustness --output $(ROBUSTNESS)
	$(BIN)/python -m rfy results costs --output $(COSTS)
	$(BIN)/python -m rfy results chapters --output $(CHAPTERS)
	$(BIN)/python -m rfy notebooks records

# MathJax 3 is served from the book itself, so equations render offline: the npm registry's
# package (npm checks its integrity; we check the tarball's sha256 too), its es5 bundle unpacked.
MATHJAX_VERSION := 3.2.2
MATHJAX_SHA256 := 1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09
$(MATHJAX):
	rm -rf _mathjax && mkdir -p _mathjax/pack
	cd _mathjax/pack && npm pack --silent mathjax@$(MATHJAX_VERSION) >/dev/null
	echo "$(MATHJAX_SHA256)  _mathjax/pack/mathjax-$(MATHJAX_VERSION).tgz" | sha256sum --check --quiet
	tar -xzf _mathjax/pack/mathjax-$(MATHJAX_VERSION).tgz -C _mathjax/pack package/es5
	mv _mathjax/pack/package/es5 _mathjax/mathjax && rm -rf _mathjax/pack

html: $(STAMP) table $(MATHJAX)
	$(BIN)/jupyter-book build . --warningiserror --keep-going

# First the checker is shown pages with planted defects (it must report each), then the book.
check-book: $(STAMP) $(MATHJAX)
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_book_pages.py -k planted
	$(BIN)/python tests/check_book.py _build/html

pdf: $(STAMP)
	$(BIN)/python book/_ext/rfy_pdf.py _build/html --output _build/html/rfy-book.pdf

book: notebooks html

unit: $(STAMP)
	TQDM_DISABLE=1 $(BIN)/python -m pytest tests -m "not notebooks"

# Every notebook once through papermill on its own non-zero seed, knobs turned down (a few minutes)
smoke: $(STAMP)
	TQDM_DISABLE=1 $(BIN)/python -m pytest tests/test_notebooks_any_seed.py -m notebooks

nbval: $(STAMP)
	TQDM_DISABLE=1 $(BIN)/python -m pytest --nbval-lax $(NOTEBOOKS)

test: unit smoke nbval

student: $(STAMP)
	$(BIN)/python -m rfy notebooks student $(NOTEBOOKS) --output _build/student

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

lock: $(STAMP)
	{ grep '^#' requirements.lock; $(BIN)/python -m pip freeze --exclude-editable | sed 's/^torch==\(.*\)+cpu$$/torch==\1/'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

# A lent GPU machine has Python 3.12 with torch, torchvision, torchdiffeq, numpy, scipy, scikit-learn, matplotlib,
# tqdm and pytest, and no network: what else rfy imports travels as wheels in the ignored .whl/ (pins from the lock).
GPU_WHEELS := gymnasium Farama-Notifications stable_baselines3
gpu-wheels:
	rm -rf .whl && mkdir -p .whl
	for name in $(GPU_WHEELS); do \
	  $(PYTHON) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl "$$(grep -i "^$$name==" requirements.lock)" \
	    || exit 1; done

# Run there, in one device call that carries .whl: RFY_GIT_COMMIT=$$(git rev-parse HEAD) make gpu-campaign OUT=$$OUT
# (the call returns only a few files: records and logs come back packed in $(OUT)/campaign.tar.gz).
OUT ?= _build
gpu-campaign: SHELL := /bin/bash
gpu-campaign:
	python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
	set -o pipefail; PYTHONPATH=/tmp/site:$(CURDIR) PYTHONUNBUFFERED=1 python3 -m rfy campaign --out /tmp/campaign \
	  --archive $(OUT)/campaign.tar.gz 2>&1 | tee $(OUT)/campaign.log

clean:
	rm -rf _build .pytest_cache
