"""A saved predictor checkpoint's prior widths (``tau_mu``, ``tau_sigma``), measured afterwards.

:func:`services.predictor.model.train` records the widths of the heads it trains; a checkpoint
saved before that (the committed ``services/predictor/default/`` was) gets them here, from its
own training examples, without retraining (about 11 minutes on 2 CPU cores)::

    from optscale.datasets import datasets_dir
    from services.predictor import model, taus
    ex = model.read_targets(datasets_dir() / "optscale_prior_targets.jsonl", "train")
    data = "read_targets(optscale_prior_targets.jsonl, 'train')"
    taus.measure_taus("services/predictor/default", ex, data=data, write=True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from optscale.errors import DataError
from services.predictor.model import (
    Encoder,
    Example,
    Meta,
    TrainedPredictor,
    labels,
    metrics,
    split_dev,
    tau_source,
    write_meta,
)


def measure_taus(
    model_dir: str | Path,
    examples: Sequence[Example],
    *,
    dev_fraction: float = 0.1,
    seed: int = 0,
    encoder: Encoder | None = None,
    data: str = "examples",
    write: bool = False,
) -> Meta:
    """A checkpoint's prior widths, measured on the dev split its training run held out.

    ``examples`` are the run's training examples (for the default checkpoint:
    ``read_targets(optscale_prior_targets.jsonl, "train")``); the split is recomputed from them,
    ``dev_fraction`` and ``seed``, and must reproduce the checkpoint's ``train_size`` and its
    recorded dev MAE, else it is not that run's split (:class:`DataError`). Returns the
    checkpoint's metadata with ``tau_mu`` / ``tau_sigma`` (and the dev RMSEs) set; ``data``
    names the examples in ``tau_source``; ``write``: also saved."""
    p = TrainedPredictor(model_dir, encoder)
    tr, dev = split_dev(list(examples), dev_fraction, seed)
    where = str(Path(model_dir) / "predictor.json")
    if len(tr) != p.meta.train_size:
        why = f"split leaves {len(tr)} training examples, the checkpoint had {p.meta.train_size}"
        raise DataError(where, f"not this checkpoint's training data: {why}")
    got = metrics(p.predict_sync([e.text for e in dev]), labels(dev, p.meta.label))
    for k in ("mu_mae", "sigma_mae"):
        if k in p.meta.dev and not math.isclose(got[k], p.meta.dev[k], rel_tol=1e-5):
            why = f"dev {k} {got[k]:.6f} != recorded {p.meta.dev[k]:.6f}"
            raise DataError(where, f"not this checkpoint's dev split: {why}")
    what = "the checkpoint's training run"
    meta = replace(
        p.meta,
        dev={**p.meta.dev, "mu_rmse": got["mu_rmse"], "sigma_rmse": got["sigma_rmse"]},
        tau_mu=got["mu_rmse"],
        tau_sigma=got["sigma_rmse"],
        tau_source=tau_source(len(dev), dev_fraction, seed, what, data)
        + "; measured after training (services/predictor/taus.py), the split's dev MAE"
        " reproduces the recorded one",
    )
    if write:
        write_meta(meta, model_dir)
    return meta
