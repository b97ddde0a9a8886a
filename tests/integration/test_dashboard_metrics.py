"""The dashboard's and the alert rules' metrics, scraped from a running local stack
(`optscale stack up --metrics-base`): a batch of questions (sim generator with a per-token
delay, so stops cancel samples in flight; half of it submitted with params recording a dev BoN
curve) plus one poison message for the controller and one for the verifier. Every metric the
dashboard or the rules name is served, each by the service that owns it with the value the
batch implies; and, when Debian's ``prometheus`` is installed, a real Prometheus scrapes the
stack and every dashboard query returns data."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from optscale.v1 import events_pb2
from services.common import kafka
from services.common.infra import free_port_block
from tests.infra.test_dashboard import dashboard_queries, metric_names, promql, rule_list

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("generator", "verifier", "predictor", "controller")
N_QUESTIONS = 8  # plus one cancelled in flight: "long"
CURVE_IDS = {f"d{i}" for i in range(N_QUESTIONS // 2, N_QUESTIONS)}  # submitted with --params
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
# params (as `optscale calibrate` writes them) whose dev BoN curve, 0.1 accuracy per k, reaches
# the policy's dev accuracy 0.45 at k_eq = 4.5
K_EQ = 4.5
CURVE_PARAMS = {
    "policy": "optscale0", "n_max": 8, "alpha": 0.9, "s_min": 0.85, "policy_params": {},
    "dev": {"accuracy": 0.45, "bon_curve": [
        {"k": k, "tokens_per_question": 100.0 * k, "accuracy": k / 10} for k in range(1, 9)
    ]},
    "tuned_on": {"pool": "dev", "pool_sha256": "0", "split": "dev", "question_ids": ["dev0"]},
}


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "optscale", *args], cwd=ROOT, text=True, capture_output=True,
        timeout=300, env=env,
    )


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of ``name``'s samples whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def wait_for(what: str, check: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    base = free_port_block(11)  # 4 gRPC, broker, redis, 4 metrics, prometheus
    d = tmp_path_factory.mktemp("stack")
    ports = {s: base + 6 + i for i, s in enumerate(SERVICES)}
    ports.update(broker=base + 4, redis=base + 5, prometheus=base + 10, controller_grpc=base + 3)
    env = {**os.environ, "OPTSCALE_GENERATOR_SIM_TOKEN_DELAY": "0.002"}
    up = _cli(
        "stack", "up", "--dir", str(d), "--broker-port", str(base + 4), "--redis-port",
        str(base + 5), "--grpc-base", str(base), "--metrics-base", str(base + 6), env=env,
    )
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield ports
    finally:
        _cli("stack", "down", "--dir", str(d))


@pytest.fixture(scope="module")
def batch(
    stack: dict[str, int], tmp_path_factory: pytest.TempPathFactory
) -> list[events_pb2.Result]:
    """Submit the batch and the two poison messages; the results, once all are published."""
    bootstrap = f"127.0.0.1:{stack['broker']}"
    questions = tmp_path_factory.mktemp("q") / "questions.jsonl"
    questions.write_text("".join(
        json.dumps({"id": f"d{i}", "question": f"what is {i} + 40?", "answer": str(i + 40)}) + "\n"
        for i in range(N_QUESTIONS)
    ))
    _cancel_one_in_flight(stack)
    flags = ("--bootstrap", bootstrap, "--redis-url", f"redis://127.0.0.1:{stack['redis']}/0",
             "--n-max", "8", "--s-min", "0.85", "--max-tokens", "256")
    half = N_QUESTIONS // 2  # the second half with params recording a dev BoN curve
    sub = _cli("submit", str(questions), "--limit", str(half), *flags)
    assert sub.returncode == 0, sub.stdout + sub.stderr
    params = tmp_path_factory.mktemp("p") / "params.json"
    params.write_text(json.dumps(CURVE_PARAMS))
    sub = _cli("submit", str(questions), "--offset", str(half), "--params", str(params), *flags)
    assert sub.returncode == 0, sub.stdout + sub.stderr
    results = asyncio.run(_poison_and_collect(bootstrap))
    (long,) = [r for r in results if r.question_id == "long"]
    assert long.status == events_pb2.RESULT_STATUS_CANCELLED and long.samples_cancelled > 0
    return results


def _cancel_one_in_flight(stack: dict[str, int]) -> None:
    """A best-of-64 question, cancelled through the Controller API while its samples decode."""
    import grpc

    from optscale.v1 import controller_pb2, controller_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{stack['controller_grpc']}") as ch:
        stub = controller_pb2_grpc.ControllerStub(ch)
        req = controller_pb2.SubmitRequest(
            questions=[controller_pb2.QuestionSpec(question_id="long", text="q?")]
        )
        req.policy.policy, req.policy.n_max = "bon", 64
        stub.Submit(req, timeout=30)
        wait_for("samples in flight", lambda: total(
            scrape(stack["generator"]), "optscale_generator_inflight_samples") > 0)
        assert stub.Cancel(controller_pb2.CancelRequest(question_id="long"), timeout=30).cancelled


async def _poison_and_collect(bootstrap: str) -> list[events_pb2.Result]:
    p = await kafka.producer(bootstrap)
    try:
        await p.send_and_wait(kafka.QUESTION_EVENTS, b"\xff not a question event", key=b"p0")
        await p.send_and_wait(kafka.CANDIDATES, b"\xff not a candidate", key=b"p1")
    finally:
        await p.stop()
    c = await kafka.consumer(bootstrap, kafka.RESULTS, "dashboard-test")
    got: dict[str, events_pb2.Result] = {}
    deadline = time.monotonic() + 180
    try:
        while len(got) < N_QUESTIONS + 1 and time.monotonic() < deadline:
            for msgs in (await c.getmany(timeout_ms=500)).values():
                for m in msgs:
                    r = events_pb2.Result.FromString(m.value)
                    got[r.question_id] = r
    finally:
        await c.stop()
    assert len(got) == N_QUESTIONS + 1, sorted(got)
    return list(got.values())


def test_each_service_serves_what_the_batch_implies(
    stack: dict[str, int], batch: list[events_pb2.Result]
) -> None:
    def scraped() -> dict[str, Samples]:
        return {s: scrape(stack[s]) for s in SERVICES}

    def settled() -> bool:  # both DLQ messages handled, both consumers' lag reported
        m = scraped()
        return (
            total(m["controller"], "optscale_dlq_messages_total", service="controller") >= 1
            and total(m["verifier"], "optscale_dlq_messages_total", service="verifier") >= 1
            and any(n == "optscale_kafka_consumer_lag" for n, _ in m["controller"])
            and any(n == "optscale_kafka_consumer_lag" for n, _ in m["verifier"])
        )

    wait_for("the DLQ messages and the lag gauges", settled)
    m = scraped()
    gen, ver, ctl = m["generator"], m["verifier"], m["controller"]
    assert total(gen, "optscale_generator_slots") == 256  # GeneratorConfig's max_inflight
    assert total(gen, "optscale_generator_tokens_total") >= sum(r.completion_tokens for r in batch)
    assert total(ver, "optscale_verifier_busy_seconds_total") > 0
    assert total(ver, "optscale_verifier_batch_size_count") >= 1
    assert total(ctl, "optscale_controller_results_total") == N_QUESTIONS + 1
    assert total(ctl, "optscale_controller_results_total", status="cancelled") == 1
    used = sum(r.completion_tokens for r in batch)
    assert total(ctl, "optscale_controller_tokens_used_total") == used
    bon = sum(r.completion_tokens / r.samples_used * r.n_max for r in batch if r.samples_used)
    assert total(ctl, "optscale_controller_tokens_bon_nmax_total") == pytest.approx(bon)
    curve = [r for r in batch if r.question_id in CURVE_IDS and r.samples_used]
    assert len(curve) == N_QUESTIONS // 2
    assert total(ctl, "optscale_controller_bon_curve_results_total") == len(curve)
    assert total(ctl, "optscale_controller_tokens_used_bon_curve_total") == sum(
        r.completion_tokens for r in curve
    )
    assert total(ctl, "optscale_controller_tokens_bon_curve_total") == pytest.approx(
        sum(r.completion_tokens / r.samples_used * K_EQ for r in curve)
    )
    with_n_star = sum(r.HasField("n_star") for r in batch)
    assert total(ctl, "optscale_controller_n_star_count") == with_n_star
    assert total(ctl, "optscale_controller_samples_used_sum") == sum(r.samples_used for r in batch)
    cancelled = sum(r.samples_cancelled > 0 for r in batch)
    assert cancelled >= 1  # "long" at least
    assert total(ctl, "optscale_controller_cancel_seconds_count") >= cancelled
    assert {dict(ls)["topic"] for n, ls in ctl if n == "optscale_kafka_consumer_lag"} == {
        kafka.QUESTION_EVENTS
    }
    assert {dict(ls)["topic"] for n, ls in ver if n == "optscale_kafka_consumer_lag"} == {
        kafka.CANDIDATES
    }
    # every name the dashboard or the rules use is served by the stack
    served = {n for samples in m.values() for n, _ in samples}
    named = metric_names(dashboard_queries() + [r["expr"] for r in rule_list()])
    assert named - served == set()


PROMETHEUS = shutil.which("prometheus")


@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not installed (Debian package)")
def test_every_dashboard_query_returns_data_from_a_real_prometheus(
    stack: dict[str, int], batch: list[events_pb2.Result], tmp_path: Path
) -> None:
    assert PROMETHEUS is not None
    targets = [f"127.0.0.1:{stack[s]}" for s in SERVICES]
    config = tmp_path / "prometheus.yml"
    config.write_text(json.dumps({  # JSON is YAML
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ROOT / "infra" / "prometheus" / "optscale-alerts.yaml")],
        "scrape_configs": [{"job_name": "optscale", "static_configs": [{"targets": targets}]}],
    }))
    api = f"http://127.0.0.1:{stack['prometheus']}/api/v1"
    with (tmp_path / "prometheus.log").open("wb") as log:
        proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{stack['prometheus']}"],
            stdout=log, stderr=log,
        )
    try:
        def query(expr: str) -> list[object]:
            url = f"{api}/query?" + urllib.parse.urlencode({"query": expr})
            with urllib.request.urlopen(url, timeout=10) as r:
                body = json.loads(r.read())
            assert body["status"] == "success", (expr, body)
            return list(body["data"]["result"])

        def scraped_thrice() -> bool:
            try:
                got = query("count_over_time(up[1m]) >= 3 and up == 1")
            except OSError:
                return False  # not listening yet
            return len(got) == len(SERVICES)

        wait_for("Prometheus to scrape all four services three times", scraped_thrice)
        empty = [e for e in dashboard_queries() if not query(promql(e))]
        assert empty == []
        rules = json.loads(urllib.request.urlopen(f"{api}/rules", timeout=10).read())
        groups = rules["data"]["groups"]
        assert sum(len(g["rules"]) for g in groups) == len(rule_list())
        assert all(r["health"] != "err" for g in groups for r in g["rules"]), groups
    finally:
        proc.terminate()
        proc.wait(timeout=30)
