"""vLLM ``AsyncLLM`` in process (GPU; the ``gpu`` extra).

The k samples of a request are k engine requests (request id = sample id) submitted at once,
so vLLM batches them with everything else in flight; each yields when it finishes. Abort is
first-class: when the consumer cancels or closes the stream, every unfinished request id is
aborted in the engine (``await engine.abort(ids)``) before the cancellation propagates —
``except CancelledError: abort; raise``.

Written against vLLM's documented v1 API (``vllm.v1.engine.async_llm.AsyncLLM``,
``AsyncEngineArgs``, ``SamplingParams(output_kind=FINAL_ONLY, logprobs=0)``). There is no GPU on
the development machines: tests drive this class with an engine double at the engine boundary
(``engine=``), so the real vLLM path is exercised only on a GPU host.
"""

from __future__ import annotations

import asyncio
import math
import os
import shlex
import time
from collections.abc import AsyncIterator
from typing import Any

from optscale.engines.generation.base import (
    LogprobSummary,
    sample_id,
    validate_request,
)
from optscale.grading import extract_answer
from optscale.ports import GenerateRequest
from optscale.types import GeneratedSample


def _engine_from_env(model: str, n_ctx: int, seed: int) -> Any:  # pragma: no cover - GPU only
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.v1.engine.async_llm import AsyncLLM

    extra = shlex.split(os.environ.get("VLLM_ENGINE_ARGS", ""))
    kw: dict[str, Any] = {}
    for i in range(0, len(extra) - 1, 2):  # "--gpu-memory-utilization 0.9" -> kwargs
        key = extra[i].lstrip("-").replace("-", "_")
        val = extra[i + 1]
        kw[key] = float(val) if val.replace(".", "", 1).isdigit() else val
    for flag in (a for a in extra if a.startswith("--enable")):
        kw[flag.lstrip("-").replace("-", "_")] = True
    args = AsyncEngineArgs(model=model, max_model_len=n_ctx, seed=seed, **kw)
    return AsyncLLM.from_engine_args(args)


class Backend:
    name = "vllm"

    def __init__(
        self,
        model: str | None = None,
        *,
        n_ctx: int = 10000,
        seed: int = 0,
        max_k: int = 256,
        max_tokens: int = 8192,
        engine: Any = None,
        tokenizer: Any = None,
        sampling_params: Any = None,
    ) -> None:
        self.model_name = model or "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"
        self.max_k = max_k
        self.max_tokens = max_tokens
        self.engine = (
            engine if engine is not None else _engine_from_env(self.model_name, n_ctx, seed)
        )
        self.tokenizer = tokenizer
        self._sampling_params = sampling_params  # vllm.SamplingParams unless injected
        self.aborted: list[str] = []

    def _prompt(self, text: str) -> str:
        tok = self.tokenizer
        if tok is None:
            return text
        return str(
            tok.apply_chat_template(
                [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
            )
        )

    def _params(self, req: GenerateRequest, i: int) -> Any:
        p = req.params
        kw: dict[str, Any] = {
            "temperature": p.temperature,
            "top_p": p.top_p,
            "max_tokens": p.max_tokens,
            "seed": None if p.seed is None else p.seed + i,
            "logprobs": 0,  # the sampled token's log-prob: confidence for free
        }
        if self._sampling_params is not None:
            return self._sampling_params(**kw)
        from vllm import SamplingParams  # the gpu extra
        from vllm.sampling_params import RequestOutputKind

        return SamplingParams(**kw, output_kind=RequestOutputKind.FINAL_ONLY)

    async def _one(
        self, req: GenerateRequest, i: int, prompt: str, out: asyncio.Queue[Any]
    ) -> None:
        sid = sample_id(req, i)
        t0 = time.perf_counter()
        try:
            final = None
            async for ro in self.engine.generate(prompt, self._params(req, i), sid):
                final = ro
            if final is None:
                raise RuntimeError(f"engine returned no output for {sid}")
            await out.put(self._to_sample(req, sid, final, time.perf_counter() - t0))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # surfaces in generate() instead of hanging it
            await out.put(exc)

    def _to_sample(
        self, req: GenerateRequest, sid: str, ro: Any, seconds: float
    ) -> GeneratedSample:
        c = ro.outputs[0]
        summary = LogprobSummary()
        for tok_id, lp in zip(c.token_ids, c.logprobs or [], strict=False):
            entry = lp.get(tok_id) if isinstance(lp, dict) else None
            if entry is not None and math.isfinite(entry.logprob):
                summary.add(entry.logprob, entry.decoded_token or "")
        mean_lp, _, steps = summary.finish()
        reason = {"stop": "stop", "length": "length", "abort": "aborted"}.get(
            str(c.finish_reason), "stop"
        )
        return GeneratedSample(
            question_id=req.question_id,
            sample_id=sid,
            text=c.text,
            answer=extract_answer(c.text),
            completion_tokens=len(c.token_ids),
            finish_reason=reason,
            mean_logprob=mean_lp,
            step_logprobs=steps,
            gen_seconds=seconds,
            prompt_tokens=len(ro.prompt_token_ids or []),
        )

    async def generate(self, request: GenerateRequest) -> AsyncIterator[GeneratedSample]:
        validate_request(request, max_k=self.max_k, max_tokens=self.max_tokens)
        prompt = self._prompt(request.prompt)
        out: asyncio.Queue[Any] = asyncio.Queue()
        tasks = [asyncio.create_task(self._one(request, i, prompt, out)) for i in range(request.k)]
        done: set[str] = set()
        try:
            for _ in range(request.k):
                s = await out.get()
                if isinstance(s, Exception):
                    raise s
                done.add(s.sample_id)
                yield s
        finally:  # cancelled, closed early, or an engine error: abort what is unfinished
            pending = [
                sample_id(request, i) for i in range(request.k) if sample_id(request, i) not in done
            ]
            for t in tasks:
                t.cancel()
            if pending:
                self.aborted += pending
                await asyncio.shield(self.engine.abort(pending))
            await asyncio.gather(*tasks, return_exceptions=True)

    def close(self) -> None:
        shutdown = getattr(self.engine, "shutdown", None)
        if shutdown is not None:
            shutdown()
