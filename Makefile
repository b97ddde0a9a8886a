# make setup | solve | test | check | proto
PY := .venv/bin/python
.PHONY: setup solve test check lint typecheck proto

setup:
	bash scripts/setup.sh

solve: setup
	$(PY) -m optscale solve --dataset gsm8k --limit 20 --out runs/solve-gsm8k.jsonl

test: setup
	$(PY) -m pytest -q

lint: setup
	.venv/bin/ruff check .

typecheck: setup
	.venv/bin/mypy optscale services

check: lint typecheck test

proto: setup
	$(PY) -m optscale.protogen
