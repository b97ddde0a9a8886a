"""The batch record ``optscale submit`` writes and ``optscale results`` / ``optscale status``
read, in the controllers' Redis (``OPTSCALE_REDIS_URL``, else the local stack's
``redis://127.0.0.1:16379/0``; ``--redis-url`` wins):

* ``ob:{<batch>}:meta`` — hash: ``total`` (distinct questions submitted into the batch),
  ``submitted_at`` (first submission) and ``updated_at`` (last), seconds since the epoch;
* ``ob:{<batch>}:questions`` — set of the batch's question ids (so submitting a question into
  the same batch again does not count it twice).

The hash tag keeps both keys in the slot of the controllers' ``ob:{<batch>}:spent``. Both
expire like the controllers' results (``OPTSCALE_CONTROLLER_RESULT_TTL_SECONDS``, default 7
days after the last submission; 0 keeps them)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from optscale.batch_progress import BatchRecord
from optscale.errors import BackendUnavailableError, InvalidArgumentError

LOCAL_REDIS_URL = "redis://127.0.0.1:16379/0"  # `optscale stack up`'s default
LOCAL_BOOTSTRAP = "127.0.0.1:19092"
CHUNK = 1000  # question ids per script call

# KEYS: meta, questions; ARGV: now, ttl ms, question ids... -> {added, total}
RECORD = """
local added = 0
for i = 3, #ARGV do added = added + redis.call('SADD', KEYS[2], ARGV[i]) end
local total = redis.call('SCARD', KEYS[2])
redis.call('HSET', KEYS[1], 'total', total, 'updated_at', ARGV[1])
redis.call('HSETNX', KEYS[1], 'submitted_at', ARGV[1])
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return {added, total}
"""


def meta_key(batch_id: str) -> str:
    return f"ob:{{{batch_id}}}:meta"


def questions_key(batch_id: str) -> str:
    return f"ob:{{{batch_id}}}:questions"


def kafka_bootstrap(flag: str | None) -> str:
    """``--bootstrap``, else ``OPTSCALE_KAFKA_BOOTSTRAP``, else the local stack's broker."""
    return flag or os.environ.get("OPTSCALE_KAFKA_BOOTSTRAP") or LOCAL_BOOTSTRAP


def redis_settings(flag: str | None) -> tuple[str, int]:
    """(Redis URL, record TTL in ms) as the controllers have them (see the module doc)."""
    from services.common.config import from_env
    from services.controller.config import ControllerConfig

    url = flag or os.environ.get("OPTSCALE_REDIS_URL") or LOCAL_REDIS_URL
    cfg = from_env(ControllerConfig, "controller", redis_url=url)
    if cfg.result_ttl_seconds < 0:
        raise InvalidArgumentError(
            "OPTSCALE_CONTROLLER_RESULT_TTL_SECONDS", cfg.result_ttl_seconds, "must be >= 0"
        )
    return cfg.redis_url, int(cfg.result_ttl_seconds * 1000)


def shown_url(url: str) -> str:
    """``url`` without its password (for messages)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


@asynccontextmanager
async def redis_at(url: str) -> AsyncIterator[Any]:
    """A client for ``url``; a Redis that cannot be reached or refuses is a clear error."""
    from redis.exceptions import RedisError

    from services.common.security import redis_client

    r = redis_client(url, max_connections=2)
    try:
        yield r
    except (OSError, RedisError) as exc:
        raise BackendUnavailableError(
            f"the batch record's Redis at {shown_url(url)} failed ({exc}); set --redis-url "
            "or OPTSCALE_REDIS_URL to the controllers' Redis"
        ) from exc
    finally:
        await r.aclose()


async def record_batch(
    r: Any, batch_id: str, question_ids: Sequence[str], now_s: float, ttl_ms: int
) -> tuple[int, int]:
    """Add the question ids to the batch's record: (newly added, the batch's total now)."""
    added, total = 0, 0
    keys = [meta_key(batch_id), questions_key(batch_id)]
    for i in range(0, max(len(question_ids), 1), CHUNK):
        chunk = list(question_ids[i : i + CHUNK])
        a, total = await r.eval(RECORD, 2, *keys, repr(now_s), ttl_ms, *chunk)
        added += int(a)
    return added, int(total)


async def read_batch(r: Any, batch_id: str) -> BatchRecord | None:
    return BatchRecord.from_hash(batch_id, await r.hgetall(meta_key(batch_id)))


async def load_record(url: str, batch_id: str) -> BatchRecord:
    """The batch's record, or :class:`InvalidArgumentError` for a batch Redis does not know."""
    from optscale.ids import check_question_id

    check_question_id(batch_id, "batch")
    async with redis_at(url) as r:
        rec = await read_batch(r, batch_id)
    if rec is None:
        raise InvalidArgumentError(
            "batch",
            batch_id,
            f"no such batch in {shown_url(url)} (never submitted with "
            "`optscale submit`, or its record expired)",
        )
    return rec
