"""The recorded GSM8K pool the benchmarks use is every recorded file read as one pool
(benchmarks/recorded_pools.py), in replay_tokens and pareto alike, and the embedded default is
chosen on its dev half."""

from __future__ import annotations

import glob
import importlib
import json
import sys
from pathlib import Path
from types import ModuleType

from optscale.params import pool_sha256
from optscale.pools import read_pool, split_pool

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str) -> ModuleType:
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return importlib.import_module(name)


def test_the_recorded_pool_is_every_recorded_file() -> None:
    rp = _load("recorded_pools")
    files = sorted(glob.glob(rp.GSM8K_POOL_GLOB))
    assert len(files) >= 2  # the first 50 questions and their growth
    union = rp.read_recorded_gsm8k()
    ids = [q.question_id for f in files for q in read_pool(f).questions]
    assert sorted(q.question_id for q in union.questions) == sorted(ids)
    assert union.name == "+".join(Path(f).name for f in files)
    assert union.min_samples == union.max_samples == 16


def test_replay_tokens_and_pareto_replay_the_union() -> None:
    rp = _load("recorded_pools")
    assert _load("replay_tokens").default_pools()[0] == rp.GSM8K_POOL_GLOB
    pc = _load("pareto_common")
    assert pc.load_pool("gsm8k", pc.Options()).name == rp.read_recorded_gsm8k().name


def test_the_embedded_default_was_chosen_on_the_current_unions_dev_half() -> None:
    doc = json.loads((BENCH / "data" / "embedded-default.json").read_text(encoding="utf-8"))
    dev, _ = split_pool(_load("recorded_pools").read_recorded_gsm8k())
    rerun = "the recorded pool changed: rerun benchmarks/embedded_default.py --write"
    assert doc["tuned_on"]["pool"] == dev.name.removesuffix("[dev]"), rerun
    assert doc["tuned_on"]["question_ids"] == sorted(q.question_id for q in dev.questions), rerun
    assert doc["tuned_on"]["pool_sha256"] == pool_sha256(dev), rerun
