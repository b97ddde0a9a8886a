"""``optscale_kafka_consumer_lag`` on the real broker: set by every ``commit_or_redeliver`` to
the messages a consumer has not yet taken, per topic — whether or not they were prefetched."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from services.common import kafka
from services.common.infra import Proc
from services.local import FAST_GROUP

pytestmark = pytest.mark.integration


def _lag(topic: str, group: str) -> float | None:
    return REGISTRY.get_sample_value(
        "optscale_kafka_consumer_lag", {"topic": topic, "group": group}
    )


async def test_lag_is_the_messages_not_yet_taken_and_falls_to_zero(broker: Proc) -> None:
    boot, topic, group = f"127.0.0.1:{broker.port}", "lag-topic", "lag-group"
    await kafka.ensure_topics(boot, partitions=2, topics=(topic,))
    p = await kafka.producer(boot)
    c = None
    try:
        for i in range(10):
            await p.send(topic, b"m%d" % i, key=b"k%d" % i)
        await p.flush()
        c = await kafka.consumer(boot, topic, group, **FAST_GROUP)
        taken = 0
        async with asyncio.timeout(30):  # take 3 at a time until some are taken, not all
            while taken == 0:
                recs = await c.getmany(timeout_ms=200, max_records=3)
                taken += sum(len(m) for m in recs.values())
                await kafka.commit_or_redeliver(c, recs)
        # what the consumer fetched has its watermark: the lag counts every message not taken
        assert 0 < taken < 10
        assert _lag(topic, group) == 10 - taken
        async with asyncio.timeout(30):
            while taken < 10:
                recs = await c.getmany(timeout_ms=200)
                taken += sum(len(m) for m in recs.values())
                await kafka.commit_or_redeliver(c, recs)
        await kafka.commit_or_redeliver(c, {})
        assert _lag(topic, group) == 0
    finally:
        await kafka.stop_quietly(c, p)
