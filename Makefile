# Set-up and everyday commands. Only Python 3.11+, make and git are needed: every other tool
# is installed into .venv from pyproject.toml's `dev` extra.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LOWEST_VENV ?= build/venv-lowest
SMOKE  ?= build/smoke
PIP    := -m pip install --quiet --disable-pip-version-check
# What the suite needs beside statesock, for the second virtualenvs (lowest, wheel-smoke):
# the same tools as the dev extra's test part, so that every test runs there too.
TEST_TOOLS = pytest pytest-timeout hypothesis looptime playwright
# Each `>=` floor of pyproject.toml's dependencies, pinned with `==`.
LOWEST_PINS = $(PYTHON) -c 'import tomllib; \
	deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]; \
	print(*(d.replace(">=", "==") for d in deps))'
# A small transition log written by the installed package, the way the README says.
SMOKE_LOG = import structlog, statesock.machine as m, statesock.transition_log as t, \
	statesock.sources as s; \
	structlog.configure(processors=[structlog.processors.JSONRenderer()], \
	logger_factory=structlog.WriteLoggerFactory(file=open("transitions.jsonl", "w"))); \
	mc = m.ConnectionMachine(lambda: 0.0); log = t.TransitionLogger("smoke"); \
	records = [*mc.connect(), *mc.opened(), *mc.disconnect(s.UserInitiated()), *mc.closed()]; \
	[log(record) for record in records]

.PHONY: test check lint typecheck demo diagrams bench soak mutate clean lowest wheel-smoke browser

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "statesock needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

test: $(STAMP) browser
	$(BIN)/python -m pytest

# Chromium for the HTML report's browser tests (tests/test_report_browser.py), from the
# system's packages when it is missing and we are root. When it cannot be installed, those
# tests say why: they fail under CI=true and skip loudly elsewhere.
browser:
	@command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || \
	{ if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		(apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium) \
		|| echo "make browser: installing chromium failed" >&2; \
	else echo "make browser: chromium is missing (install it as root: apt-get install chromium)" >&2; fi; }
	@# Graphviz's dot renders the SVG diagram (tests/test_diagram.py skips without it).
	@command -v dot >/dev/null 2>&1 || \
	{ if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		(apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q graphviz >/dev/null) \
		|| echo "make browser: installing graphviz failed" >&2; fi; }

lint: $(STAMP)
	$(BIN)/ruff check statesock tests examples
	$(BIN)/ruff format --check statesock tests examples

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

demo: $(STAMP)
	$(BIN)/statesock demo

diagrams: $(STAMP)
	$(BIN)/statesock diagram --format mermaid -o diagrams/connection.mmd
	$(BIN)/statesock diagram --format dot -o diagrams/connection.dot
	$(BIN)/statesock diagram --format svg -o diagrams/connection.svg

# Millions of seeded random inputs through the connection core (tests/core_world.py).
soak: $(STAMP)
	$(BIN)/python -m tests.soak_core $(ARGS)

# Quick benchmarks (~5 min on 2 cores; not part of `make test`): writes bench-results.json and
# bench-results.md. ARGS=--full for the large sizes, ARGS="--only storm" for one suite.
bench: $(STAMP)
	$(BIN)/python -m tests.bench $(ARGS)

# Mutation testing (mutmut, configured in pyproject.toml's [tool.mutmut]) of machine, sources,
# retry and the core against their fast tests, then the score per module; a mutant that only
# hangs never counts as killed. Survivors: $(BIN)/mutmut show NAME. `ARGS=--fail-under 95`
# makes it a gate. tests/mutation/planted.py plants issue 9's named bugs one by one.
mutate: $(STAMP)
	rm -rf mutants && mkdir -p build
	$(BIN)/mutmut run --max-children 2 > build/mutmut.log 2>&1 || { tail -c 2000 build/mutmut.log; exit 1; }
	$(BIN)/python tests/mutation/score.py --survivors $(ARGS)

# The whole suite against the lowest versions pyproject.toml allows, in a second virtualenv
# (pip has no "lowest" resolution, so the floors are pinned with ==; pip checks that the pins
# satisfy the declared ranges when it installs statesock beside them).
lowest:
	$(PYTHON) -m venv --clear $(LOWEST_VENV)
	$(LOWEST_VENV)/bin/python $(PIP) $$($(LOWEST_PINS)) $(TEST_TOOLS) .
	$(LOWEST_VENV)/bin/python -m pip list --disable-pip-version-check \
		| grep -iE '^(transitions|websockets|structlog) '
	$(LOWEST_VENV)/bin/python -m pytest -q

# Build the sdist and the wheel from it (no deprecation warning allowed), install the wheel
# into a fresh virtualenv and run the CLI from there; then run the sdist's own test suite.
wheel-smoke: $(STAMP)
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
	$(SMOKE)/venv/bin/python $(PIP) $(TEST_TOOLS)
	cd $(SMOKE)/statesock-* && ../venv/bin/python -m pytest -q

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .hypothesis mutants
