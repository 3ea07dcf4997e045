# Every target runs inside the project's environment through ./ihas-env, which builds it on first use
# (a virtualenv on hosts with glibc >= 2.38, a Debian 13 userland on older hosts).
ENV := ./ihas-env
DEMO_OUT ?= /tmp/ihas-demo
PYTHONS := 3.11 3.12 3.13

.PHONY: test demo lint lock

test: lint
	$(ENV) python -m pytest

lint:
	$(ENV) ruff check .

demo:
	$(ENV) ihas selfcheck --out $(DEMO_OUT)

# Re-resolves the dependency locks, one per supported Python, for Linux x86_64 with glibc 2.39+.
lock:
	for v in $(PYTHONS); do \
	  $(ENV) uv pip compile pyproject.toml --extra dev --override requirements/overrides.txt \
	    --python-version $$v --python-platform x86_64-manylinux_2_39 \
	    -o requirements/lock-py$$v.txt || exit 1; \
	done
