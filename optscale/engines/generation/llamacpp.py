"""GGUF models through llama-cpp-python: the CPU default.

One ``Llama`` instance decodes one sequence at a time on a dedicated worker thread; the k
samples of a request are decoded one after the other (the prompt's KV cache is reused between
them by llama.cpp's prefix matching). Abort is first-class: every sample has an
:class:`threading.Event` that the decode loop checks after each token, so a cancelled request
stops within one decode step. Token log-probs come from the raw logits of each step through a
logits processor (asking the completion API for ``logprobs`` makes decoding ~7x slower).
Sampling is plain temperature + top-p (llama.cpp's default top-k 40 and min-p 0.05 are off).
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from optscale.engines.generation.base import (
    LogprobSummary,
    log_softmax_at,
    sample_id,
    validate_request,
)
from optscale.grading import extract_answer
from optscale.models import resolve_gguf
from optscale.ports import GenerateRequest
from optscale.types import GeneratedSample, SamplingParams

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}<|im_start|>assistant\n"
)


class Backend:
    name = "llamacpp"

    def __init__(
        self,
        model: str | None = None,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        seed: int = 0,
        max_k: int = 64,
        max_tokens: int = 4096,
    ) -> None:
        from llama_cpp import Llama, LogitsProcessorList

        self._processors = LogitsProcessorList
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        path = resolve_gguf(model)
        self.model_name = path.name
        self.max_k = max_k
        self.max_tokens = max_tokens
        self._llm = Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=n_threads or os.cpu_count() or 1,
            seed=seed,
            verbose=False,
        )
        template = self._llm.metadata.get("tokenizer.chat_template") or CHATML
        self._format = Jinja2ChatFormatter(template, eos_token="", bos_token="")
        self._stop_ids = {self._llm.token_eos()}
        for special in ("<|im_end|>", "<|endoftext|>", "<|eot_id|>"):
            ids = self._llm.tokenize(special.encode(), add_bos=False, special=True)
            if len(ids) == 1:
                self._stop_ids.add(ids[0])
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="llamacpp")
        self._rng = random.Random(seed)
        self.tokens_total = 0
        self.tokens_after_abort = 0  # decoded after an abort was requested (benchmark)

    def prompt_tokens(self, prompt: str) -> list[int]:
        text = self._format(messages=[{"role": "user", "content": prompt}]).prompt
        return list(self._llm.tokenize(text.encode(), add_bos=False, special=True))

    async def generate(self, request: GenerateRequest) -> AsyncIterator[GeneratedSample]:
        validate_request(request, max_k=self.max_k, max_tokens=self.max_tokens)
        loop = asyncio.get_running_loop()
        tokens = await loop.run_in_executor(self._pool, self.prompt_tokens, request.prompt)
        for i in range(request.k):
            seed = (
                request.params.seed + i
                if request.params.seed is not None
                else self._rng.randrange(2**31)
            )
            abort = threading.Event()
            fut = loop.run_in_executor(
                self._pool, self._decode, request, i, tokens, request.params, seed, abort
            )
            try:
                sample = await asyncio.shield(fut)
            except BaseException:  # cancelled or closed: stop the engine, then re-raise
                abort.set()
                raise
            yield sample

    def _decode(
        self,
        req: GenerateRequest,
        i: int,
        prompt: list[int],
        p: SamplingParams,
        seed: int,
        abort: threading.Event,
    ) -> GeneratedSample:
        import numpy as np

        t0 = time.perf_counter()
        llm = self._llm
        llm.set_seed(seed)
        budget = min(p.max_tokens, llm.n_ctx() - len(prompt) - 1)
        summary = LogprobSummary()
        last_logits: list[Any] = [None]

        def keep_logits(_ids: Any, scores: Any) -> Any:
            last_logits[0] = np.array(scores, copy=True)
            return scores

        out: list[int] = []
        reason = "length"
        if abort.is_set():
            reason = "aborted"
        elif budget > 0:
            gen = llm.generate(
                prompt,
                top_k=0,
                top_p=p.top_p,
                min_p=0.0,
                temp=p.temperature,
                repeat_penalty=1.0,
                logits_processor=self._processors([keep_logits]),
            )
            for tok in gen:
                self.tokens_total += 1
                if abort.is_set():
                    self.tokens_after_abort += 1
                    reason = "aborted"
                    break
                if tok in self._stop_ids:
                    reason = "stop"
                    break
                out.append(tok)
                piece = llm.detokenize([tok]).decode("utf-8", errors="ignore")
                if last_logits[0] is not None:
                    lp, sc = log_softmax_at(last_logits[0], tok)
                    summary.add(lp, piece, sc)
                if len(out) >= budget:
                    break
        text = llm.detokenize(out).decode("utf-8", errors="replace")
        mean_lp, certainty, steps = summary.finish()
        return GeneratedSample(
            question_id=req.question_id,
            sample_id=sample_id(req, i),
            text=text,
            answer=extract_answer(text),
            completion_tokens=len(out),
            finish_reason=reason,
            mean_logprob=mean_lp,
            self_certainty=certainty,
            step_logprobs=steps,
            gen_seconds=time.perf_counter() - t0,
            prompt_tokens=len(prompt),
        )

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._llm.close()
