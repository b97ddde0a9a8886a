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
from optscale.pruning import PrefixPruning
from optscale.truncnorm import SuffStats

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
    pruned: int = 0  # samples aborted at a step end by prefix pruning (counted in samples)

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
    pruning: PrefixPruning | None = None,
) -> Episode:
    """Drive the question's loop over ``order`` under the ``finish`` model. ``trace`` collects
    the loop's dispatches. ``pruning`` (``"length"`` model only): samples are judged at each
    recorded step end and aborted there (:mod:`optscale.pruning`)."""
    if finish not in FINISH_MODELS:
        raise InvalidArgumentError("finish", finish, f"must be one of {FINISH_MODELS}")
    if pruning is not None and finish != "length":
        raise InvalidArgumentError("finish", finish, "prefix pruning needs the 'length' model")
    by_id = {s.sample_id: s for s in order}
    loop = QuestionLoop.start(question_id, policy, seed=seed)
    # events: (time, dispatch sequence number, steps closed (_DONE: finished), sample)
    events: list[tuple[float, int, int, PoolSample]] = []
    live: dict[int, tuple[float, PoolSample]] = {}  # in flight: sequence number -> (start, sample)
    pruned: set[str] = set()
    finished = SuffStats()  # final scores of the samples that finished (pruning's reference)
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
                    live[i] = (now, s)
                    done = now + s.tokens if finish == "length" else float(i)
                    heapq.heappush(events, (done, i, _DONE, s))
                    if pruning is not None and len(s.step_token_ends) == len(s.step_scores):
                        for j, end in enumerate(s.step_token_ends[:-1], start=1):
                            heapq.heappush(events, (now + end, i, j, s))
        while True:  # to the next event that changes the question's state
            if not live:
                raise StalledLoopError(
                    f"policy {policy.name!r} asks for more samples than the pool has ({len(order)})"
                )
            t, i, steps, s = heapq.heappop(events)
            if i not in live:
                continue  # a pruned sample's later events
            if finish == "length":
                now = t
            if steps == _DONE:
                del live[i]
                loop = loop.scored(Observation(s.sample_id, s.answer, s.score, s.tokens))
                if pruning is not None:
                    finished = finished.add(s.score)
                break
            if pruning is not None and pruning.prune(finished, s.step_scores, steps):
                del live[i]
                pruned.add(s.sample_id)
                spent = s.step_token_ends[steps - 1]
                prefix = pruning.prefix_score(s.step_scores, steps)
                loop = loop.scored(Observation(s.sample_id, None, prefix, spent))
                break
        action = loop.next_action()
    cid = action.chosen.sample_id if action.chosen else None
    chosen = by_id.get(cid) if cid is not None else None
    n_star = action.decision.n_star
    cut = (
        sum(min(s.tokens, int(now - start)) for start, s in live.values())
        if finish == "length"
        else 0
    )
    return Episode(
        correct=bool(chosen is not None and chosen.correct and cid not in pruned),
        tokens=int(loop.state.tokens),
        inflight_tokens=sum(s.tokens for _, s in live.values()),
        samples=int(loop.state.n_scored),
        n_star=None if n_star is None else float(n_star),
        reason=action.reason,
        chosen_sample_id=cid,
        cut_tokens=cut,
        waves=waves,
        end_time=now if finish == "length" else 0.0,
        pruned=len(pruned),
    )


_DONE = 1 << 30  # sorts after every step end of the same time
