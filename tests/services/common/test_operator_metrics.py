"""What a published result or DLQ message adds to the operator metrics (issue 19): results by
status and stop reason, tokens used against the BoN-at-N_max estimate, N*, samples used."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from optscale.v1 import events_pb2
from services.common.metrics import busy, observe_published


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _result(**fields: object) -> bytes:
    return events_pb2.Result(question_id="q", **fields).SerializeToString()  # type: ignore[arg-type]


def test_a_result_counts_tokens_used_and_the_bon_at_n_max_estimate() -> None:
    before = {
        "used": value("optscale_controller_tokens_used_total"),
        "bon": value("optscale_controller_tokens_bon_nmax_total"),
        "bound": value("optscale_controller_results_total", status="done", stop_reason="bound"),
        "n_star": value("optscale_controller_n_star_count"),
        "n_star_le_4": value("optscale_controller_n_star_bucket", le="4.0"),
        "used_le_3": value("optscale_controller_samples_used_bucket", le="3.0"),
    }
    # 3 scored samples of 120, 150 and 330 tokens: 600 used; BoN at N_max 16 = 16 x 200
    observe_published(
        "optscale.results",
        _result(
            samples_used=3,
            samples_cancelled=2,
            completion_tokens=600,
            n_max=16,
            n_star=4.0,
            stop_reason="bound",
            status=events_pb2.RESULT_STATUS_DONE,
        ),
    )
    assert value("optscale_controller_tokens_used_total") - before["used"] == 600
    assert value("optscale_controller_tokens_bon_nmax_total") - before["bon"] == 3200
    assert (
        value("optscale_controller_results_total", status="done", stop_reason="bound")
        - before["bound"]
        == 1
    )
    assert value("optscale_controller_n_star_count") - before["n_star"] == 1
    assert value("optscale_controller_n_star_bucket", le="4.0") - before["n_star_le_4"] == 1
    assert value("optscale_controller_samples_used_bucket", le="3.0") - before["used_le_3"] == 1


def test_a_result_without_samples_or_n_star_adds_no_estimate_and_no_n_star() -> None:
    bon = value("optscale_controller_tokens_bon_nmax_total")
    n_star = value("optscale_controller_n_star_count")
    failed = value("optscale_controller_results_total", status="failed", stop_reason="failed")
    observe_published(
        "optscale.results",
        _result(
            samples_used=0,
            samples_failed=4,
            n_max=8,
            stop_reason="failed",
            status=events_pb2.RESULT_STATUS_FAILED,
        ),
    )
    assert value("optscale_controller_tokens_bon_nmax_total") == bon
    assert value("optscale_controller_n_star_count") == n_star
    assert (
        value("optscale_controller_results_total", status="failed", stop_reason="failed")
        == failed + 1
    )


def test_dlq_messages_are_counted_per_service_and_other_topics_not_at_all() -> None:
    dlq = value("optscale_dlq_messages_total", service="controller")
    used = value("optscale_controller_tokens_used_total")
    observe_published("optscale.dlq", b"\xff not a proto")
    observe_published("optscale.question-events", _result(samples_used=1, completion_tokens=9))
    observe_published("optscale.results", b"\xff\xff\xff")  # undecodable: ignored, no raise
    assert value("optscale_dlq_messages_total", service="controller") == dlq + 1
    assert value("optscale_controller_tokens_used_total") == used


async def test_busy_adds_the_awaited_wall_time_and_passes_results_and_errors_through() -> None:
    before = value("optscale_verifier_busy_seconds_total")
    gate = asyncio.Event()

    async def scoring() -> str:
        await gate.wait()
        return "scored"

    task = asyncio.create_task(busy(scoring()))
    t0 = asyncio.get_running_loop().time()
    await asyncio.sleep(0.02)  # let measurable time pass while "scoring"
    gate.set()
    assert await task == "scored"
    waited = asyncio.get_running_loop().time() - t0
    assert 0 < value("optscale_verifier_busy_seconds_total") - before <= waited  # within it

    async def failing() -> None:
        raise RuntimeError("scorer down")

    before = value("optscale_verifier_busy_seconds_total")
    try:
        await busy(failing())
    except RuntimeError:
        pass
    else:
        raise AssertionError("busy swallowed the error")
    assert value("optscale_verifier_busy_seconds_total") >= before


def test_the_controller_creates_its_usual_series_at_zero_before_any_event() -> None:
    """Prometheus' increase() cannot count a series' first value, so a counter series born on a
    fresh controller's first event makes the batch-progress panel read far off: the controller
    creates its usual label sets at 0 when it starts (services/controller/__main__.py)."""
    from services.common.metrics import init_controller_series

    reason = "give_up"  # a label set no other test increments
    assert (
        REGISTRY.get_sample_value(
            "optscale_controller_results_total", {"status": "cancelled", "stop_reason": reason}
        )
        is None
    )
    init_controller_series()
    for labels in (
        {"status": "cancelled", "stop_reason": reason},
        {"status": "done", "stop_reason": "n_max"},
    ):
        assert REGISTRY.get_sample_value("optscale_controller_results_total", labels) is not None
    for kind in ("submitted", "scored", "sample_failed", "cancelled"):
        got = REGISTRY.get_sample_value(
            "optscale_controller_events_total", {"type": kind, "outcome": "applied"}
        )
        assert got is not None
