"""The recorded GSM8K pool the benchmarks use: every file in ``benchmarks/data`` recorded with
the same model (Qwen2.5-Coder-1.5B-Instruct Q4_K_M), sampling settings and scorer
(``confidence``), named ``gsm8k*-qwen1.5b-confidence*.jsonl.gz``, read as ONE pool by
:func:`optscale.pools.read_pools` (which refuses files recorded another way or holding the same
question). A file copied in with more recorded questions joins the pool; the dev/test split is
by question-id hash, so no question changes halves."""

from __future__ import annotations

from pathlib import Path

from optscale.pools import Pool, read_pools

DATA = Path(__file__).resolve().parent / "data"
GSM8K_POOL_GLOB = str(DATA / "gsm8k*-qwen1.5b-confidence*.jsonl.gz")


def read_recorded_gsm8k() -> Pool:
    """The recorded GSM8K pool: the union of the files :data:`GSM8K_POOL_GLOB` matches."""
    return read_pools([GSM8K_POOL_GLOB])
