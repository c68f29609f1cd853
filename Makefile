# MeTRAbs Mocap — the two set-up commands are `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
VENV42 := .venv42
PY := $(VENV)/bin/python

.PHONY: test test-fast demo bench lint format build clean

$(VENV)/.installed: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --upgrade -r requirements-dev.txt
	touch $@

$(VENV42)/.installed: requirements-bpy42.txt
	$(PYTHON) -m venv $(VENV42)
	$(VENV42)/bin/pip install --upgrade -r requirements-bpy42.txt
	touch $@

lint: $(VENV)/.installed
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

format: $(VENV)/.installed
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Everything on Blender 5.0 (bpy 5.0.1), then the Blender tests again on 4.2 LTS.
test: lint $(VENV42)/.installed
	$(PY) -m pytest
	$(VENV42)/bin/python -m pytest tests/blender -p no:cacheprovider

# The quick loop while developing (not a set-up step): the pure-numpy and unit tests, without the
# Blender tests and those marked slow (processes, Ray, training, big models); see tests/conftest.py.
test-fast: $(VENV)/.installed
	$(PY) -m pytest --fast

demo: $(VENV)/.installed
	$(PY) demo/run_demo.py

bench: $(VENV)/.installed
	@for script in benchmarks/bench_*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

# The extension zip, built by Blender's own tooling, in dist/.
build: $(VENV)/.installed
	mkdir -p dist
	$(PY) tools/build_extension.py dist

clean:
	rm -rf dist build demo/out .pytest_cache .ruff_cache
