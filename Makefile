# The two commands README.md promises: `make demo` (the main job) and `make test` (everything).
# Both create the virtual environment on first use and reuse it afterwards.

VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.stampflow-installed

.PHONY: demo test lint format kafka-jars registry-jars avro-jars tools image clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

kafka-jars:
	deploy/kafka/kafka.sh fetch

# Apicurio Registry (a real Confluent-compatible schema registry) for the Rubin tests
registry-jars:
	deploy/registry/registry.sh fetch

# Apache Avro's avro-tools (Java): the tests read stampflow's output and schemas with it
avro-jars:
	deploy/avro/avro.sh fetch

# promtool, the Prometheus server and a manifest renderer for the deployment tests
tools:
	deploy/install-tools.sh

# The container image from a debootstrapped Debian base (no registry), built and run on the
# demo and against a local broker; starts (and then stops) dockerd where none answers.
# `make test` builds and runs it too (tests/deploy/test_image.py).
image: kafka-jars
	deploy/image/build.sh

demo: $(STAMP)
	$(VENV)/bin/stampflow demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: $(STAMP) kafka-jars registry-jars avro-jars tools lint
	$(VENV)/bin/pytest

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
