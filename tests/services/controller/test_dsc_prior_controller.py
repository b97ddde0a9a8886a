"""The controller runs ``dsc_prior`` (optscale.policies) with the prior of the submission."""

from __future__ import annotations

from typing import Any

from tests.services.controller import harness


async def test_the_controller_runs_dsc_prior_with_the_submitted_prior() -> None:
    from optscale.memory import InMemoryStateStore

    w, gen, pub = harness.worker(InMemoryStateStore())
    await w.assign({0})
    ev = harness.submitted("e", n_max=8, policy="dsc_prior", options='{"easy_mu": 0.8}')
    ev.submitted.policy.prior.mu_bar, ev.submitted.policy.prior.sigma_bar = 0.9, 0.05
    await w.handle(ev, 0)
    await harness.settle()
    ((req, _),) = gen.requests
    assert req.k == 1
    await w.handle(harness.scored("e", 0, 0.7, answer="12"), 0)
    (r,) = harness.results(pub)
    result: Any = r
    assert (result.stop_reason, result.answer, result.samples_used) == ("easy", "12", 1)
