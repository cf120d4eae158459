# Two commands for a newcomer: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

.PHONY: demo test venv benchmark clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first (pinned CPU build), then the project with its test extras.
$(STAMP): $(PY) pyproject.toml
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "torch==2.13.0"
	$(PIP) install -q -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/sbi-astro demo -o demo-output

# one pytest worker per core, each on one thread: 11 min instead of 22 on 2 cores
test: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n auto

benchmark: $(STAMP)
	$(PIP) install -q -e ".[test,bench]"
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) demo-output
