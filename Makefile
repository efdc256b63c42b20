# Set-up and everyday commands. Only Python 3.11+, make and git are needed: every other tool
# is installed into .venv from pyproject.toml's `dev` extra.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RUNTIME_STAMP := $(VENV)/.installed-runtime
LOWEST_VENV ?= build/venv-lowest
SMOKE  ?= build/smoke
PIP    := -m pip install --quiet --disable-pip-version-check
# What the suite needs beside statesock, for the second virtualenvs (lowest, wheel-smoke):
# the same tools as the dev extra's test part, so that every test runs there too.
TEST_TOOLS = pytest pytest-timeout hypothesis looptime playwright uvloop aiohttp
# Each `>=` floor of pyproject.toml's dependencies, pinned with `==`.
# The extras' floors too (fast: picows; otel: opentelemetry-api, with the SDK the tests use
# pinned to the same release).
LOWEST_PINS = $(PYTHON) -c 'import tomllib; \
	project = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
	extras = project["optional-dependencies"]; \
	deps = project["dependencies"] + extras["fast"] + extras["otel"]; \
	pins = [d.split(";")[0].strip().replace(">=", "==") for d in deps]; \
	sdk = [p.replace("-api", "-sdk") for p in pins if p.startswith("opentelemetry-api")]; \
	print(*pins, *sdk)'
# A small transition log written by the installed package, the way the README says.
SMOKE_LOG = import structlog, statesock.machine as m, statesock.transition_log as t, \
	statesock.sources as s; \
	structlog.configure(processors=[structlog.processors.JSONRenderer()], \
	logger_factory=structlog.WriteLoggerFactory(file=open("transitions.jsonl", "w"))); \
	mc = m.ConnectionMachine(lambda: 0.0); log = t.TransitionLogger("smoke"); \
	records = [*mc.connect(), *mc.opened(), *mc.disconnect(s.UserInitiated()), *mc.closed()]; \
	[log(record) for record in records]

.PHONY: help test check lint typecheck demo diagrams bench soak mutate mutate-shell clean lowest wheel-smoke browser docs interop

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "statesock needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@ $(RUNTIME_STAMP)

# The package and its runtime dependencies only (transitions, websockets, structlog): all
# that `make demo` needs. `make test` adds the dev toolchain to the same .venv.
$(RUNTIME_STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	@touch $@

help: ## list the targets, one line each
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## (.*)/  make \1\t\2/' | expand -t 22

test: $(STAMP) browser interop ## install the dev tools (and Chromium, Graphviz), run the whole suite
	$(BIN)/python -m pytest

# Chromium for the HTML report's browser tests (tests/test_report_browser.py), from the
# system's packages when it is missing and we are root. When it cannot be installed, those
# tests say why: they fail under CI=true and skip loudly elsewhere.
browser: ## install Chromium and Graphviz from the system's packages when missing (as root)
	@command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || \
	{ if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "make: installing chromium (for the HTML report's browser tests)"; \
		(apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null) \
		|| echo "make browser: installing chromium failed" >&2; \
	else echo "make browser: chromium is missing (install it as root: apt-get install chromium)" >&2; fi; }
	@# Graphviz's dot renders the SVG diagram (tests/test_diagram.py skips without it).
	@command -v dot >/dev/null 2>&1 || \
	{ if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "make: installing graphviz (dot renders the SVG state diagram)"; \
		(apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q graphviz >/dev/null) \
		|| echo "make browser: installing graphviz failed" >&2; fi; }

# The node `ws` server of the interop tests (tests/test_interop.py, tests/interop/): the version
# pinned in tests/interop/package.json, installed into $(NODE_DIR) (node finds it there through
# NODE_PATH). Without node or npm those tests say why: they fail under CI=true, skip elsewhere.
NODE_DIR ?= build/node
interop: ## install the node `ws` server for the interop tests into build/node (needs node, npm)
	@if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then \
		echo "make interop: node or npm is missing, so the node ws interop tests will not run" >&2; \
	elif cmp -s tests/interop/package.json $(NODE_DIR)/package.json \
		&& [ -f $(NODE_DIR)/node_modules/ws/package.json ]; then \
		echo "make interop: the node ws package is installed in $(NODE_DIR)"; \
	else \
		echo "make interop: installing the node ws package (tests/interop/package.json) into $(NODE_DIR)"; \
		mkdir -p $(NODE_DIR) && cp tests/interop/package.json $(NODE_DIR)/package.json \
		&& npm install --prefix $(NODE_DIR) --no-audit --no-fund --silent \
		|| echo "make interop: npm install failed" >&2; \
	fi

lint: $(STAMP) ## ruff check and ruff format --check
	$(BIN)/ruff check statesock tests examples
	$(BIN)/ruff format --check statesock tests examples

typecheck: $(STAMP) ## mypy --strict over the package, tests and examples
	$(BIN)/mypy

check: lint typecheck test ## lint, typecheck and test: what to run before a commit

demo: $(RUNTIME_STAMP) ## install the package alone (no dev tools) and run the 10 s demo
	$(BIN)/statesock demo

diagrams: $(STAMP) ## regenerate diagrams/ from the state machine's table
	$(BIN)/statesock diagram --format mermaid -o diagrams/connection.mmd
	$(BIN)/statesock diagram --format dot -o diagrams/connection.dot
	$(BIN)/statesock diagram --format svg -o diagrams/connection.svg

# The documentation site (docs/: Sphinx, furo, MyST) into $(DOCS_OUT), offline, with every
# warning an error (-W --keep-going) and every cross-reference checked (-n); then its tests
# (tests/test_docs.py: every option in the built reference, every Python block run), which
# reuse that build. The docs extra is installed beside the dev tools the tests need.
DOCS_STAMP := $(VENV)/.installed-docs
DOCS_OUT   ?= build/docs
$(DOCS_STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[docs]'
	@touch $@

docs: $(STAMP) $(DOCS_STAMP) ## build the documentation site into build/docs (warnings are errors), test it
	rm -rf $(DOCS_OUT)
	$(BIN)/python -m sphinx -b html -W --keep-going -n -q docs $(DOCS_OUT)
	STATESOCK_DOCS_HTML=$(DOCS_OUT) STATESOCK_DOCS_REQUIRED=1 $(BIN)/python -m pytest -q tests/test_docs.py
	@echo "make docs: open $(DOCS_OUT)/index.html"

# Millions of seeded random inputs through the connection core (tests/core_world.py).
soak: $(STAMP) ## millions of seeded random inputs through the core
	$(BIN)/python -m tests.soak_core $(ARGS)

# Quick benchmarks (~5 min on 2 cores; not part of `make test`): writes bench-results.json and
# bench-results.md. ARGS=--full for the large sizes, ARGS="--only storm" for one suite.
bench: $(STAMP) ## the benchmarks (~7 min): bench-results.json and .md
	$(BIN)/python -m tests.bench $(ARGS)

# Mutation testing (mutmut, configured in pyproject.toml's [tool.mutmut]) of machine, sources,
# retry and the core against their fast tests, then the score per module; a mutant that only
# hangs never counts as killed. Survivors: $(BIN)/mutmut show NAME. `ARGS=--fail-under 95`
# makes it a gate. tests/mutation/planted.py plants issue 9's named bugs one by one.
mutate: $(STAMP) ## mutation testing of the pure modules, score per module
	rm -rf mutants && mkdir -p build
	$(BIN)/mutmut run --max-children 2 > build/mutmut.log 2>&1 || { tail -c 2000 build/mutmut.log; exit 1; }
	$(BIN)/python tests/mutation/score.py --survivors $(ARGS)

# The same for the asyncio shell and the tools ([tool.mutmut.shell] over [tool.mutmut]), run in
# build/mutate-shell/ against the socket tests; survivors: (cd build/mutate-shell &&
# ../../$(BIN)/mutmut show NAME). ARGS="--modules timers,waiters" for a few modules,
# ARGS="--fail-under 90" for a gate.
mutate-shell: $(STAMP) ## mutation testing of the shell and the tools, score per module
	$(BIN)/python tests/mutation/mutate_shell.py --survivors $(ARGS)

# The whole suite against the lowest versions pyproject.toml allows, in a second virtualenv
# (pip has no "lowest" resolution, so the floors are pinned with ==; pip checks that the pins
# satisfy the declared ranges when it installs statesock beside them).
lowest: ## the whole suite against the lowest dependency versions allowed
	$(PYTHON) -m venv --clear $(LOWEST_VENV)
	$(LOWEST_VENV)/bin/python $(PIP) $$($(LOWEST_PINS)) $(TEST_TOOLS) .
	$(LOWEST_VENV)/bin/python -m pip list --disable-pip-version-check \
		| grep -iE '^(transitions|websockets|structlog|picows|opentelemetry-api) '
	$(LOWEST_VENV)/bin/python -m pytest -q

# Build the sdist and the wheel from it (no deprecation warning allowed), install the wheel
# into a fresh virtualenv and run the CLI from there; then run the sdist's own test suite.
wheel-smoke: $(STAMP) ## build sdist and wheel, run the CLI and the sdist's tests from them
	rm -rf $(SMOKE) && mkdir -p $(SMOKE)
	$(BIN)/python -m build --no-isolation --outdir $(SMOKE)/dist . > $(SMOKE)/build.log 2>&1 \
		|| { cat $(SMOKE)/build.log; exit 1; }
	! grep -i 'deprecat' $(SMOKE)/build.log
	$(PYTHON) -m venv $(SMOKE)/venv
	$(SMOKE)/venv/bin/python $(PIP) $(SMOKE)/dist/*.whl
	cd $(SMOKE) && venv/bin/statesock --version
	cd $(SMOKE) && venv/bin/statesock diagram > diagram.txt && test -s diagram.txt
	cd $(SMOKE) && venv/bin/python -c '$(SMOKE_LOG)' && venv/bin/statesock logs --check transitions.jsonl
	cd $(SMOKE) && venv/bin/statesock report transitions.jsonl -o report.html && grep -q 'report-data' report.html
	tar -xzf $(SMOKE)/dist/*.tar.gz -C $(SMOKE)
	$(SMOKE)/venv/bin/python $(PIP) $(TEST_TOOLS) picows opentelemetry-sdk
	cd $(SMOKE)/statesock-* && ../venv/bin/python -m pytest -q

clean: ## remove .venv, build output and caches
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .hypothesis mutants
