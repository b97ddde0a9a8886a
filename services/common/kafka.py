"""Kafka plumbing shared by the services: topic names, producer/consumer factories, topic setup.

Works against a real Kafka cluster and against the Tansu test broker. Nothing here relies on
idempotent or transactional producers (Tansu rejects them); exactly-once effects come from
idempotent Redis transitions, at-least-once delivery from committing offsets after the work.
"""

from __future__ import annotations

import asyncio
from typing import Any

QUESTION_EVENTS = "optscale.question-events"
CANDIDATES = "optscale.candidates"
RESULTS = "optscale.results"
DLQ = "optscale.dlq"
TOPICS = (QUESTION_EVENTS, CANDIDATES, RESULTS, DLQ)


async def ensure_topics(
    bootstrap: str, partitions: int = 4, topics: tuple[str, ...] = TOPICS
) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [NewTopic(t, partitions, 1) for t in topics if t not in existing]
        if new:
            await admin.create_topics(new)
    finally:
        await admin.close()


async def producer(bootstrap: str) -> Any:
    from aiokafka import AIOKafkaProducer

    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=1)
    await p.start()
    return p


async def consumer(
    bootstrap: str,
    topic: str,
    group: str,
    *,
    listener: Any = None,
    session_timeout_ms: int = 10_000,
    heartbeat_interval_ms: int = 1_000,
) -> Any:
    from aiokafka import AIOKafkaConsumer

    c = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=heartbeat_interval_ms,
        max_poll_records=500,
    )
    c.subscribe([topic], listener=listener)
    await c.start()
    return c


async def commit_batch(consumer: Any, records: dict[Any, list[Any]]) -> None:
    """Commit the next offset of every partition in a ``getmany`` batch."""
    from aiokafka import TopicPartition

    offsets = {
        TopicPartition(tp.topic, tp.partition): msgs[-1].offset + 1
        for tp, msgs in records.items()
        if msgs
    }
    if offsets:
        await consumer.commit(offsets)


async def stop_quietly(*clients: Any) -> None:
    for c in clients:
        if c is not None:
            try:
                await asyncio.wait_for(c.stop(), 10)
            except Exception:  # shutting down: nothing more to do
                pass
