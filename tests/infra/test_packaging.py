"""The wheel the container images install carries everything the services load at run time:
the generated protobuf modules and the predictor's committed default checkpoint."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_has_the_runtime_files(tmp_path: Path) -> None:
    src = tmp_path / "src"  # a clean copy: no build/ left over from an earlier build
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for package in ("optscale", "services"):
        shutil.copytree(ROOT / package, src / package, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(src)],
        check=True,
        timeout=300,
    )  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("optscale-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "services/predictor/default/heads.safetensors",
        "services/predictor/default/predictor.json",
        "optscale/v1/events_pb2.py",
        "optscale/v1/controller_pb2_grpc.py",
        "services/controller/__main__.py",
    ):
        assert required in names, f"{required} missing from {wheel.name}"
