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

# Until the TFX pipeline lands: generated Criteo rows with planted segments, validated with the
# shared parser, then the environment self-check (Keras fit, TFX pipeline, TF Serving API).
demo:
	$(ENV) ihas data synth --rows 200000 --format criteo --segments 3 --seed 0 --out $(DEMO_OUT)/criteo.txt
	$(ENV) ihas data validate --format criteo --quarantine $(DEMO_OUT)/quarantine.jsonl $(DEMO_OUT)/criteo.txt
	$(ENV) ihas selfcheck --out $(DEMO_OUT)/selfcheck

# Re-resolves the dependency locks, one per supported Python, for Linux x86_64 with glibc 2.39+.
lock:
	for v in $(PYTHONS); do \
	  $(ENV) uv pip compile pyproject.toml --extra dev --override requirements/overrides.txt \
	    --python-version $$v --python-platform x86_64-manylinux_2_39 \
	    -o requirements/lock-py$$v.txt || exit 1; \
	done
