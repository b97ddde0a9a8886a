"""DSC over a batch: the paper's sequential algorithm (``dsc_batch_paper``: the binary search
finds the easy/hard boundary of the ranking, easy questions answer with one sample, hard ones
grow in windows until a window agrees; probes are paid for) and the controller's parallel
adaptation (``dsc_batch``, replay's ``dsc`` row: the same loops and board as the controller,
samples finishing first in, first out across the batch)."""

from __future__ import annotations

from optscale.dsc import dsc_batch, dsc_batch_paper
from optscale.pools import Pool, PoolQuestion, PoolSample
from optscale.replay import ReplayConfig, replay


def _q(qid: str, answers: str, score: float) -> PoolQuestion:
    samples = [
        PoolSample(f"{qid}/{i}", a, a == "1", score, 10 * (i + 1)) for i, a in enumerate(answers)
    ]
    return PoolQuestion(qid, "1", samples)


def _batch() -> list[PoolQuestion]:
    # ease by the first sample's score; e0..e2 agree in any window, h0/h1 disagree early
    return [
        _q("e0", "11111111", 0.95),
        _q("e1", "11111111", 0.9),
        _q("e2", "11111111", 0.85),
        _q("h0", "12311111", 0.5),  # the window 5..8 agrees
        _q("h1", "21212121", 0.4),  # never agrees: N_max
    ]


def test_the_partition_and_the_adaptive_stop() -> None:
    qs = _batch()
    orders = {q.question_id: q.samples for q in qs}
    got = dsc_batch_paper(qs, orders, n_max=8, window=4)
    # binary search over [e0 e1 e2 h0 h1]: probes e2 (easy), h1 (hard), h0 (hard): boundary 3
    assert {q: got[q].reason.split(" (")[0] for q in got} == {
        "e0": "easy",
        "e1": "easy",
        "e2": "easy",
        "h0": "adaptive stop",
        "h1": "n_max",
    }
    assert got["e0"].samples == 1 and got["e0"].tokens == 10  # unprobed easy: one sample
    assert got["e2"].samples == 4 and "probed" in got["e2"].reason  # its probe is paid for
    assert got["h0"].samples == 8 and got["h0"].correct  # windows of 4: 4, then 8 (agrees)
    assert got["h1"].samples == 8 and got["h1"].tokens == sum(10 * (i + 1) for i in range(8))


def test_a_given_difficulty_replaces_the_pre_sample() -> None:
    qs = _batch()
    orders = {q.question_id: q.samples for q in qs}
    # claim h1 is the easiest: probes e1 (easy), h0 (hard), e2 (easy): h1 is never probed
    ease = {"h1": 1.0, "e0": 0.9, "e1": 0.8, "e2": 0.7, "h0": 0.1}
    got = dsc_batch_paper(qs, orders, n_max=8, window=4, difficulty=ease)
    assert got["h1"].reason.startswith("easy") and got["h1"].samples == 1  # trusted the ranking
    assert not got["h1"].correct  # its one sample is wrong: the ranking's price


def test_the_parallel_schedule_probes_the_midpoint_while_the_others_trickle() -> None:
    qs = _batch()
    orders = {q.question_id: q.samples for q in qs}
    got = dsc_batch(qs, orders, n_max=8, window=4)
    # ranked by the pre-sample (sample 0): e0 e1 e2 h0 h1; e2 (the midpoint) probes 4 at once
    # and agrees while e0, e1 take one sample at a time: they stop as easy with 2; then h1
    # (midpoint of 3..4) disagrees, h0 (midpoint of 3..3) disagrees: both hard, pre-allocated 4
    summary = {q: (e.reason, e.samples) for q, e in got.items()}
    assert summary == {
        "e0": ("easy", 2),
        "e1": ("easy", 2),
        "e2": ("easy", 4),
        "h0": ("agreed", 8),
        "h1": ("n_max", 8),
    }
    assert got["e0"].chosen_sample_id == "e0/0" and got["e0"].tokens == 10 + 20
    assert got["h0"].correct and not got["h1"].correct


def test_replay_runs_dsc_over_the_whole_pool() -> None:
    pool = Pool("b", _batch())
    res = replay(pool, ReplayConfig(policies=("bon", "dsc"), n_max=(8,), orders=3))
    cell = res.cell("dsc", 8)
    assert (
        cell.n_episodes == 3 * 5
        and cell.tokens_per_question < res.cell("bon", 8).tokens_per_question
    )
