"""Replay episodes under the two finish-order models: short samples first when decoding in
parallel, tokens of samples cut at the stop counted, waves counted."""

from __future__ import annotations

import pytest

from optscale.episode import run_episode
from optscale.errors import InvalidArgumentError
from optscale.loop import Dispatch
from optscale.policies import make_policy
from optscale.pools import PoolSample


def _s(i: int, tokens: int, score: float = 0.5, correct: bool = False) -> PoolSample:
    return PoolSample(f"q/{i}", "1" if correct else "0", correct, score, tokens)


def test_in_parallel_decoding_the_short_samples_arrive_first_and_decide() -> None:
    # BoN-like oracle search: stops at the first arriving sample with the right answer
    order = [_s(0, 500), _s(1, 900), _s(2, 100, correct=True), _s(3, 800)]
    pol = make_policy("oracle", n_max=4, target_answer="1")
    # one at a time: three samples before the right one
    seq = run_episode(pol, order, finish="dispatch")
    assert (seq.samples, seq.tokens, seq.cut_tokens) == (3, 1500, 0)
    # the oracle dispatches one at a time, so arrival order is dispatch order here too
    par = run_episode(pol, order, finish="length")
    assert par.samples == 3 and par.cut_tokens == 0


def test_a_stop_cuts_the_samples_in_flight_at_what_they_decoded() -> None:
    # sc with N_max 4 dispatches all four at t=0; esc window 2 stops when two agree
    order = [_s(0, 300, 0.9, True), _s(1, 100, 0.8, True), _s(2, 1000), _s(3, 700)]
    pol = make_policy("esc", n_max=4, window=2)
    par = run_episode(pol, order, finish="length")
    # windows of 2: dispatch 2 (t=0), both correct, 100 then 300 -> stop at t=300
    assert (par.samples, par.tokens, par.cut_tokens, par.waves) == (2, 400, 0, 1)
    pol = make_policy("sc", n_max=4)
    full = run_episode(pol, order, finish="length")
    assert full.samples == 4 and full.cut_tokens == 0 and full.served_tokens == 2100


def test_cut_tokens_follow_the_finish_times() -> None:
    # optscale0, N_max 6: initial batch of 2 at t=0; scores far above s_min stop it at once
    order = [_s(0, 400, 0.99, True), _s(1, 250, 0.98, True)] + [_s(i, 900) for i in (2, 3, 4, 5)]
    pol = make_policy("optscale0", n_max=6, alpha=0.5, s_min=0.5)
    ep = run_episode(pol, order, finish="length")
    assert ep.samples == 2 and ep.waves == 1 and ep.reason == "bound"
    assert ep.tokens == 650 and ep.cut_tokens == 0
    # asc with batch 3: samples 0..2 (400, 250, 900 tokens) start at t=0; one vote is not
    # enough at threshold 0.8 (P = 0.75), two agreeing votes are (P = 0.875)
    pol = make_policy("asc", n_max=6, threshold=0.8, batch=3)
    trace: list[Dispatch] = []
    ep = run_episode(pol, order, finish="length", trace=trace)
    # sample 1 arrives at t=250 and asc keeps "batch" samples beyond the scored ones, so
    # sample 3 (900) starts then; sample 0 arrives at t=400 and agrees: stop, with sample 2
    # cut after 400 tokens and sample 3 after 150
    assert [(d.first_index, d.k) for d in trace] == [(0, 3), (3, 1)] and ep.waves == 2
    assert ep.samples == 2 and ep.cut_tokens == 400 + 150
    assert ep.inflight_tokens == 1800 and ep.served_tokens == 650 + 550
    # at threshold 0.6 one vote stops it at t=250: samples 0 and 2 are cut at 250 each
    ep = run_episode(make_policy("asc", n_max=6, threshold=0.6, batch=3), order, finish="length")
    assert (ep.samples, ep.tokens, ep.cut_tokens) == (1, 250, 500)


def test_an_unknown_finish_model_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="finish"):
        run_episode(make_policy("bon", n_max=1), [_s(0, 1)], finish="random")  # type: ignore[arg-type]
