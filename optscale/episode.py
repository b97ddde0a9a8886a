"""One replay episode: a policy's :class:`~optscale.loop.QuestionLoop` driven over one order of
a question's recorded samples, with a stated model of when samples finish and what a stop
costs.

Sample index ``i`` of the loop is ``order[i]``. Two finish-order models:

* ``"length"`` (the default; how a serving engine behaves): the samples of a dispatch decode in
  parallel at the same rate, one token per time unit, so a sample of ``T`` tokens dispatched at
  time ``t0`` finishes at ``t0 + T`` — short samples arrive first. Ties: dispatch order. When
  the loop stops at time ``t``, a sample still in flight has spent ``min(T, t - t0)`` tokens
  (``cut_tokens``): the server paid for them although nobody reads them.
* ``"dispatch"``: samples finish one after another in dispatch order (the oldest in flight
  first), as a one-sequence-at-a-time CPU engine produces them; a sample cut at the stop is
  counted as not started (``cut_tokens`` 0).

Token counts of an :class:`Episode`:

* ``tokens`` — completion tokens of the samples that finished and were scored (the paper's
  count: as if cancelling were free);
* ``cut_tokens`` — what the samples in flight at the stop had already decoded (model above);
* ``served_tokens`` = ``tokens + cut_tokens`` — what a serving system pays (the headline);
* ``inflight_tokens`` — the full length of the samples in flight at the stop (an upper bound).

``end_time`` (``"length"`` model) is the question's latency in token-times: when the stop
came, with every dispatch decoding in parallel from the moment it was made.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from optscale.errors import InvalidArgumentError
from optscale.loop import Dispatch, QuestionLoop, StalledLoopError, Stop
from optscale.policies import Observation, Policy
from optscale.pool_model import PoolSample

__all__ = ["FINISH_MODELS", "Episode", "FinishModel", "run_episode"]

FinishModel = Literal["length", "dispatch"]
FINISH_MODELS: tuple[FinishModel, ...] = ("length", "dispatch")


@dataclass(frozen=True, slots=True)
class Episode:
    correct: bool
    tokens: int
    inflight_tokens: int
    samples: int
    n_star: float | None
    reason: str
    chosen_sample_id: str | None = None
    cut_tokens: int = 0
    waves: int = 0  # dispatches the loop made (1: it never waited past its first batch)
    end_time: float = 0.0  # "length" model: decode time (in tokens) from start to the stop

    @property
    def served_tokens(self) -> int:
        return self.tokens + self.cut_tokens


def run_episode(
    policy: Policy,
    order: Sequence[PoolSample],
    *,
    question_id: str = "replay",
    seed: int | None = None,
    finish: FinishModel = "length",
    trace: list[Dispatch] | None = None,
) -> Episode:
    """Drive the question's loop over ``order`` under the ``finish`` model. ``trace`` collects
    the loop's dispatches."""
    if finish not in FINISH_MODELS:
        raise InvalidArgumentError("finish", finish, f"must be one of {FINISH_MODELS}")
    by_id = {s.sample_id: s for s in order}
    loop = QuestionLoop.start(question_id, policy, seed=seed)
    # in flight: (finish time, dispatch sequence number, start time, sample)
    inflight: list[tuple[float, int, float, PoolSample]] = []
    now = 0.0
    waves = 0
    action = loop.next_action()
    while not isinstance(action, Stop):
        if isinstance(action, Dispatch):
            k = min(action.k, len(order) - action.first_index)
            if k > 0:
                if trace is not None:
                    trace.append(action)
                waves += 1
                loop = loop.dispatched(action.first_index, k)
                for i in range(action.first_index, action.first_index + k):
                    s = order[i]
                    done = now + s.tokens if finish == "length" else float(i)
                    heapq.heappush(inflight, (done, i, now, s))
        if not inflight:
            raise StalledLoopError(
                f"policy {policy.name!r} asks for more samples than the pool has ({len(order)})"
            )
        done, _, _, s = heapq.heappop(inflight)
        if finish == "length":
            now = done
        loop = loop.scored(Observation(s.sample_id, s.answer, s.score, s.tokens))
        action = loop.next_action()
    cid = action.chosen.sample_id if action.chosen else None
    chosen = by_id.get(cid) if cid is not None else None
    n_star = action.decision.n_star
    cut = (
        sum(min(s.tokens, int(now - start)) for _, _, start, s in inflight)
        if finish == "length"
        else 0
    )
    return Episode(
        correct=bool(chosen is not None and chosen.correct),
        tokens=int(loop.state.tokens),
        inflight_tokens=sum(s.tokens for _, _, _, s in inflight),
        samples=int(loop.state.n_scored),
        n_star=None if n_star is None else float(n_star),
        reason=action.reason,
        chosen_sample_id=cid,
        cut_tokens=cut,
        waves=waves,
        end_time=now if finish == "length" else 0.0,
    )
