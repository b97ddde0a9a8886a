"""`make run` (the README's main command) parses and its calibrated parameters load."""

from __future__ import annotations

import shlex
from pathlib import Path

from optscale.calibrate import read_params
from optscale.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


def _run_recipe() -> list[str]:
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = lines.index("run: setup") + 1
    recipe = ""
    for line in lines[start:]:
        if not line.startswith("\t"):
            break
        recipe += line.strip().rstrip("\\") + " "
    argv = shlex.split(recipe)
    return argv[argv.index("optscale") + 1 :]


def test_make_run_is_an_embedded_solve_with_valid_options() -> None:
    argv = _run_recipe()
    args = build_parser().parse_args(argv)
    assert argv[0] == "solve" and args.generator == "llamacpp" and args.policy == "optscale0"
    params = read_params(ROOT / args.params)
    assert 0 < params["alpha"] < 1 and 0 < params["s_min"] < 1
