"""Shared fixtures: where the shared datasets live (never copied into the repo)."""

from __future__ import annotations

from pathlib import Path

import pytest

from optscale.datasets import datasets_dir


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    return datasets_dir()


@pytest.fixture(scope="session")
def sample_pool_file(shared_datasets: Path) -> Path:
    return shared_datasets / "samples" / "qwen25math_rm8_math100.jsonl"
