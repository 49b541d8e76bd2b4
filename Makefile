# Run `make` or `make help` for the list of targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DATA_DIR ?= $(or $(WIREWATCH_DATA_DIR),../shared/datasets)
BUNDLE ?= exports/terrorism-v1
# Training and tests never reach a model hub.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.DEFAULT_GOAL := help
.PHONY: help install lint format typecheck test test-unit test-integration demo data train evaluate schemas broker serve bench bench-gpu install-openvino bench-ad clean
.PHONY: browser embedder incident-quality
.PHONY: feed feed-server bench-feed bench-heads bench-unused bench-margins
FEEDS ?= feeds.txt

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  \033[1m%-18s\033[0m %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[train,tools,feed,dev]'
	touch $@

install: $(VENV)/.installed ## create .venv with the serving install and the train, tools, feed and dev extras

demo: install ## clone to live alerts: data, bundle (quick one if none), broker, scorer, live view (ARGS=--keep-running)
	$(VENV)/bin/wirewatch demo --data-dir $(DATA_DIR) $(ARGS)

lint: install ## ruff lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

typecheck: install ## mypy (strict for stream/)
	$(VENV)/bin/mypy

test: install lint typecheck browser ## what CI runs: install, lint, type check, the whole test suite
	$(PY) -m pytest

test-unit: install ## unit tests only (no broker, no network)
	$(PY) -m pytest tests/unit

test-integration: install browser ## integration tests (real broker, real tiny model, ONNX Runtime, Chromium)
	$(PY) -m pytest tests/integration

# The page's test drives Debian's Chromium (Playwright's client never downloads a browser here).
browser: ## install Debian's chromium for the browser test when missing (skipped with WIREWATCH_SKIP_BROWSER_TESTS=1)
	@if [ "$${WIREWATCH_SKIP_BROWSER_TESTS:-}" = 1 ] || [ -x "$${WIREWATCH_CHROMIUM:-/usr/bin/chromium}" ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi

embedder: install ## export the sentence embedder that `wirewatch incidents` groups alerts with (exports/embedder)
	$(PY) -m training.ship.embedder --out exports/embedder

incident-quality: install ## pairwise precision/recall of incident grouping on Wikipedia current events (JSON)
	@[ -f exports/embedder/manifest.json ] || $(MAKE) embedder
	$(PY) -m training.bench.incident_quality --embedder exports/embedder --data-dir $(DATA_DIR) --out runs/incident-quality/result.json $(ARGS)

data: install ## prepare data/terrorism/{train,val,test}.jsonl and data/stream.jsonl
	$(VENV)/bin/wirewatch data prepare --data-dir $(DATA_DIR) --out data

train: install ## train the default bundle into $(BUNDLE) (prepares the data when missing)
	@[ -f data/terrorism/train.jsonl ] || $(MAKE) data
	$(VENV)/bin/wirewatch train --data data/terrorism --out $(BUNDLE)

bench-heads: install ## document heads refitted on $(BUNDLE)'s validation windows, without retraining (JSON)
	$(PY) -m training.bench.heads --bundle $(BUNDLE) --data data/terrorism --out runs/heads/result.json $(ARGS)

bench-unused: install ## $(BUNDLE) on the BBC and Reuters articles no split uses that name violence: alerts and top titles to read (JSON)
	$(PY) -m training.bench.unused --bundle $(BUNDLE) --data data --datasets $(DATA_DIR) --out runs/unused/result.json $(ARGS)

bench-margins: install ## $(BUNDLE)'s held-out figures with 95% intervals and its paired margin over TF-IDF, without retraining (JSON)
	$(PY) -m training.bench.margins --bundle $(BUNDLE) --data data/terrorism --out runs/margins/result.json $(ARGS)

evaluate: install ## evaluate $(BUNDLE) on the test split
	$(VENV)/bin/wirewatch evaluate --bundle $(BUNDLE) --data data/terrorism/test.jsonl

schemas: install ## regenerate the message JSON Schema files in schemas/
	$(PY) -m stream.schemas schemas

.PHONY: settings-table
settings-table: install ## regenerate the configuration table in docs/operating.md from stream/serve/settings.py
	$(PY) -m stream.serve.settings docs/operating.md

broker: install ## run the embedded Kafka-compatible broker on 127.0.0.1:9092 (memory storage)
	$(VENV)/bin/wirewatch broker

feed: install ## poll the feeds of $(FEEDS) (one URL a line, or OPML) into the articles topic on 127.0.0.1:9092 (ARGS=--once)
	$(VENV)/bin/wirewatch feed --feeds $(FEEDS) $(ARGS)

feed-server: install ## a local news site from data/stream.jsonl on :8000 (feeds and pages); its feed list in runs/local-feeds.txt
	@mkdir -p runs
	$(PY) -m stream.devtools.feedserver data/stream.jsonl --port 8000 --list runs/local-feeds.txt $(ARGS)

bench-feed: install ## wirewatch feed throughput: 200 local feeds x 50 items into the embedded broker (JSON)
	$(PY) -m bench.feed $(ARGS)

serve: install ## run the scorer on $(BUNDLE) against 127.0.0.1:9092, creating missing topics
	$(VENV)/bin/wirewatch serve --bundle $(BUNDLE) --create-topics

bench: install ## benchmark: bare model, ceiling, end to end, naive torch consumer; prints and saves JSON
	$(PY) -m bench.run --bundle $(BUNDLE) $(ARGS)

bench-incidents: install ## the subscriber pipeline (scorer, incidents) on a year of current events: alerts, incidents, pairs vs offline (JSON)
	@[ -f exports/embedder/manifest.json ] || $(MAKE) embedder
	$(PY) -m bench.incidents --bundle $(BUNDLE) --data-dir $(DATA_DIR) $(ARGS)

bench-gpu: install ## the same benchmark on CUDA (needs onnxruntime-gpu and a GPU; see bench/gpu.sh)
	$(PY) -m bench.run --bundle $(BUNDLE) --providers cuda --batch-size 256 --naive-limit 0 --name cuda $(ARGS)

install-openvino: install ## add the OpenVINO execution provider plugin (for --providers openvino)
	$(PY) -m pip install --quiet -e '.[openvino]'

bench-ad: install ## label-free modes on public one-class protocols (AG News, BBC, Reuters); prints and saves JSON
	$(VENV)/bin/wirewatch bench-ad --data-dir $(DATA_DIR) $(ARGS)

clean: ## remove caches (keeps .venv, data and exports)
	rm -rf .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info
