# The two commands a new user needs: `make run` and `make test`. Everything they need is installed here.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
EMBEDDED := $(PY) -m sharedcare.embedded

.PHONY: install run manage shell test lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

# Bootstrap for the portal and the NHS.UK design system for the public pages (docker/vendor_assets.sh says how).
static/vendor/.installed: package.json docker/vendor_assets.sh
	npm install --no-package-lock --no-audit --no-fund --loglevel=error
	sh docker/vendor_assets.sh node_modules static/vendor
	touch $@

install: $(VENV)/.installed static/vendor/.installed

run: install
	$(EMBEDDED) run

# A management command on the database and broker of the running `make run` (or on the run profile's own services,
# started for the command and stopped after it, when none is running), e.g. make manage ARGS="run_feed CODE".
manage: install
	$(EMBEDDED) exec --profile run -- $(PY) manage.py $(ARGS)

shell: install
	$(EMBEDDED) exec --profile run -- $(PY) manage.py shell

test: install
	$(EMBEDDED) exec --profile test -- $(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	# The type checker's Django plugin loads the settings, which need a database: the embedded one will do.
	$(EMBEDDED) exec --profile test -- $(VENV)/bin/mypy .
	$(VENV)/bin/lint-imports

# The read path at ICS scale (BENCH_ARGS="--scales 10000,100000,1000000"), then the ingestion benchmark, on scratch
# databases; results in bench/results/ (docs/scaling.md). No assertions.
bench: install
	$(EMBEDDED) exec --profile bench -- $(PY) -m records.bench.read $(BENCH_ARGS)

clean:
	rm -rf .data/test
