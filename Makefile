# Two commands on a fresh machine: `make demo` and `make test`.
#
# Everything installed comes from uv.lock (runtime + test extras, with hashes); uv itself
# is pinned with hashes in requirements-uv.txt. CONTRIBUTING.md explains the targets.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
UV     := $(VENV)/bin/uv
STAMP  := $(VENV)/.installed
# Extra pytest arguments, e.g. `make check PYTEST_ARGS='-k vault -x'`.
PYTEST_ARGS ?=
# The tests that need no real server (OpenBao, PostgreSQL, moto, Go, helm, sops, image).
CHECK_TIER := not (openbao or postgres or moto or go or helm or sops or image)

.PHONY: demo test check lint fmt lock test-latest test-under-load proto bench clean

# uv, the tool that reads the lock, from its hash-pinned file.
$(UV): requirements-uv.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-deps --require-hashes -r requirements-uv.txt
	touch $(UV)

# Every package of the lock, hashes checked, no resolution (`--locked`: a pyproject.toml
# changed without `make lock` stops here); then the project, editable, without its
# dependencies. `make clean` first for a venv holding nothing but the lock.
$(STAMP): $(UV) uv.lock pyproject.toml
	$(UV) export --quiet --locked --extra test --no-emit-project --format requirements-txt \
	  --output-file $(VENV)/requirements.txt
	$(UV) pip install --quiet --python $(PY) --no-deps --require-hashes \
	  -r $(VENV)/requirements.txt
	$(UV) pip install --quiet --python $(PY) --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	./examples/demo.sh

# The whole suite: unit, real servers, e2e, the image (the README's command).
test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

# The daily loop: the tests that need no real server.
check: $(STAMP)
	CSIPROVIDER_TEST_TIER=check $(PY) -m pytest -m '$(CHECK_TIER)' $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

fmt: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Re-resolve every dependency to its newest release allowed by pyproject.toml, and uv
# itself to the running version; then `make test` says whether they still pass.
lock: $(UV)
	$(UV) lock --upgrade
	echo "uv==$$($(UV) --version | cut -d' ' -f2)" | $(UV) pip compile --quiet --universal \
	  --generate-hashes --python-version 3.11 --custom-compile-command 'make lock' - \
	  --output-file requirements-uv.txt

# The suite on the newest releases, not the lock: upstream drift found on purpose.
test-latest:
	rm -rf .venv-latest
	$(PYTHON) -m venv .venv-latest
	.venv-latest/bin/pip install --quiet --upgrade --upgrade-strategy eager -e '.[test]'
	.venv-latest/bin/pip install --quiet --no-deps --require-hashes -r requirements-uv.txt
	.venv-latest/bin/python -m pytest -p no:cacheprovider $(PYTEST_ARGS)

# The whole suite while 4 CPU-bound processes run beside it, RUNS times in a row.
RUNS ?= 3
test-under-load: $(STAMP)
	$(PY) testkit/under_load.py --busy 4 --runs $(RUNS) -- $(PY) -m pytest $(PYTEST_ARGS)

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
	rm -rf $(VENV) .venv-latest .demo .pytest_cache .mypy_cache .ruff_cache build *.egg-info
