"""Difficulty-adaptive self-consistency (DSC; Wang et al., 2024, "Make Every Penny Count",
arXiv 2408.13457) over a batch, for replay.

:func:`dsc_batch` (replay's ``dsc`` row) runs what the controller runs: every question's
:class:`~optscale.loop.QuestionLoop` with the ``dsc`` policy of :mod:`optscale.batch_dsc`,
sharing one :class:`~optscale.batch_dsc.DscBoard` (the batch's easy/hard boundary and the
pre-allocation), in one stated schedule: the questions start in rank order (easiest first),
then the samples finish one at a time in the order they were dispatched across the whole
batch (one first-in first-out queue; the controller's test scores its samples in the same
order and gets the same episodes). Samples in flight at a question's stop are cut: counted in
``inflight_tokens`` (their full length), not in ``tokens`` (as replay's ``dispatch`` finish
model). The pre-sample (``difficulty=None``) is each question's sample 0.

:func:`dsc_batch_paper` is the paper's sequential algorithm, kept as the reference:

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

from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import replace

from optscale.batch_dsc import BatchDSC, DscBoard, hard_count, make_batch_dsc, probe_report
from optscale.episode import Episode
from optscale.errors import InvalidArgumentError
from optscale.grading import normalize_answer
from optscale.loop import Dispatch, QuestionLoop, Stop
from optscale.policies import Observation
from optscale.pool_model import PoolQuestion, PoolSample

__all__ = ["dsc_batch", "dsc_batch_paper", "rank_by_ease"]


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


def dsc_batch_paper(
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


def rank_by_ease(ease: Mapping[str, float], ids: Sequence[str]) -> list[str]:
    """Question ids easiest first (higher ``ease`` first; ties: the given order)."""
    return sorted(ids, key=lambda q: -ease[q])


def dsc_batch(
    questions: Sequence[PoolQuestion],
    orders: Mapping[str, Sequence[PoolSample]],
    *,
    n_max: int,
    window: int = 4,
    difficulty: Mapping[str, float] | None = None,
) -> dict[str, Episode]:
    """Batch DSC as the controller runs it (module docstring), on the given sample orders.
    ``difficulty``: question id -> expected score (higher = easier); default: a pre-sample."""
    if n_max < 1 or window < 1:
        raise InvalidArgumentError("window", (n_max, window), "n_max and window must be >= 1")
    ids = [q.question_id for q in questions]
    ease = difficulty if difficulty is not None else {i: orders[i][0].score for i in ids}
    ranked = rank_by_ease({i: float(ease[i]) for i in ids}, ids)
    board = DscBoard()
    loops: dict[str, QuestionLoop] = {}
    for r, qid in enumerate(ranked):
        opts = {"dsc_batch": "replay", "rank": r, "batch_size": len(ranked), "dsc_window": window}
        loops[qid] = QuestionLoop.start(qid, make_batch_dsc(min(n_max, len(orders[qid])), opts))
    fifo: deque[tuple[str, int]] = deque()
    waves: Counter[str] = Counter()
    out: dict[str, Episode] = {}

    def advance(qid: str) -> None:
        loop = loops[qid]
        pol = loop.policy
        assert isinstance(pol, BatchDSC)
        view = board.step(pol.rank, probe_report(pol, loop.state), pol.window)
        loop = replace(loop, policy=pol.seeing(view))
        action = loop.next_action()
        if isinstance(action, Stop):
            n = hard_count(loop.policy, action.decision, loop.state)
            if n is not None:
                board.hard_done(n)
            out[qid] = _episode(loop, action, orders[qid], waves[qid])
        elif isinstance(action, Dispatch):
            loop = loop.dispatched(action.first_index, action.k)
            fifo.extend((qid, i) for i in range(action.first_index, action.first_index + action.k))
            waves[qid] += 1
        loops[qid] = loop

    for qid in ranked:  # submitted in rank order
        advance(qid)
    while fifo:
        qid, i = fifo.popleft()
        if qid in out:
            continue  # cut at its question's stop
        s = orders[qid][i]
        loops[qid] = loops[qid].scored(Observation(s.sample_id, s.answer, s.score, s.tokens))
        advance(qid)
    return out


def _episode(loop: QuestionLoop, stop: Stop, order: Sequence[PoolSample], waves: int) -> Episode:
    st = loop.state
    used = order[: st.n_scored]
    cut = order[st.n_scored : loop.next_index]
    chosen = stop.chosen
    by_id = {s.sample_id: s for s in used}
    return Episode(
        correct=chosen is not None and bool(by_id[chosen.sample_id].correct),
        tokens=sum(s.tokens for s in used),
        inflight_tokens=sum(s.tokens for s in cut),
        samples=len(used),
        n_star=None,
        reason=stop.reason,
        chosen_sample_id=None if chosen is None else chosen.sample_id,
        waves=waves,
    )
