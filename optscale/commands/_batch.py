"""Kafka reading shared by ``optscale results`` and ``optscale status``: submissions on
optscale.question-events and results on optscale.results, tallied into a
:class:`optscale.batch_progress.BatchProgress`. No consumer group (nothing is committed): each
call reads the topics from their beginning. Counting one batch (a progress with a
``batch_id``), only optscale.results is read: the total is the batch's record."""

from __future__ import annotations

import time
from typing import Any

from optscale.batch_progress import AnsweredQuestion, BatchProgress
from optscale.errors import OptScaleError
from optscale.v1 import events_pb2

_STATUS = {
    events_pb2.RESULT_STATUS_DONE: "done",
    events_pb2.RESULT_STATUS_CANCELLED: "cancelled",
    events_pb2.RESULT_STATUS_FAILED: "failed",
}


def answered(r: events_pb2.Result) -> AnsweredQuestion:
    return AnsweredQuestion(
        status=_STATUS.get(r.status, "unknown"),
        stop_reason=r.stop_reason,
        completion_tokens=int(r.completion_tokens),
        samples_used=int(r.samples_used),
        n_max=int(r.n_max),
        correct=r.correct if r.HasField("correct") else None,
        batch_id=r.batch_id,
    )


def tally(progress: BatchProgress, topic: str, value: bytes | None) -> events_pb2.Result | None:
    """Add one message of either topic; returns a result seen for the first time (of the
    progress's batch, when it counts one). Messages that do not decode are skipped (they
    went, or will go, to the DLQ)."""
    from google.protobuf.message import DecodeError

    from services.common import kafka

    try:
        if topic == kafka.QUESTION_EVENTS:
            ev = events_pb2.QuestionEvent.FromString(value or b"")
            if ev.WhichOneof("event") == "submitted" and ev.question_id:
                progress.submit(ev.question_id)
        elif topic == kafka.RESULTS:
            r = events_pb2.Result.FromString(value or b"")
            if r.question_id and progress.answer(r.question_id, answered(r)):
                return r
    except DecodeError:
        pass
    return None


class BatchReader:
    """A group-less consumer on every partition of optscale.question-events and
    optscale.results (only the latter for one batch), from the beginning, tallying into
    ``progress``. ``caught_up`` once it has read the topics up to their end as of
    :meth:`start`."""

    def __init__(self, bootstrap: str, progress: BatchProgress | None = None) -> None:
        self.bootstrap = bootstrap
        self.progress = BatchProgress() if progress is None else progress
        self.caught_up = False
        self._c: Any = None
        self._end: dict[Any, int] = {}

    async def start(self) -> BatchReader:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        from services.common import kafka

        c = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
            auto_offset_reset="earliest", **kafka.client_security(),
        )
        await c.start()
        self._c = c
        try:
            await c.topics()  # fetch metadata
            topics: tuple[str, ...] = (kafka.QUESTION_EVENTS, kafka.RESULTS)
            if self.progress.batch_id is not None:
                topics = (kafka.RESULTS,)
            tps = [
                TopicPartition(t, p)
                for t in topics
                for p in sorted(c.partitions_for_topic(t) or ())
            ]
            if tps:
                c.assign(tps)
                await c.seek_to_beginning(*tps)
                self._end = dict(await c.end_offsets(tps))
        except BaseException:
            await self.stop()
            raise
        return self

    async def poll(self, timeout_ms: int = 200) -> list[events_pb2.Result]:
        """Read what is there; the results seen for the first time."""
        new = []
        for tp, msgs in (await self._c.getmany(timeout_ms=timeout_ms)).items():
            for m in msgs:
                r = tally(self.progress, tp.topic, m.value)
                if r is not None:
                    new.append(r)
        if not self.caught_up:
            for tp, end in list(self._end.items()):
                if await self._c.position(tp) >= end:
                    del self._end[tp]
            self.caught_up = not self._end
        return new

    async def results_end(self) -> dict[Any, int]:
        """The current end offset of every optscale.results partition."""
        from services.common import kafka

        tps = [tp for tp in self._c.assignment() if tp.topic == kafka.RESULTS]
        return dict(await self._c.end_offsets(tps)) if tps else {}

    async def stop(self) -> None:
        if self._c is not None:
            await self._c.stop()
            self._c = None


async def read_progress(
    bootstrap: str, timeout_s: float = 60.0, progress: BatchProgress | None = None
) -> BatchProgress:
    """Submissions and results as of now (into ``progress``, a fresh one by default): the
    topics read to their current end."""
    reader = await BatchReader(bootstrap, progress).start()
    try:
        deadline = time.monotonic() + timeout_s
        while not reader.caught_up:
            if time.monotonic() > deadline:
                raise OptScaleError(f"could not read {bootstrap} to its end in {timeout_s:.0f} s")
            await reader.poll()
    finally:
        await reader.stop()
    return reader.progress
