# twistedspy: `make run` serves on http://127.0.0.1:8080/, `make test` checks everything.
# Both set up .venv themselves on a fresh machine.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test lint typecheck pytest trial bench proof soak-hour clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	# Twisted caches the plugin list; refresh it as the owner of the install.
	$(BIN)/python -c "from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))"
	rm -f $(VENV)/.installed-*
	touch $@

# glibc's per-thread malloc caches off, as the systemd units do (docs/operations.md).
# Ctrl+C is the way to stop it: twistd ends by re-raising SIGINT (status 130), which make
# would report as an error. The shell outlives that signal (`trap :`; twistd still gets
# it, as a trapped signal is reset to its default in a child) and counts 130 as success.
run: $(STAMP)
	@trap : INT; \
	GLIBC_TUNABLES=glibc.malloc.tcache_count=0$${GLIBC_TUNABLES:+:$$GLIBC_TUNABLES} \
		$(BIN)/twistd --pidfile= -ny spy.tac; \
	status=$$?; [ $$status -eq 130 ] || exit $$status

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest

trial: $(STAMP)
	$(BIN)/trial tests

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python bench/run.py

# Fuzzing, hostile clients, machine faults and a 10-minute soak: one table at the end
# (under 15 minutes on two cores; loopback only). atheris comes with the test extras on
# Linux x86_64; elsewhere it is tried here, from PyPI.
proof: $(STAMP)
	$(BIN)/python -c "import atheris" 2>/dev/null || $(BIN)/python -m pip install --quiet atheris
	$(BIN)/python -m proof.run

# The soak for an hour, its RSS samples kept in soak-hour.txt: what the allocators settle
# in the first quarter of an hour shows as a level, and the second half as flat or not.
soak-hour: $(STAMP)
	$(BIN)/python -m proof.soak --minutes 60 --series soak-hour.txt

clean:
	rm -rf $(VENV) build dist *.egg-info _trial_temp* .pytest_cache .mypy_cache .ruff_cache
