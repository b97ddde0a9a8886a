"""benchmarks/pool_sizing.py end to end on the sim backends (the script the sizing numbers in
docs/deploy.md come from): it measures both pools and sizes them for the asked load."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_pool_sizing_measures_both_pools_and_sizes_them() -> None:
    env = {
        **os.environ,
        "OPTSCALE_GENERATOR_BACKEND": "sim",
        "OPTSCALE_GENERATOR_SIM_TOKEN_DELAY": "0.0005",
        "OPTSCALE_VERIFIER_BACKEND": "sim",
        "OPTSCALE_VERIFIER_SIM_PER_SAMPLE": "0.002",
    }
    args = ["--questions", "3", "--k", "2", "--questions-per-second", "40"]
    out = subprocess.run(
        [sys.executable, "benchmarks/pool_sizing.py", *args, "--samples-per-question", "5"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    assert "generator sim" in out and "6 samples" in out, out
    g = float(re.search(r"([\d.]+) samples/s, ", out).group(1))  # type: ignore[union-attr]
    v = float(re.search(r"([\d.]+) candidates/s per worker", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"200 samples/s -> (\d+) generator workers, (\d+) verifier workers", out)
    assert m is not None, out
    # sim decodes 0.5 ms/token, scores 2 ms/sample: both rates are finite and measured
    assert 0 < v < 600 and 0 < g
    # the printed rates are rounded: the sizing is ceil(200 / rate) up to that rounding
    assert abs(int(m.group(1)) - math.ceil(200 / g)) <= 1
    assert abs(int(m.group(2)) - math.ceil(200 / v)) <= 1
