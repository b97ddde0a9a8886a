"""Packaged model weights: located, assembled and checked; clear errors otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from optscale.errors import ModelNotFoundError
from optscale.models import QWEN_GGUF_SIZE, resolve_dir, resolve_gguf


def test_smollm2_is_inside_its_wheel() -> None:
    p = resolve_gguf("smollm2")
    assert p.suffix == ".gguf" and p.stat().st_size > 50_000_000


def test_paths_pass_through_and_unknown_names_fail(tmp_path: Path) -> None:
    f = tmp_path / "m.gguf"
    f.write_bytes(b"GGUF")
    assert resolve_gguf(str(f)) == f
    with pytest.raises(ModelNotFoundError, match="not a GGUF file"):
        resolve_gguf("no-such-model")
    assert resolve_dir("org/some-hf-model") == "org/some-hf-model"
    assert (Path(resolve_dir("minilm")) / "config.json").is_file()


@pytest.mark.model
def test_qwen_is_assembled_from_its_chunks_and_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPTSCALE_MODEL_CACHE", str(tmp_path))
    p = resolve_gguf("qwen")  # raises if size or sha256 differ from the recorded ones
    assert p.parent == tmp_path and p.stat().st_size == QWEN_GGUF_SIZE
    assert not list(tmp_path.glob("*.tmp*"))
