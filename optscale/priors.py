"""Per-question priors (mu_bar, sigma_bar) for OptScale^t and prior-ranked policies, from a
file: ``{question_id: [mu_bar, sigma_bar]}``, a positional list, or JSONL rows."""

from __future__ import annotations

import math
from typing import Any

from optscale.pool_model import Pool

__all__ = ["load_priors"]


def load_priors(path: str, pool: Pool | None = None) -> dict[str, tuple[float, float]]:
    """Priors file: ``{question_id: [mu_bar, sigma_bar]}``, or a list of ``[mu, sigma]`` by
    question position (the reference's ``*_train_mu_sigma.json``), or JSONL rows with
    ``question_id``/``id``, ``mu_bar``/``prm_mu``, ``sigma_bar``/``prm_sigma``."""
    import json
    from pathlib import Path

    from optscale.errors import DataError

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(str(path), f"cannot read priors: {exc.strerror or exc}") from exc
    out: dict[str, tuple[float, float]] = {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        for k, v in data.items():
            out[str(k)] = _mu_sigma(v, f"{path}: {k!r}")
    elif isinstance(data, list):
        if pool is None:
            raise DataError(path, "a positional priors list needs the pool")
        if len(data) != len(pool.questions):
            raise DataError(path, f"{len(data)} priors for {len(pool.questions)} questions")
        for i, (q, v) in enumerate(zip(pool.questions, data, strict=True)):
            out[q.question_id] = _mu_sigma(v, f"{path}: item {i}")
    else:
        for i, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
                qid = str(r.get("question_id", r.get("id")))
                mu = float(r.get("mu_bar", r.get("prm_mu")))
                sd = float(r.get("sigma_bar", r.get("prm_sigma")))
            except (json.JSONDecodeError, TypeError, AttributeError, ValueError) as exc:
                raise DataError(f"{path}:{i}", f"bad prior row ({exc})") from exc
            out[qid] = (mu, sd)
    for qid, (mu, sd) in out.items():
        if not (math.isfinite(mu) and math.isfinite(sd) and sd > 0):
            raise DataError(path, f"bad prior for {qid!r}: ({mu}, {sd})")
    return out


def _mu_sigma(v: Any, where: str) -> tuple[float, float]:
    from optscale.errors import DataError

    try:
        if isinstance(v, str | bytes) or len(v) != 2:
            raise TypeError("not a pair")
        return float(v[0]), float(v[1])
    except (TypeError, ValueError) as exc:
        raise DataError(where, f"a prior is [mu_bar, sigma_bar], got {v!r}") from exc
