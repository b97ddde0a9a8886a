"""The log-prob summary closes a step at each blank line and records how many tokens had been
decoded by then: the offsets a prefix scorer judges a sample at."""

from __future__ import annotations

from optscale.engines.generation.base import LogprobSummary


def test_step_ends_count_tokens_up_to_each_blank_line() -> None:
    s = LogprobSummary()
    pieces = ["Step", " one", ".\n\n", "Two", "\n", "\n", "Last", " bit"]
    for i, p in enumerate(pieces):
        s.add(-0.1 * (i + 1), p)
    mean, _, steps = s.finish()
    assert s.step_ends == [3, 6, 8]  # ".\n\n" is token 3; "\n" + "\n" closes at token 6
    assert len(steps) == 3 and mean is not None
    assert abs(steps[0] - (-0.2)) < 1e-12 and abs(steps[2] - (-0.75)) < 1e-12
    s.finish()  # idempotent: no empty step appended
    assert s.step_ends == [3, 6, 8]
