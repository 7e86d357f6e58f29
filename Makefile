# Two commands matter: `make run` and `make test`. Both install what they need first.
# ULAK_* variables from the environment or the command line reach `ulak` unchanged.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install run test lint check bench browser spamassassin clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# Start ulak on SQLite with a demo store: API, workers and dev inbox in one process.
run: install
	$(BIN)/ulak migrate
	$(BIN)/ulak demo
	$(BIN)/ulak serve

# Debian's Chromium for the browser tests (Playwright drives it; it never downloads one).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "note: install Debian's chromium package to run the browser tests"; fi; }

# Debian's SpamAssassin scores every shipped email offline (tests/messages/test_spamassassin.py).
spamassassin:
	@command -v spamassassin >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends spamassassin >/dev/null; \
	  else echo "note: install Debian's spamassassin package to score the emails"; fi; }

test: install browser spamassassin
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

check: lint test

bench: install
	$(BIN)/python bench/pipeline.py

clean:
	rm -rf $(VENV) ulak.db ulak.db-wal ulak.db-shm ulak.db-worker.lock ulak-inbox.db ulak-inbox.db-wal ulak-inbox.db-shm .ulak-demo.json
