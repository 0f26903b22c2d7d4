# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint proto bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	./examples/demo.sh

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# Regenerate the gRPC stubs from proto/ (a test fails if they are out of date).
proto: $(STAMP)
	$(PY) -m grpc_tools.protoc -Icsiprovider=proto --python_out=. --pyi_out=. \
	  --grpc_python_out=. proto/v1alpha1/service.proto

bench: $(STAMP)
	$(PY) bench/mount_overhead.py
	$(PY) bench/vault_mount.py
	$(PY) bench/aws_mount.py
	$(PY) bench/rotation_load.py
	$(PY) bench/memory.py
	$(PY) bench/sops_mount.py

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache build *.egg-info
