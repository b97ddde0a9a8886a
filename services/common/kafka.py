"""Kafka plumbing shared by the services: topic names, producer/consumer factories, topic setup.

Works against a real Kafka cluster and against the Tansu test broker. Nothing here relies on
idempotent or transactional producers (Tansu rejects them); exactly-once effects come from
idempotent Redis transitions, at-least-once delivery from committing offsets after the work.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from typing import Any

from optscale.errors import InvalidArgumentError
from services.common.metrics import COMMITS_FAILED, observe_lag

QUESTION_EVENTS = "optscale.question-events"
CANDIDATES = "optscale.candidates"
RESULTS = "optscale.results"
DLQ = "optscale.dlq"
TOPICS = (QUESTION_EVENTS, CANDIDATES, RESULTS, DLQ)
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def client_security(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """aiokafka security keyword arguments from ``OPTSCALE_KAFKA_*``, for every client:
    ``SECURITY_PROTOCOL`` (PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL), ``SSL_CAFILE``,
    ``SSL_CERTFILE`` / ``SSL_KEYFILE`` (client certificate), ``SASL_MECHANISM`` (PLAIN |
    SCRAM-SHA-256 | SCRAM-SHA-512), ``SASL_USERNAME``, ``SASL_PASSWORD`` or
    ``SASL_PASSWORD_FILE`` (a mounted Secret). Values are never logged."""
    env = os.environ if env is None else env

    def get(key: str) -> str:
        return env.get(f"OPTSCALE_KAFKA_{key}", "")

    protocol = (get("SECURITY_PROTOCOL") or "PLAINTEXT").upper()
    if protocol not in PROTOCOLS:
        raise InvalidArgumentError(
            "OPTSCALE_KAFKA_SECURITY_PROTOCOL", protocol, f"one of {PROTOCOLS}"
        )
    kw: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        from aiokafka.helpers import create_ssl_context

        kw["ssl_context"] = create_ssl_context(
            cafile=get("SSL_CAFILE") or None,
            certfile=get("SSL_CERTFILE") or None,
            keyfile=get("SSL_KEYFILE") or None,
        )
    if protocol.startswith("SASL"):
        mechanism = (get("SASL_MECHANISM") or "SCRAM-SHA-512").upper()
        if mechanism not in MECHANISMS:
            raise InvalidArgumentError(
                "OPTSCALE_KAFKA_SASL_MECHANISM", mechanism, f"one of {MECHANISMS}"
            )
        password = get("SASL_PASSWORD")
        if get("SASL_PASSWORD_FILE"):
            with open(get("SASL_PASSWORD_FILE"), encoding="utf-8") as fh:
                password = fh.read().strip()
        if not get("SASL_USERNAME") or not password:
            raise InvalidArgumentError(
                "OPTSCALE_KAFKA_SASL_USERNAME/PASSWORD", "<unset>", f"required with {protocol}"
            )
        kw.update(
            sasl_mechanism=mechanism,
            sasl_plain_username=get("SASL_USERNAME"),
            sasl_plain_password=password,
        )
    return kw


async def ensure_topics(
    bootstrap: str, partitions: int = 4, topics: tuple[str, ...] = TOPICS
) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_security())
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

    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=1, **client_security())
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
        **client_security(),
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


async def commit_or_redeliver(
    consumer: Any, records: dict[Any, list[Any]], log: Any = None
) -> bool:
    """:func:`commit_batch`, where a refused commit is not an error: during a rebalance aiokafka
    raises ``CommitFailedError`` / ``IllegalStateError`` / ``RebalanceInProgressError`` (and
    other ``KafkaError``s when the coordinator moves). The batch's work is done and every
    transition it made is idempotent, so an uncommitted batch is simply redelivered — to this
    consumer or to the partition's new owner — and applied again as a no-op. Returns whether
    the offsets were committed; anything but a ``KafkaError`` (a bug) still raises."""
    from aiokafka.errors import KafkaError

    observe_lag(consumer)
    try:
        await commit_batch(consumer, records)
        return True
    except KafkaError as exc:
        COMMITS_FAILED.inc()
        if log is not None:
            log.warning("commit refused; the batch will be redelivered", error=repr(exc)[:300])
        return False


async def stop_quietly(*clients: Any) -> None:
    for c in clients:
        if c is not None:
            try:
                await asyncio.wait_for(c.stop(), 10)
            except Exception:  # shutting down: nothing more to do
                pass
