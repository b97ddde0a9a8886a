"""Auto-pipelining for the controller's Lua transitions.

The controller handles up to 48 questions of a batch concurrently; each transition is one
``EVALSHA``. Sent one by one, every call costs its own write, read and parse; here the calls
issued while the event loop is busy go out together as one non-transactional pipeline (one
write, one read), the way ioredis/Lettuce auto-pipeline. Semantics do not change: each call
is still its own atomic script, a question's calls are still issued one after the other (the
caller awaits each), and a call's result or error goes back to exactly that caller.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.exceptions import NoScriptError, ResponseError

MAX_BATCH = 256  # calls per pipeline round trip


class AutoPipeline:
    def __init__(self, redis: Any, max_batch: int = MAX_BATCH) -> None:
        self.r = redis
        self.max_batch = max_batch
        self._queue: list[tuple[Any, list[Any], list[Any], asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.round_trips = 0
        self.calls = 0

    async def run(self, script: Any, keys: list[Any], args: list[Any]) -> Any:
        """``script(keys=keys, args=args)``, sent with whatever else is queued right now."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((script, keys, args, fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await fut

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # let the other ready tasks of this tick queue their calls
        while self._queue:
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            try:
                results = await self._execute(batch)
            except BaseException as exc:  # connection lost, or we are being cancelled
                for *_, fut in batch:
                    if not fut.done():
                        fut.set_exception(
                            exc if isinstance(exc, Exception) else ConnectionError(repr(exc))
                        )
                if not isinstance(exc, Exception):
                    raise
                continue
            for (*_, fut), res in zip(batch, results, strict=True):
                if fut.done():  # the caller was cancelled; the call happened anyway
                    continue
                if isinstance(res, Exception):
                    fut.set_exception(res)
                else:
                    fut.set_result(res)

    async def _execute(self, batch: list[tuple[Any, list[Any], list[Any], Any]]) -> list[Any]:
        self.round_trips += 1
        self.calls += len(batch)
        results = await self._pipeline(batch)
        again = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if again:  # Redis restarted (scripts are not persisted): load them, run those again
            for s in {id(batch[i][0]): batch[i][0] for i in again}.values():
                s.sha = await self.r.script_load(s.script)
            redo = await self._pipeline([batch[i] for i in again])
            for i, r in zip(again, redo, strict=True):
                results[i] = r
        return results

    async def _pipeline(self, batch: list[tuple[Any, list[Any], list[Any], Any]]) -> list[Any]:
        """One write of every ``EVALSHA`` of the batch, then one reply each, on one pooled
        connection. Packed here rather than through redis-py's pipeline: the commands are
        all alike and redis-py's generic packing was the controller's largest cost. A batch
        is never retried on a connection error (a retried reservation could count twice):
        the error goes to the callers and the controller rebuilds from Redis."""
        pool = self.r.connection_pool
        conn = await pool.get_connection()
        try:
            await conn.send_packed_command(_pack(batch))
            out: list[Any] = []
            for _ in batch:
                try:
                    out.append(await conn.read_response())
                except ResponseError as exc:  # a script's own error: that caller's only
                    out.append(exc)
            return out
        except BaseException:
            await conn.disconnect()  # replies may be left unread: the connection is unusable
            raise
        finally:
            await pool.release(conn)


def _arg(x: Any) -> bytes:
    if isinstance(x, bytes):
        return x
    if isinstance(x, str):
        return x.encode()
    if isinstance(x, int) and not isinstance(x, bool):
        return b"%d" % x
    if isinstance(x, float):
        return repr(x).encode()
    raise TypeError(f"cannot send {type(x).__name__} to Redis: {x!r}")


def _pack(batch: list[tuple[Any, list[Any], list[Any], Any]]) -> bytes:
    """RESP arrays ``EVALSHA sha numkeys key... arg...``, one per call, concatenated."""
    parts: list[bytes] = []
    for script, keys, args, _ in batch:
        items = [b"EVALSHA", script.sha.encode(), b"%d" % len(keys)]
        items += [_arg(x) for x in keys]
        items += [_arg(x) for x in args]
        parts.append(b"*%d\r\n" % len(items))
        for it in items:
            parts.append(b"$%d\r\n%b\r\n" % (len(it), it))
    return b"".join(parts)
