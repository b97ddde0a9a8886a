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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from optscale.aggregate import aggregate, check_aggregation
from optscale.errors import InvalidArgumentError
from optscale.truncnorm import SuffStats

__all__ = ["LiveStepJudge", "PrefixPruning"]


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
