"""Give up on a question of a budgeted batch (issue 18 item 3, controller side): stop sampling
a question whose posterior says no sample is likely to be right, so the batch's budget goes to
the others. The rule is the replay allocator's (:mod:`optscale.allocation`):

    P(some sample right) = 1 - prod_i (1 - g(s_i)) * (1 - E[g(S)]) ** (N_max - n) < give_up

with ``g`` = P(correct | score) (the ``p_correct`` option, a logistic calibrated on dev;
:class:`~optscale.bayes.CorrectnessModel`'s default otherwise), ``s_i`` the ``n`` scores so
far and ``S`` ~ the MAP truncated normal around the question's prior (the ``bayes`` default
without one). Checked from the first score on, only for questions with a ``give_up`` option
> 0 in a batch with a token budget. A driver that finds it true swaps the question's policy
for :class:`GaveUp` (stop reason ``give_up``, answering with the policy's own choice among
the scored samples).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from optscale.allocation import log_wrong, p_some_correct, posterior
from optscale.bayes import DEFAULT_BAYES_PRIOR, CorrectnessModel
from optscale.errors import InvalidArgumentError
from optscale.fitting import Bounds, GaussianPrior
from optscale.question_state import Chosen, Decision, QuestionState, choose_best

__all__ = ["GaveUp", "give_up_setting", "gives_up"]


@dataclass(frozen=True, slots=True)
class GaveUp:
    """The policy of a question given up on: stop now, with ``choose``'s answer."""

    name: str
    n_max: int
    choose: Callable[[QuestionState], Chosen | None] = choose_best

    def decide(self, state: QuestionState) -> Decision:
        return Decision(True, state.n_scored, self.choose(state), "give_up")


def give_up_setting(options: Iterable[tuple[str, object]]) -> tuple[float, CorrectnessModel]:
    """``(give_up, g)`` from a question's options (``give_up`` 0: never)."""
    opts = dict(options)
    level = opts.get("give_up", 0.0)
    if isinstance(level, bool) or not isinstance(level, int | float):
        raise InvalidArgumentError("give_up", level, "must be a number in [0, 1)")
    if not (math.isfinite(level) and 0.0 <= level < 1.0):
        raise InvalidArgumentError("give_up", level, "must be in [0, 1)")
    raw = opts.get("p_correct")
    if raw is None:
        return float(level), CorrectnessModel()
    if not isinstance(raw, dict):
        raise InvalidArgumentError("p_correct", raw, 'must be {"a": .., "b": ..}')
    return float(level), CorrectnessModel(float(raw["a"]), float(raw["b"]))


def gives_up(
    state: QuestionState,
    scores: Iterable[float],
    *,
    n_max: int,
    level: float,
    g: CorrectnessModel,
    prior: GaussianPrior | None = None,
) -> bool:
    """Is P(some sample right) below ``level``? ``scores``: the question's scored samples
    (their statistics are ``state.stats``); never before the first score."""
    if level <= 0 or state.best is None:
        return False
    _, p_new = posterior(state.stats, state.best.score, prior or DEFAULT_BAYES_PRIOR, Bounds(), g)
    log_all_wrong = sum(log_wrong(s, g) for s in scores)
    return p_some_correct(log_all_wrong, p_new, max(0, n_max - state.n_scored)) < level
