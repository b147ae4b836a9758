# Two commands do all the set-up themselves on a fresh machine:
#   make book   -- build the HTML book into _build/html
#   make test   -- run the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROFILE ?= auto

# Offline data: the official MNIST test split beside the repo, when it is there.
ifneq ($(wildcard ../shared/data/MNIST/raw),)
export GAN_DATA_DIR ?= $(abspath ../shared/data)
endif

.PHONY: book test figures sync clean venv

venv: $(STAMP)

# PIP_CONSTRAINT=/dev/null: ignore a machine-wide pip constraints file that caps torch.
$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	PIP_CONSTRAINT=/dev/null $(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	PIP_CONSTRAINT=/dev/null $(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

book: $(STAMP)
	$(VENV)/bin/jupyter-book build . --warningiserror --keep-going
	@echo "Book written to $(CURDIR)/_build/html/index.html"

# The theory notebooks (seconds to run) are also re-run by nbval, which compares the printed
# values of every cell marked NBVAL_CHECK_OUTPUT with the committed outputs. They are the
# notebooks whose metadata says "gan_book": {"part": "theory"} (scripts/theory_notebooks.py). The model
# chapters' checked cells are compared after their smoke runs (tests/test_notebooks.py):
# re-running them as committed would mean minutes of training each.
NBVAL_NOTEBOOKS = $(shell $(PYTHON) scripts/theory_notebooks.py)

test: $(STAMP)
	$(PY) -m pytest -q -ra tests $(NBVAL_NOTEBOOKS) --nbval-lax --nbval-current-env

figures: $(STAMP)
	@for nb in notebooks/[0-9]*.ipynb; do \
	  echo "== $$nb (profile=$(PROFILE))"; \
	  $(VENV)/bin/papermill "$$nb" "$$nb" -p profile $(PROFILE) --cwd notebooks || exit 1; \
	done

sync: $(STAMP)
	$(PY) scripts/sync_notebooks.py

clean:
	rm -rf _build .pytest_cache
