"""Difficulty-adaptive self-consistency (DSC; Wang et al., 2024, "Make Every Penny Count",
arXiv 2408.13457) as a batch policy for replay.

DSC decides over a whole batch of questions, not one question at a time, so it does not run
through the per-question loop; replay simulates it on the same sample orders as every other
policy (one batch per order index):

1. **Difficulty ranking.** Questions are ranked easiest first: by a prior's ``mu_bar`` when
   one is given per question (the paper asks the LLM to rank; our prior predictor estimates
   the mean verifier score), else by the score of a one-sample pre-sample (that sample is
   kept as the question's first sample).
2. **Partition.** A binary search over the ranking finds the easy/hard boundary: a probed
   question is easy when its first ``window`` samples all agree (normalized answers); easier
   questions than an easy one are easy. Probing costs its samples (the paper's "binary search
   overhead"); they stay the probed question's samples.
3. **Easy questions** answer with one sample (or the majority of their probe).
4. **Hard questions** start from the sample count the previous hard question needed
   (pre-allocation; the first starts at ``window``), then grow in windows of ``window`` until
   the last window agrees or N_max samples are in (the adaptive stop); majority vote.

Tokens: every sample taken, probes included (all complete: nothing is cut).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from optscale.episode import Episode
from optscale.errors import InvalidArgumentError
from optscale.grading import normalize_answer
from optscale.pool_model import PoolQuestion, PoolSample

__all__ = ["dsc_batch"]


def _key(s: PoolSample) -> str | None:
    return normalize_answer(s.answer) if s.answer is not None else None


def _majority(samples: Sequence[PoolSample]) -> PoolSample:
    votes = Counter(k for k in map(_key, samples) if k)
    if not votes:
        return max(samples, key=lambda s: s.score)
    top = max(votes.values())
    winners = {k for k, v in votes.items() if v == top}
    return next(s for s in samples if _key(s) in winners)


def _agree(samples: Sequence[PoolSample]) -> bool:
    keys = [_key(s) for s in samples]
    return bool(keys) and keys[0] is not None and all(k == keys[0] for k in keys)


def dsc_batch(
    questions: Sequence[PoolQuestion],
    orders: Mapping[str, Sequence[PoolSample]],
    *,
    n_max: int,
    window: int = 4,
    difficulty: Mapping[str, float] | None = None,
) -> dict[str, Episode]:
    """One DSC run over a batch: each question's episode on its given sample order.
    ``difficulty``: question id -> expected score (higher = easier); default: a pre-sample."""
    if n_max < 1 or window < 1:
        raise InvalidArgumentError("window", (n_max, window), "n_max and window must be >= 1")
    window = min(window, n_max)
    taken: dict[str, int] = {q.question_id: 0 for q in questions}
    waves: dict[str, int] = {q.question_id: 0 for q in questions}

    def take(qid: str, k: int) -> None:
        k = min(k, n_max, len(orders[qid]))
        if k > taken[qid]:
            taken[qid] = k
            waves[qid] += 1

    if difficulty is None:
        for q in questions:
            take(q.question_id, 1)
        ease = {q.question_id: orders[q.question_id][0].score for q in questions}
    else:
        ease = {q.question_id: float(difficulty[q.question_id]) for q in questions}
    ranked = sorted(questions, key=lambda q: -ease[q.question_id])
    probed: set[str] = set()

    def easy(i: int) -> bool:
        qid = ranked[i].question_id
        take(qid, window)
        probed.add(qid)
        return _agree(orders[qid][:window])

    lo, hi = 0, len(ranked)
    while lo < hi:
        mid = (lo + hi) // 2
        if easy(mid):
            lo = mid + 1
        else:
            hi = mid
    out: dict[str, Episode] = {}
    allocated = window
    for i, q in enumerate(ranked):
        qid, order = q.question_id, orders[q.question_id]
        if i < lo:
            take(qid, 1)
            used = order[: taken[qid]]
            chosen, reason = _majority(used), "easy"
        else:
            take(qid, allocated)
            while True:
                used = order[: taken[qid]]
                if _agree(used[-window:]) or taken[qid] >= min(n_max, len(order)):
                    break
                take(qid, taken[qid] + window)
            allocated = taken[qid]
            chosen, reason = _majority(used), "adaptive stop" if _agree(used[-window:]) else "n_max"
        out[qid] = Episode(
            correct=bool(chosen.correct),
            tokens=sum(s.tokens for s in used),
            inflight_tokens=0,
            samples=len(used),
            n_star=None,
            reason=reason + (" (probed)" if qid in probed else ""),
            chosen_sample_id=chosen.sample_id,
            waves=waves[qid],
        )
    return out
