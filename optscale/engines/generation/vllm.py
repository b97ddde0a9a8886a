"""vLLM ``AsyncLLM`` in process (GPU pools; vLLM's CPU build in ``.venv-vllm`` for the tests).

The k samples of a request are k engine requests (request id = sample id) submitted at once,
so vLLM batches them with everything else in flight; each yields when it finishes. Outputs
stream as deltas (``RequestOutputKind.DELTA``) so ``tokens_total`` counts decoded tokens as
they arrive. Abort is first-class: when the consumer cancels or closes the stream, every
unfinished request id is aborted in the engine (``await engine.abort(ids)``) before the
cancellation propagates.

Prompts go through the model's own chat template (the engine's tokenizer, or ``tokenizer=``)
and reach the engine as token ids, tokenized without extra special tokens (as vLLM's chat
endpoint does); a tokenizer without a chat template sends the text as is. Engine arguments
are vLLM's command-line flags, parsed by vLLM's own parser (``AsyncEngineArgs.add_cli_args``
/ ``from_cli_args``): any order, every flag, typed as vLLM types them. They come from
``engine_args=`` or the ``VLLM_ENGINE_ARGS`` environment variable (shell syntax), after the
defaults ``--model M --max-model-len n_ctx --seed seed`` (a later flag wins).

Tests: ``tests/optscale/engines/generation/test_vllm.py`` drives this class with an engine
double (``engine=``); ``tests/vllm_real/`` runs it on the real engine (CPU build).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import shlex
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, NoReturn

from optscale.engines.generation.base import (
    LogprobSummary,
    sample_id,
    validate_request,
)
from optscale.errors import InvalidArgumentError
from optscale.grading import extract_answer
from optscale.ports import GenerateRequest
from optscale.types import GeneratedSample

log = logging.getLogger(__name__)

ENGINE_ARGS_ENV = "VLLM_ENGINE_ARGS"


def parse_engine_args(model: str, extra: Sequence[str], *, n_ctx: int, seed: int) -> Any:
    """``AsyncEngineArgs`` from vLLM command-line flags, by vLLM's own argument parser.

    ``--model model --max-model-len n_ctx --seed seed`` come first, so ``extra`` overrides
    them. A flag vLLM rejects raises ``InvalidArgumentError`` with vLLM's message."""
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    shown = shlex.join(extra)

    class Parser(FlexibleArgumentParser):  # type: ignore[misc]
        def error(self, message: str) -> NoReturn:  # argparse would print and exit
            raise InvalidArgumentError(ENGINE_ARGS_ENV, shown, message)

    parser = AsyncEngineArgs.add_cli_args(Parser(prog=ENGINE_ARGS_ENV))
    defaults = ["--model", model, "--max-model-len", str(n_ctx), "--seed", str(seed)]
    return AsyncEngineArgs.from_cli_args(parser.parse_args([*defaults, *extra]))


def _start_engine(args: Any) -> Any:  # pragma: no cover - needs vLLM (tests/vllm_real)
    from vllm.v1.engine.async_llm import AsyncLLM

    return AsyncLLM.from_engine_args(args)


class Backend:
    name = "vllm"

    def __init__(
        self,
        model: str | None = None,
        *,
        engine_args: Sequence[str] | None = None,
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
        self.engine_args: Any = None
        if engine is None:
            extra = (
                shlex.split(os.environ.get(ENGINE_ARGS_ENV, ""))
                if engine_args is None
                else list(engine_args)
            )
            self.engine_args = parse_engine_args(self.model_name, extra, n_ctx=n_ctx, seed=seed)
            engine = _start_engine(self.engine_args)
        self.engine = engine
        if tokenizer is None and hasattr(engine, "get_tokenizer"):
            tokenizer = engine.get_tokenizer()  # the model's own tokenizer and chat template
        self.tokenizer = tokenizer
        self._warned_no_template = False
        self._sampling_params = sampling_params  # vllm.SamplingParams unless injected
        self.aborted: list[str] = []
        self._aborted_ids: set[str] = set()
        self.tokens_total = 0  # decoded tokens received from the engine, all requests
        self.engine_tokens_total = 0  # engine side, once watch_engine_tokens() is on
        self.tokens_after_abort = 0  # engine side, once watch_engine_tokens() is on

    def watch_engine_tokens(self) -> None:
        """Count, engine side, the tokens decoded (``engine_tokens_total``) and those decoded
        for requests after this backend aborted them (``tokens_after_abort``): instrumentation
        for tests and ``benchmarks/generator_cancel.py``. Every engine step's outputs reach
        ``AsyncLLM``'s output processor, which drops those of aborted requests; this wraps its
        ``process_outputs`` (vLLM 0.32 internals) to count them first. Outputs already on their
        way when the abort was sent count too (an upper bound)."""
        proc = self.engine.output_processor
        original = proc.process_outputs
        external: dict[str, str] = {}  # vLLM's internal request id -> our sample id

        def counting(outputs: Any, *args: Any, **kwargs: Any) -> Any:
            for o in outputs:
                self.engine_tokens_total += len(o.new_token_ids)
                state = proc.request_states.get(o.request_id)
                if state is not None:
                    external[o.request_id] = state.external_req_id
                if external.get(o.request_id) in self._aborted_ids:
                    self.tokens_after_abort += len(o.new_token_ids)
            return original(outputs, *args, **kwargs)

        proc.process_outputs = counting

    def _prompt(self, text: str) -> Any:
        tok = self.tokenizer
        if tok is None:
            return text
        if getattr(tok, "chat_template", None) is None:
            if not self._warned_no_template:
                self._warned_no_template = True
                log.warning(
                    "%s: the tokenizer has no chat template, prompts go as is", self.model_name
                )
            return text
        templated = str(
            tok.apply_chat_template(
                [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
            )
        )
        ids = tok.encode(templated, add_special_tokens=False)
        return {"type": "token", "prompt_token_ids": list(ids), "prompt": templated}

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
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        return SamplingParams(**kw, output_kind=RequestOutputKind.DELTA)

    async def _one(
        self, req: GenerateRequest, i: int, prompt: Any, out: asyncio.Queue[Any]
    ) -> None:
        sid = sample_id(req, i)
        t0 = time.perf_counter()
        try:
            acc = _Accumulated()
            async for ro in self.engine.generate(prompt, self._params(req, i), sid):
                self.tokens_total += acc.add(ro)
            if acc.outputs == 0:
                raise RuntimeError(f"engine returned no output for {sid}")
            await out.put(acc.sample(req, sid, time.perf_counter() - t0))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # surfaces in generate() instead of hanging it
            await out.put(exc)

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
                self._aborted_ids.update(pending)
                await asyncio.shield(self.engine.abort(pending))
            await asyncio.gather(*tasks, return_exceptions=True)

    def close(self) -> None:
        shutdown = getattr(self.engine, "shutdown", None)
        if shutdown is not None:
            shutdown()


class _Accumulated:
    """One engine request's streamed deltas, joined into a sample."""

    def __init__(self) -> None:
        self.outputs = 0
        self.text: list[str] = []
        self.token_ids: list[int] = []
        self.logprobs: list[Any] = []
        self.finish_reason: str | None = None
        self.prompt_tokens = 0

    def add(self, ro: Any) -> int:
        """Take one ``RequestOutput`` (a delta); return how many tokens it added."""
        c = ro.outputs[0]
        self.outputs += 1
        self.text.append(c.text)
        new = list(c.token_ids)
        self.token_ids += new
        self.logprobs += list(c.logprobs or [])
        self.finish_reason = c.finish_reason or self.finish_reason
        self.prompt_tokens = len(ro.prompt_token_ids or []) or self.prompt_tokens
        return len(new)

    def sample(self, req: GenerateRequest, sid: str, seconds: float) -> GeneratedSample:
        summary = LogprobSummary()
        for tok_id, lp in zip(self.token_ids, self.logprobs, strict=False):
            entry = lp.get(tok_id) if hasattr(lp, "get") else None
            if entry is not None and math.isfinite(entry.logprob):
                summary.add(entry.logprob, entry.decoded_token or "")
        mean_lp, _, steps = summary.finish()
        reason = {"stop": "stop", "length": "length", "abort": "aborted"}.get(
            str(self.finish_reason), "stop"
        )
        text = "".join(self.text)
        return GeneratedSample(
            question_id=req.question_id,
            sample_id=sid,
            text=text,
            answer=extract_answer(text),
            completion_tokens=len(self.token_ids),
            finish_reason=reason,
            mean_logprob=mean_lp,
            step_logprobs=steps,
            gen_seconds=seconds,
            prompt_tokens=self.prompt_tokens,
        )
