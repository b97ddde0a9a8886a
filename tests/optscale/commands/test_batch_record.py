"""The batch record ``optscale submit`` writes (``ob:{<batch>}:meta`` / ``:questions``) on a
real redis-server, plain and in cluster mode (the script's keys share one hash slot): a
question id counts once per batch, resubmitting adds only new questions, the record expires
like the controllers' results, and an unknown batch or an unreachable Redis is a clear error.
Also the submit side: every event carries the batch id; a given id is checked."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from optscale.commands import submit
from optscale.commands._batch_record import (
    load_record,
    meta_key,
    questions_key,
    record_batch,
    redis_at,
    redis_settings,
    shown_url,
)
from optscale.errors import BackendUnavailableError, InvalidArgumentError
from optscale.types import Question
from services.common.infra import free_port, start_redis_cluster


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A one-node Redis Cluster (refuses a script whose keys are in different slots)."""
    p = start_redis_cluster(tmp_path_factory.mktemp("redis-cluster"))
    yield f"redis://127.0.0.1:{p.port}/0"
    p.stop()


@pytest.mark.integration
async def test_a_question_counts_once_and_resubmitting_adds_new_ones(redis_url: str) -> None:
    async with redis_at(redis_url) as r:
        assert await record_batch(r, "run-1", ["a", "b", "c"], 1000.0, 60_000) == (3, 3)
        assert await record_batch(r, "run-1", ["c", "d"], 2000.0, 60_000) == (1, 4)
        assert await record_batch(r, "run-2", ["a"], 3000.0, 0) == (1, 1)  # its own batch
        assert 0 < await r.pttl(meta_key("run-1")) <= 60_000
        assert 0 < await r.pttl(questions_key("run-1")) <= 60_000
        assert await r.pttl(meta_key("run-2")) == -1  # TTL 0: kept
    rec = await load_record(redis_url, "run-1")
    assert (rec.total, rec.submitted_at, rec.updated_at) == (4, 1000.0, 2000.0)


@pytest.mark.integration
async def test_many_questions_go_in_chunks(redis_url: str) -> None:
    ids = [f"q{i}" for i in range(2500)]
    async with redis_at(redis_url) as r:
        assert await record_batch(r, "big", ids, 1.0, 0) == (2500, 2500)


@pytest.mark.integration
async def test_an_unknown_batch_is_an_invalid_argument(redis_url: str) -> None:
    with pytest.raises(InvalidArgumentError, match="no such batch"):
        await load_record(redis_url, "never-submitted")
    with pytest.raises(InvalidArgumentError, match="batch"):
        await load_record(redis_url, "a{b}")


async def test_an_unreachable_redis_is_a_clear_error() -> None:
    url = f"redis://:secret@127.0.0.1:{free_port()}/0"
    with pytest.raises(BackendUnavailableError, match="OPTSCALE_REDIS_URL") as err:
        await load_record(url, "run-1")
    assert "secret" not in str(err.value)
    assert shown_url(url) == f"redis://:***@127.0.0.1:{url.rsplit(':', 1)[1]}"


def test_redis_settings_come_from_the_flag_or_the_controllers_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPTSCALE_REDIS_URL", raising=False)
    monkeypatch.delenv("OPTSCALE_CONTROLLER_RESULT_TTL_SECONDS", raising=False)
    assert redis_settings(None) == ("redis://127.0.0.1:16379/0", 7 * 24 * 3600 * 1000)
    monkeypatch.setenv("OPTSCALE_REDIS_URL", "redis://cache:6379/1")
    monkeypatch.setenv("OPTSCALE_CONTROLLER_RESULT_TTL_SECONDS", "60")
    assert redis_settings(None) == ("redis://cache:6379/1", 60_000)
    assert redis_settings("redis://x:1/0")[0] == "redis://x:1/0"
    monkeypatch.setenv("OPTSCALE_CONTROLLER_RESULT_TTL_SECONDS", "soon")
    with pytest.raises(InvalidArgumentError, match="RESULT_TTL"):
        redis_settings(None)


def _args(*argv: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    submit.add_arguments(ap)
    return ap.parse_args(["q.jsonl", *argv])


def test_every_submitted_event_carries_the_batch_id() -> None:
    args = _args("--batch-id", "run-7")
    events = submit.build_events(args, [Question("t1", "2+2?", "4"), Question("t2", "3+3?", "6")])
    assert [e.submitted.batch_id for e in events] == ["run-7", "run-7"]
    assert not events[0].submitted.HasField("batch")  # no budget


def test_a_given_batch_id_is_checked_and_a_missing_one_is_generated() -> None:
    assert submit.batch_id(_args("--batch-id", "run-7")) == "run-7"
    with pytest.raises(InvalidArgumentError, match="batch-id"):
        submit.batch_id(_args("--batch-id", "run/7"))
    a, b = submit.batch_id(_args()), submit.batch_id(_args())
    assert a != b and a.startswith("b") and len(a) == len("b20261129-200102-3f9a1c")
