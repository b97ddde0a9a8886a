"""Tests on the real vLLM engine (CPU build), run in ``.venv-vllm`` (``scripts/setup_vllm.sh``).

``make test`` runs them after the main suite: ``OPTSCALE_VLLM_TESTS=1 .venv-vllm/bin/python -m
pytest -q tests/vllm_real``. The generator tests (``test_generator_*.py``) and the PRM verifier
and OpenAI-backend tests (``test_prm_*.py``, ``test_openai_*.py``) live side by side here and
share these fixtures: the local test models made by ``scripts/make_test_models.py``.

Collection: where vLLM is not installed (the main venv) these tests are not collected, unless
``OPTSCALE_VLLM_TESTS=1`` says they must run — then a missing vLLM fails the run at import, it
never skips. Engines are slow to start (20-35 s): start one per module (module-scoped fixtures,
``loop_scope="module"``), and one at a time.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

REQUIRED = os.environ.get("OPTSCALE_VLLM_TESTS") == "1"
ROOT = Path(__file__).resolve().parents[2]

if not REQUIRED and importlib.util.find_spec("vllm") is None:
    collect_ignore_glob = ["test_*.py"]
else:
    # CPU engine settings: 1 GiB of KV cache is plenty for the tiny test models; no hub.
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import vllm  # noqa: F401  # a missing or broken vLLM fails here, loudly


def _load_test_models() -> ModuleType:
    path = ROOT / "scripts" / "make_test_models.py"
    spec = importlib.util.spec_from_file_location("make_test_models", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_test_models", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def test_models() -> ModuleType:
    """``scripts/make_test_models.py`` as a module (``STEP_TOKEN``, ``PRM_SHAPE``, ...)."""
    return _load_test_models()


@pytest.fixture(scope="session")
def smollm2_dir(test_models: ModuleType) -> str:
    """SmolLM2-135M-Instruct as a Hugging Face directory (bf16, tokenizer with chat template)."""
    return str(test_models.smollm2_dir())


@pytest.fixture(scope="session")
def tiny_prm_dir(test_models: ModuleType) -> str:
    """A tiny random Qwen2ForProcessRewardModel; its tokenizer has the ``<extra_0>`` token."""
    return str(test_models.tiny_prm_dir())
