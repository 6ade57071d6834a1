# beach-manager: `make run` starts the service on embedded defaults; `make test` runs every test.
# Both build .venv on first use (a regular install, so twistd/twist find the drop-in).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEPS_STAMP := $(VENV)/.deps-installed
PKG_STAMP  := $(VENV)/.pkg-installed
SOURCES := $(shell find beachmanager twisted -name '*.py' -o -name '*.sql' 2>/dev/null) \
           $(wildcard beachmanager/api/ui/static/*)
HTTP ?= tcp:8081:interface=127.0.0.1
PYTEST_ARGS ?=

.PHONY: run demo test install lint typecheck check-lines clean smoke stack-smoke

install: $(PKG_STAMP)

$(DEPS_STAMP): setup.cfg pyproject.toml
	@scripts/check-system run
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check '.[test,dev]'
	@touch $@

$(PKG_STAMP): $(DEPS_STAMP) $(SOURCES)
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps --force-reinstall .
	@$(BIN)/python -c "from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))"
	@touch $@

# The manager with the devstack inside: a Road-compatible server on DEV_ROAD_PORT and
# DEV_HOSTS Beach hosts running a shell, attached as soon as it starts.  The dev auth
# bypass is on (loudly): try `.venv/bin/python scripts/send_action.py 'echo hi'`.
DEV_ROAD_PORT ?= 4132
DEV_HOSTS ?= 2
run: install
	AUTH_BYPASS=1 $(BIN)/twist --log-format=text --reactor=beach-asyncio beach-manager \
	  --http-endpoint=$(HTTP) --dev-road=$(DEV_ROAD_PORT) --dev-hosts=$(DEV_HOSTS)

# A controller agent plays terminal Pong on another host through the manager, on the bus only
# (embedded defaults, dev Road on DEV_ROAD_PORT); the Pong screen is printed as the manager
# mirrors it.  Ctrl-C stops it.  See scripts/demo.py and docs/bus-controllers.md.
demo: install
	$(BIN)/python scripts/demo.py --port $(lastword $(subst :, ,$(firstword $(subst :interface, ,$(HTTP))))) --road-port $(DEV_ROAD_PORT)

check-lines:
	@$(BIN)/python scripts/check_lines.py

lint: install
	$(BIN)/ruff check $(wildcard beachmanager twisted tests bench) scripts/check_lines.py

# mypy over beachmanager/ (settings in pyproject.toml; stricter on the seam modules).
typecheck: install
	$(BIN)/mypy

test: install check-lines lint typecheck
	@scripts/install-test-tools
	@scripts/check-system test
	$(BIN)/pytest $(PYTEST_ARGS)

# The 60-second connectivity smoke: Road, a host with a real shell and the manager as three
# processes on alternate ports (14132, 18081); see tests/smoke/run_smoke.py.
smoke: install
	$(BIN)/python tests/smoke/run_smoke.py

# The connectivity smoke across network namespaces (root): the smoke stack of scripts/stack,
# then again with host-1 behind an impaired link (50 ms each way, 1 % loss); see
# tests/smoke/run_stack_smoke.py.  Without namespaces it says why in one line and fails.
stack-smoke: install
	$(BIN)/python tests/smoke/run_stack_smoke.py
	$(BIN)/python tests/smoke/run_stack_smoke.py --impair 'host-1=delay=50ms,loss=1%'

clean:
	rm -rf $(VENV) build *.egg-info
