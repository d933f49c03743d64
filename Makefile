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

# Bootstrap for the portal; the NHS.UK design system for the public pages. NHS.UK's stylesheet loads the Frutiger
# font from NHS.UK's own CDN and names its images from the site root: the font is dropped (the design system falls back
# to Arial) and the images are named beside the stylesheet, so the pages fetch nothing from anywhere but this server.
static/vendor/.installed: package.json
	npm install --no-package-lock --no-audit --no-fund --loglevel=error
	mkdir -p static/vendor/bootstrap
	cp -r node_modules/bootstrap/dist/css node_modules/bootstrap/dist/js static/vendor/bootstrap/
	rm -rf static/vendor/nhsuk-frontend
	mkdir -p static/vendor/nhsuk-frontend
	cp -r node_modules/nhsuk-frontend/dist/nhsuk/assets node_modules/nhsuk-frontend/dist/nhsuk/nhsuk-frontend.min.js \
		static/vendor/nhsuk-frontend/
	sed -e 's/@font-face{[^}]*}//g' -e 's|url(/assets/|url(assets/|g' -e 's|/\*# sourceMappingURL=[^*]*\*/||' \
		node_modules/nhsuk-frontend/dist/nhsuk/nhsuk-frontend.min.css > static/vendor/nhsuk-frontend/nhsuk-frontend.min.css
	sed -i -e 's|//# sourceMappingURL=.*$$||' static/vendor/nhsuk-frontend/nhsuk-frontend.min.js
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

# An ingestion benchmark on a scratch database (BENCH_ARGS="--profile" says where the time goes); no assertions.
bench: install
	$(EMBEDDED) exec --profile bench -- $(PY) -m records.bench.ingest $(BENCH_ARGS)

clean:
	rm -rf .data/test
