# make setup | setup-vllm | run | replay | test | test-vllm | check | lint | typecheck
PY := .venv/bin/python
VLLM_PY := .venv-vllm/bin/python
SAMPLES := ../shared/datasets/samples/qwen25math_rm8_math100.jsonl
.PHONY: setup setup-vllm run replay test test-vllm check lint typecheck proto

setup:
	bash scripts/setup.sh

# The real-engine venv (.venv-vllm: vLLM's CPU build; its own venv for vLLM's transformers pin).
setup-vllm:
	bash scripts/setup.sh vllm

# The main job on the embedded default (CPU, no servers): the last 10 GSM8K test questions, beyond the recorded
# pool's, with the packaged Qwen2.5-Coder-1.5B on llama.cpp and the confidence scorer; policy,
# N_max and step aggregation are the ones benchmarks/embedded_default.py chose on the pool's dev
# half (benchmarks/data/embedded-default.json; tests/optscale/test_main_job.py keeps them equal).
run: setup
	$(PY) -m optscale solve --dataset gsm8k --offset 1300 --limit 10 --policy wsc --n-max 4 \
		--aggregation min --out runs/solve.jsonl

# Replay every stopping policy on the shared scored-sample file (Table-1 layout, seconds).
replay: setup
	$(PY) -m optscale replay $(SAMPLES) --orders 100 --json runs/replay-samples.json

# The main suite, then the real-engine tests in .venv-vllm (the main suite does not collect
# tests/vllm_real; OPTSCALE_VLLM_TESTS=1 makes a missing vLLM fail there instead of skipping).
test: setup
	$(PY) -m pytest -q
	$(MAKE) test-vllm

test-vllm: setup-vllm
	OPTSCALE_VLLM_TESTS=1 $(VLLM_PY) -m pytest -q tests/vllm_real

lint: setup
	.venv/bin/ruff check .

typecheck: setup
	.venv/bin/mypy optscale services benchmarks

check: lint typecheck test

# Regenerate optscale/v1 from proto/ (committed; tests/proto checks it is current).
proto: setup
	$(PY) -m optscale.protogen
