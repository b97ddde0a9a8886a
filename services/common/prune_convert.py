"""Prefix pruning over gRPC: :class:`optscale.pruning.PruneSpec` <-> ``PrefixPruning`` (the
controller sends it with a ``Generate`` request; the generator service judges with it)."""

from __future__ import annotations

import math

from optscale.errors import InvalidArgumentError
from optscale.pruning import PrefixPruning, PruneSpec, reference_stats
from optscale.v1 import generator_pb2


def prune_spec_to_pb(spec: PruneSpec) -> generator_pb2.PrefixPruning:
    rule, ref = spec.rule, spec.finished
    return generator_pb2.PrefixPruning(
        z=rule.z,
        min_steps=rule.min_steps,
        min_scored=rule.min_scored,
        sd_floor=rule.sd_floor,
        aggregation=rule.aggregation,
        reference_n=ref.n,
        reference_mean=ref.mean if ref.n else 0.0,
        reference_sd=ref.std if ref.n else 0.0,
    )


def prune_spec_from_pb(p: generator_pb2.PrefixPruning) -> PruneSpec:
    """Raises :class:`InvalidArgumentError` naming the bad ``pruning.*`` field."""
    for name in ("z", "sd_floor", "reference_mean", "reference_sd"):
        if not math.isfinite(getattr(p, name)):
            raise InvalidArgumentError(f"pruning.{name}", getattr(p, name), "must be finite")
    try:
        rule = PrefixPruning(
            z=p.z,
            min_steps=p.min_steps,
            min_scored=p.min_scored,
            sd_floor=p.sd_floor,
            aggregation=p.aggregation,
        )
        ref = reference_stats(p.reference_n, p.reference_mean, p.reference_sd)
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(f"pruning.{exc.field}", exc.value, exc.why) from exc
    return PruneSpec(rule, ref)
