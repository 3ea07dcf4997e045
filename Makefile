# Every target runs inside the project's environment through ./ihas-env, which builds it on first use
# (a virtualenv on hosts with glibc >= 2.38, a Debian 13 userland on older hosts).
ENV := ./ihas-env
DEMO_OUT ?= /tmp/ihas-demo
PYTHONS := 3.11 3.12 3.13

.PHONY: test demo lint lock

test: lint
	$(ENV) python -m pytest

# ruff, then the import contracts of pyproject.toml ([tool.importlinter]): the library imports no
# application, and the applications import each other only downwards.
lint:
	$(ENV) ruff check .
	$(ENV) lint-imports

# The whole TFX pipeline (LocalDagRunner) on ROWS generated Criteo rows with 3 planted segments,
# or on DATA (a raw file or a folder of them) in FORMAT; prints the metrics and the pushed model.
ROWS ?= 100000
FORMAT ?= criteo
demo:
	$(ENV) python -m pipeline.demo --home $(DEMO_OUT) --rows $(ROWS) --format $(FORMAT) \
	  $(if $(DATA),--data $(DATA)) $(if $(SCHEMA),--schema $(SCHEMA))

# Re-resolves the dependency locks, one per supported Python, for Linux x86_64 with glibc 2.39+.
lock:
	for v in $(PYTHONS); do \
	  $(ENV) uv pip compile pyproject.toml --extra dev --extra kubeflow --override requirements/overrides.txt \
	    --python-version $$v --python-platform x86_64-manylinux_2_39 \
	    -o requirements/lock-py$$v.txt || exit 1; \
	done
