"""Prefix pruning: abort a sample at a step boundary when its prefix scores far below the
question's scored samples (early rejection of partial traces, as ER-PRM / Speculative
Rejection do with a PRM on prefixes).

**Model.** A sample's steps are scored as they close (PRM step rewards, or token confidence per
step on CPU); its *prefix score* after ``j`` steps is the aggregation (``mean``, ``min``,
``last``, ``product``: :mod:`optscale.aggregate`, the same one its final score uses) of its
first ``j`` step scores. With ``n`` samples of the question finished (mean ``m``, standard
deviation ``sd`` of their final scores; pruned prefixes are not counted, so pruning does not
lower its own bar), a prefix of at least ``min_steps`` steps is pruned when

    prefix score < m - z * max(sd, sd_floor)          (n >= min_scored)

i.e. when it sits ``z`` deviations below what this question's samples usually score. ``z`` is
chosen on dev. A pruned sample stops decoding at once: it costs the tokens decoded by the end of
that step and no more.

**In the loop.** A pruned sample enters the question's state as scored, with its prefix score
and no answer (it casts no vote, and it is not replaced: it used its slot, as an aborted
candidate does in ER-PRM). So BoN with pruning is "start N, finish the promising ones", and a
stopping rule sees the low prefix score as evidence. If the chosen sample is a pruned one (every
sample looked bad), the answer is wrong in replay.

**Edge cases.** No step scores, or no recorded step token ends: never pruned. The last step is
never judged (the sample is finished by then). ``z = inf``: pruning off.

**In the engine** (``optscale solve --prune-z``): :class:`LiveStepJudge` is the
:class:`~optscale.ports.StepJudge` the embedded solver puts on each generate request of a
question. The generator calls it at every step end while the sample decodes (llama.cpp at each
blank line; it cannot know a step is the last one, so a sample whose final step ends with a
blank line may be judged there, which replay never does); the judge turns the step log-probs
into step scores as the ``confidence`` scorer does (``exp``) and applies :meth:`PrefixPruning.
judge` against the finished samples' final scores, which the solver adds as they are scored
(:meth:`LiveStepJudge.finished_score`) — the same reference :func:`optscale.episode.run_episode`
keeps.

**Through the services** the controller sends a :class:`PruneSpec` with each ``Generate``
request: the rule (the question's ``prune_z`` / ``prune_min_steps`` options,
:func:`pruning_setting`) and the question's finished samples' score statistics *at dispatch
time*; the generator service judges that request's samples against them (a later dispatch
carries newer ones).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from optscale.aggregate import aggregate, check_aggregation
from optscale.errors import InvalidArgumentError
from optscale.truncnorm import SuffStats

__all__ = [
    "PRUNE_OPTIONS",
    "LiveStepJudge",
    "PrefixPruning",
    "PruneSpec",
    "pruning_setting",
    "reference_stats",
]
PRUNE_OPTIONS = ("prune_z", "prune_min_steps")  # a question's options (PolicyParams JSON)


@dataclass(frozen=True, slots=True)
class PrefixPruning:
    z: float = 1.5
    min_steps: int = 1
    min_scored: int = 2
    sd_floor: float = 0.02
    aggregation: str = "mean"

    def __post_init__(self) -> None:
        if not (isinstance(self.z, int | float) and not isinstance(self.z, bool)) or not (
            self.z >= 0 or math.isinf(self.z)
        ):
            raise InvalidArgumentError("z", self.z, "must be a number >= 0 (inf: off)")
        for name in ("min_steps", "min_scored"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InvalidArgumentError(name, v, "must be an integer >= 1")
        if not (0.0 <= self.sd_floor < 1.0):
            raise InvalidArgumentError("sd_floor", self.sd_floor, "must be in [0, 1)")
        check_aggregation(self.aggregation)

    def threshold(self, finished: SuffStats) -> float | None:
        """The prefix score below which a sample is pruned now, given the final scores of the
        question's finished samples (``None``: not yet)."""
        if math.isinf(self.z) or finished.n < self.min_scored:
            return None
        return finished.mean - self.z * max(finished.std, self.sd_floor)

    def prefix_score(self, step_scores: Sequence[float], steps: int) -> float:
        return aggregate(self.aggregation, step_scores[:steps])

    def prune(self, finished: SuffStats, step_scores: Sequence[float], steps: int) -> bool:
        """Prune a sample whose first ``steps`` of ``len(step_scores)`` steps are in?"""
        if steps >= len(step_scores):
            return False
        return self.judge(finished, step_scores[:steps])

    def judge(self, finished: SuffStats, prefix_scores: Sequence[float]) -> bool:
        """Prune a sample whose steps so far scored ``prefix_scores`` (not its last step)?"""
        if len(prefix_scores) < self.min_steps:
            return False
        limit = self.threshold(finished)
        return limit is not None and aggregate(self.aggregation, prefix_scores) < limit


@dataclass(slots=True)
class LiveStepJudge:
    """One question's :class:`~optscale.ports.StepJudge` for the embedded solver: prefix
    scores from the confidence scorer's step scores (``exp`` of a step's mean token log-prob),
    judged against the final scores of the question's samples finished so far."""

    pruning: PrefixPruning
    finished: SuffStats = field(default_factory=SuffStats)
    judged: int = 0  # step ends the generator asked about (a test can wait on it)

    def finished_score(self, score: float) -> None:
        """A sample of the question finished (not pruned) and scored ``score``."""
        self.finished = self.finished.add(score)  # one assignment: safe across threads

    def step_scores(self, step_logprobs: Sequence[float]) -> tuple[float, ...]:
        return tuple(math.exp(lp) for lp in step_logprobs)

    def prefix_score(self, step_logprobs: Sequence[float]) -> float:
        return aggregate(self.pruning.aggregation, self.step_scores(step_logprobs))

    def __call__(self, sample_id: str, step_logprobs: Sequence[float]) -> bool:
        self.judged += 1
        return self.pruning.judge(self.finished, self.step_scores(step_logprobs))


@dataclass(frozen=True, slots=True)
class PruneSpec:
    """Prefix pruning for one generate request sent over the wire: the rule and the reference
    (the final scores of the question's finished, not pruned, samples when it was sent)."""

    rule: PrefixPruning
    finished: SuffStats

    def judge(self) -> LiveStepJudge:
        return LiveStepJudge(self.rule, self.finished)


def pruning_setting(options: Iterable[tuple[str, object]]) -> PrefixPruning | None:
    """The prefix-pruning rule of a question's options (``prune_z``, ``prune_min_steps``);
    ``None`` without ``prune_z`` (off, the default) or with ``prune_z`` infinite."""
    opts = dict(options)
    z, min_steps = opts.get("prune_z"), opts.get("prune_min_steps", 1)
    if isinstance(min_steps, bool) or not isinstance(min_steps, int) or min_steps < 1:
        raise InvalidArgumentError("prune_min_steps", min_steps, "must be an integer >= 1")
    if z is None:
        return None
    if isinstance(z, bool) or not isinstance(z, int | float) or not (z >= 0):
        raise InvalidArgumentError("prune_z", z, "must be a number >= 0")
    if math.isinf(z):
        return None
    return PrefixPruning(z=float(z), min_steps=min_steps)


def reference_stats(n: int, mean: float, sd: float) -> SuffStats:
    """Sufficient statistics with count ``n``, mean ``mean`` and population deviation ``sd``
    (what a :class:`PruneSpec` carries over the wire), for :meth:`PrefixPruning.threshold`."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise InvalidArgumentError("reference_n", n, "must be an integer >= 0")
    if n == 0:
        return SuffStats()
    if not (0.0 <= mean <= 1.0):
        raise InvalidArgumentError("reference_mean", mean, "must be in [0, 1]")
    if not (0.0 <= sd <= 0.5):
        raise InvalidArgumentError("reference_sd", sd, "must be in [0, 0.5]")
    s1 = n * mean
    s2 = n * (sd * sd + mean * mean)
    return SuffStats(n, s1, min(max(s2, s1 * s1 / n), s1))
