"""Fuzzing the Controller API (Submit, Solve, GetResult, Cancel) on a running pipeline (real
broker and redis-server, sim generator, controller worker): every call ends OK or with a
client-error status, never INTERNAL or a hang, and every accepted Solve delivers its results,
each one DONE (an accepted question that ends FAILED counts as unanswered) — N_max up to 256,
so dispatches larger than the generators' 64 samples per call are among them."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from optscale.engines.generation.sim import Backend as Sim
from optscale.engines.scoring.confidence import Backend as Confidence
from optscale.v1 import common_pb2, controller_pb2, controller_pb2_grpc, events_pb2
from services.common.infra import Proc
from services.common.logging import configure
from services.common.server import Server
from services.controller.questions import SubmitDefaults
from services.controller.server import SERVICE, ControllerServicer
from services.local import LocalPipeline

pytestmark = pytest.mark.integration
CLIENT_ERRORS = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED}
DEFAULTS = SubmitDefaults(policy="optscale0", n_max=8, max_tokens=64)
ids = st.one_of(
    st.from_regex(r"[A-Za-z0-9._:-]{1,20}", fullmatch=True),  # the safe set (optscale.ids)
    st.text(max_size=20),
    st.just(""),
    st.just("q" * 300),
    st.text(alphabet="\u0000\u202e\U0001f600é漢/", max_size=10),
)
floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just(-0.0), st.floats(0, 1))
SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


class Running:
    def __init__(self, bootstrap: str, redis_url: str) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.pipeline = LocalPipeline(bootstrap, redis_url, Sim(seed=0), Confidence())
        port = self.run(self._start())
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = controller_pb2_grpc.ControllerStub(self.channel)

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(120)

    async def _start(self) -> int:
        p = await self.pipeline.__aenter__()
        assert p.store is not None
        self.server = Server([SERVICE])
        servicer = ControllerServicer(
            p.store, p.producer, configure("fuzz", "critical"), defaults=DEFAULTS, max_questions=5
        )
        controller_pb2_grpc.add_ControllerServicer_to_server(servicer, self.server.server)
        return await self.server.start("127.0.0.1", 0)

    async def _stop(self) -> None:
        await self.server.stop(0)
        await self.pipeline.__aexit__(None, None, None)

    def close(self) -> None:
        self.channel.close()
        self.run(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture(scope="module")
def srv(broker: Proc, redis_server: Proc) -> Iterator[Running]:
    r = Running(f"127.0.0.1:{broker.port}", f"redis://127.0.0.1:{redis_server.port}/0")
    yield r
    r.close()


def _code(fn: Any) -> grpc.StatusCode:
    try:
        fn()
        return grpc.StatusCode.OK
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[no-any-return]


_counter = iter(range(10**9))
ACCEPTED: list[int] = []  # sizes of accepted Solve calls (the test below checks some were)


@SETTINGS
@given(
    qids=st.lists(ids, max_size=7),
    text=st.one_of(st.text(max_size=40), st.just(""), st.just("x" * 40_000)),
    policy=st.sampled_from(["optscale0", "bon", "sc", "nope", ""]),
    # small, past the generators' max_k of 64 per call (split into several), and absurd
    n_max=st.one_of(st.integers(0, 12), st.integers(65, 256), st.integers(0, 2**32 - 1)),
    alpha=floats,
    s_min=floats,
    temperature=floats,
    max_tokens=st.one_of(st.integers(0, 128), st.integers(0, 2**32 - 1)),
)
@example(
    qids=["a", "b"],
    text="What is 1+1?",
    policy="optscale0",
    n_max=4,
    alpha=0.9,
    s_min=0.5,
    temperature=0.7,
    max_tokens=64,
)
@example(  # OptScale^0's first wave at N_max 200 is 67 samples: more than one Generate call
    qids=["wave"],
    text="What is 2+2?",
    policy="optscale0",
    n_max=200,
    alpha=0.9,
    s_min=0.99,
    temperature=0.7,
    max_tokens=64,
)
@example(
    qids=["bon100"],
    text="What is 3+3?",
    policy="bon",
    n_max=100,
    alpha=0.9,
    s_min=0.5,
    temperature=0.7,
    max_tokens=64,
)
def test_submit_and_solve(
    srv: Running,
    qids: list[str],
    text: str,
    policy: str,
    n_max: int,
    alpha: float,
    s_min: float,
    temperature: float,
    max_tokens: int,
) -> None:
    n = next(_counter)
    req = controller_pb2.SubmitRequest(
        questions=[
            controller_pb2.QuestionSpec(question_id=q and f"{n}-{q}", text=text) for q in qids
        ],
        sampling=common_pb2.SamplingParams(
            temperature=temperature, top_p=0.95, max_tokens=max_tokens
        ),
        policy=common_pb2.PolicyParams(policy=policy, n_max=n_max, alpha=alpha, s_min=s_min),
    )
    results: list[Any] = []
    code = _code(lambda: results.extend(srv.stub.Solve(req, timeout=60)))
    assert code == grpc.StatusCode.OK or code in CLIENT_ERRORS, code
    if code == grpc.StatusCode.OK:  # accepted: every question answered exactly once...
        got = sorted(r.question_id for r in results)
        assert got == sorted(q.question_id for q in req.questions)
        # ...and answered: Submit accepted the input, so a FAILED result (every sample
        # refused, say) is a failure of the pipeline, not an answer
        failed = [(r.question_id, r.status, r.stop_reason) for r in results]
        assert all(r.status == events_pb2.RESULT_STATUS_DONE for r in results), failed
        ACCEPTED.append(len(got))


@SETTINGS
@given(qid=ids)
def test_get_result_and_cancel(srv: Running, qid: str) -> None:
    calls = [
        lambda: srv.stub.GetResult(controller_pb2.GetResultRequest(question_id=qid), timeout=20),
        lambda: srv.stub.Cancel(controller_pb2.CancelRequest(question_id=qid), timeout=20),
    ]
    for call in calls:
        code = _code(call)
        assert code == grpc.StatusCode.OK or (code in CLIENT_ERRORS and not _safe(qid)), code
        if not _safe(qid):
            assert code == grpc.StatusCode.INVALID_ARGUMENT, code


def _safe(qid: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9._:-]{1,256}", qid))


def test_some_fuzzed_solves_were_accepted_and_answered() -> None:
    assert ACCEPTED, "no valid Solve call ran: the fuzz test proved nothing about the happy path"
