# Everything a reader, a learner or CI needs, from a fresh clone:
#   make book   - create .venv, install, execute every notebook (reduced mode), render _build/html
#   make test   - create .venv, install, run the unit tests and nbval on the notebooks
#   make lab    - JupyterLab with rfy importable
#   make student - copies of the notebooks without outputs or exercise solutions, in _build/student
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))
TABLE := book/_generated/reproduction_table.md

.PHONY: install book html notebooks table test unit nbval lab student lock clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c requirements.lock torch
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[book,test]"
	touch $(STAMP)

install: $(STAMP)

notebooks: $(STAMP)
	TQDM_DISABLE=1 $(BIN)/python -m rfy notebooks execute $(NOTEBOOKS)

table: $(STAMP)
	$(BIN)/python -m rfy results table --output $(TABLE)

html: $(STAMP) table
	$(BIN)/jupyter-book build . --warningiserror --keep-going

book: notebooks html

unit: $(STAMP)
	TQDM_DISABLE=1 $(BIN)/python -m pytest tests

nbval: $(STAMP)
	TQDM_DISABLE=1 $(BIN)/python -m pytest --nbval-lax $(NOTEBOOKS)

test: unit nbval

student: $(STAMP)
	$(BIN)/python -m rfy notebooks student $(NOTEBOOKS) --output _build/student

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

lock: $(STAMP)
	{ grep '^#' requirements.lock; $(BIN)/python -m pip freeze --exclude-editable | sed 's/^torch==\(.*\)+cpu$$/torch==\1/'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

clean:
	rm -rf _build .pytest_cache
