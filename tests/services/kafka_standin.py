"""Stand-ins for an aiokafka consumer and producer in unit tests of the Kafka loops: the test
hands the consumer batches (``deliver``) and errors for its commits (``commit_errors``, e.g.
the ``CommitFailedError`` / ``IllegalStateError`` aiokafka raises during a rebalance); the
producer keeps what was sent."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]] | None = None


class StandInConsumer:
    def __init__(self, topic: str = "events") -> None:
        self.topic = topic
        self.batches: asyncio.Queue[dict[TopicPartition, list[Message]]] = asyncio.Queue()
        self.commit_errors: list[BaseException] = []
        self.commit_calls = 0
        self.committed: list[dict[TopicPartition, int]] = []
        self.offsets: dict[int, int] = {}

    def deliver(self, partition: int, items: list[tuple[bytes, bytes]]) -> None:
        """Queue one ``getmany`` batch of (key, value) on ``partition`` (offsets continue)."""
        first = self.offsets.get(partition, 0)
        msgs = [
            Message(self.topic, partition, first + i, key, value)
            for i, (key, value) in enumerate(items)
        ]
        self.offsets[partition] = first + len(items)
        self.batches.put_nowait({TopicPartition(self.topic, partition): msgs})

    async def getmany(self, timeout_ms: int = 0, max_records: int | None = None) -> Any:
        try:
            return await asyncio.wait_for(self.batches.get(), timeout_ms / 1000)
        except TimeoutError:
            return {}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commit_calls += 1
        if self.commit_errors:
            raise self.commit_errors.pop(0)
        self.committed.append(dict(offsets))


class StandInProducer:
    def __init__(self) -> None:
        self.sent: list[Message] = []

    async def send(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[None]:
        self.sent.append(Message(topic, 0, len(self.sent), key, value, headers))
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    def on(self, topic: str) -> list[Message]:
        return [m for m in self.sent if m.topic == topic]


async def until(cond: Callable[[], object], bound_s: float = 20.0) -> None:
    """Wait until ``cond()`` holds (``bound_s`` only bounds a broken run)."""
    async with asyncio.timeout(bound_s):
        while not cond():  # noqa: ASYNC110 - the state polled has no event to wait on
            await asyncio.sleep(0.002)
