"""Any OpenAI-compatible server (``vllm serve``, SGLang, llama.cpp server, a hosted API).

One streaming ``POST /v1/chat/completions`` with ``n = k`` per request: choices arrive
interleaved by ``index``; each is emitted as soon as its ``finish_reason`` arrives. Token
log-probs are requested (``logprobs: true``), which also gives the exact completion token
count per choice (one log-prob entry per generated token). Cancel = close the stream: vLLM
aborts every request of a connection that drops. Self-certainty needs the full distribution,
which the API does not return, so it is left empty; the ``confidence`` verifier falls back to
the mean log-prob.

One ``seed`` goes with the call: the server derives the ``n`` choices from it, so sample i
does not get ``seed + i`` as with the in-process backends.

All I/O goes through one ``httpx.AsyncClient``; tests pass their own ``transport``. Against a
real ``vllm serve`` (vLLM's CPU build, ``tests/vllm_real/test_openai_serve.py``): the summed
per-choice token counts equal the server's ``vllm:generation_tokens_total`` (the end-of-turn
token is in the log-probs and counted), and after a cancel the server's
``vllm:num_requests_running`` drops to 0 with the cut choices never finishing.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from optscale.engines.generation.base import LogprobSummary, sample_id, validate_request
from optscale.errors import BackendUnavailableError, InvalidArgumentError
from optscale.grading import extract_answer
from optscale.ports import GenerateRequest
from optscale.types import GeneratedSample


@dataclass(slots=True)
class _Choice:
    text: list[str] = field(default_factory=list)
    tokens: int = 0
    summary: LogprobSummary = field(default_factory=LogprobSummary)
    done: bool = False


class Backend:
    name = "openai"

    def __init__(
        self,
        model: str | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        max_k: int = 64,
        max_tokens: int = 4096,
        timeout: float = 600.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        base_url = base_url or os.environ.get("OPENAI_BASE_URL", "")
        if not base_url:
            raise InvalidArgumentError("openai_base_url", base_url, "set the server's /v1 URL")
        if not model:
            raise InvalidArgumentError("model", model, "name the served model")
        self.model_name = model
        self.max_k = max_k
        self.max_tokens = max_tokens
        key = api_key or os.environ.get("OPENAI_API_KEY", "")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=10.0),
            transport=transport,
        )
        self.requests_closed_early = 0  # streams closed before every choice finished

    def body(self, req: GenerateRequest) -> dict[str, Any]:
        p = req.params
        body: dict[str, Any] = {
            "model": self.model_name,
            "messages": [{"role": "user", "content": req.prompt}],
            "n": req.k,
            "temperature": p.temperature,
            "top_p": p.top_p,
            "max_tokens": p.max_tokens,
            "logprobs": True,
            "stream": True,
        }
        if p.seed is not None:
            body["seed"] = p.seed
        return body

    async def generate(self, request: GenerateRequest) -> AsyncIterator[GeneratedSample]:
        validate_request(request, max_k=self.max_k, max_tokens=self.max_tokens)
        t0 = time.perf_counter()
        choices = [_Choice() for _ in range(request.k)]
        finished = 0
        try:
            async with self._client.stream(
                "POST", "chat/completions", json=self.body(request)
            ) as resp:
                if resp.status_code != 200:
                    detail = (await resp.aread()).decode(errors="replace")[:500]
                    raise _http_error(resp.status_code, detail)
                async for data in _sse_data(resp):
                    if data == "[DONE]":
                        break
                    for index, reason in _apply_chunk(choices, data):
                        finished += 1
                        yield _sample(request, index, choices[index], reason, t0)
                # closing the stream here (or on cancel) is the abort
        except httpx.TransportError as exc:
            raise BackendUnavailableError(f"{self._client.base_url}: {exc!r}") from exc
        finally:
            if finished < request.k:
                self.requests_closed_early += 1
        if finished < request.k:
            raise BackendUnavailableError(
                f"stream ended with {finished} of {request.k} choices finished"
            )

    async def close_async(self) -> None:
        await self._client.aclose()

    def close(self) -> None:
        """Connections are released with the process; ``close_async`` for a clean exit."""


def _http_error(status: int, detail: str) -> Exception:
    if status in (400, 404, 413, 422):
        return InvalidArgumentError("request", status, f"rejected by the server: {detail}")
    return BackendUnavailableError(f"server answered {status}: {detail}")


async def _sse_data(resp: httpx.Response) -> AsyncIterator[str]:
    """The ``data:`` payloads of a server-sent event stream."""
    async for line in resp.aiter_lines():
        if line.startswith("data:"):
            yield line[5:].strip()


def _apply_chunk(choices: list[_Choice], data: str) -> list[tuple[int, str]]:
    """Fold one chunk into the per-choice state; return the choices it finished."""
    try:
        chunk = json.loads(data)
    except json.JSONDecodeError as exc:
        raise BackendUnavailableError(f"undecodable stream chunk: {data[:200]!r}") from exc
    if "error" in chunk:
        raise BackendUnavailableError(f"server error in stream: {chunk['error']}")
    done: list[tuple[int, str]] = []
    for ch in chunk.get("choices") or []:
        index = ch.get("index", 0)
        if not isinstance(index, int) or not 0 <= index < len(choices):
            raise BackendUnavailableError(f"choice index {index!r} outside [0, {len(choices)})")
        c = choices[index]
        delta = ch.get("delta") or {}
        if delta.get("content"):
            c.text.append(delta["content"])
        for tok in (ch.get("logprobs") or {}).get("content") or []:
            c.tokens += 1
            c.summary.add(float(tok["logprob"]), str(tok.get("token", "")))
        reason = ch.get("finish_reason")
        if reason and not c.done:
            c.done = True
            done.append((index, "length" if reason == "length" else "stop"))
    return done


def _sample(
    req: GenerateRequest, index: int, c: _Choice, reason: str, t0: float
) -> GeneratedSample:
    text = "".join(c.text)
    mean_lp, _, steps = c.summary.finish()
    return GeneratedSample(
        question_id=req.question_id,
        sample_id=sample_id(req, index),
        text=text,
        answer=extract_answer(text),
        completion_tokens=c.tokens,
        finish_reason=reason,
        mean_logprob=mean_lp,
        step_logprobs=steps,
        gen_seconds=time.perf_counter() - t0,
    )
