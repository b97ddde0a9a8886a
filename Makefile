# make setup | run | test | check | lint | typecheck
PY := .venv/bin/python
SAMPLES := ../shared/datasets/samples/qwen25math_rm8_math100.jsonl
.PHONY: setup run test check lint typecheck proto

setup:
	bash scripts/setup.sh

# The main job on the embedded default (CPU, no servers): replay every stopping policy on the
# shared scored-sample file and print the Table-1 layout. (Becomes the embedded solve once the
# generator/verifier backends land.)
run: setup
	$(PY) -m optscale replay $(SAMPLES) --orders 100 --json runs/replay-samples.json

test: setup
	$(PY) -m pytest -q

lint: setup
	.venv/bin/ruff check .

typecheck: setup
	.venv/bin/mypy optscale services benchmarks

check: lint typecheck test

# Regenerate optscale/v1 from proto/ (committed; tests/proto checks it is current).
proto: setup
	$(PY) -m optscale.protogen
