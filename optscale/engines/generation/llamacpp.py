"""GGUF models through llama-cpp-python: the CPU default.

The k > 1 samples of a request decode as parallel sequences of one llama.cpp context: the
prompt but its last token is prefilled once into sequence 0 and copied to each sample's
sequence (``llama_memory_seq_cp``); then every step is one multi-sequence ``llama_batch`` with
one token per live sequence (the prompt's last token first), so the weights are read once per
step for all the samples instead of once per token. Each sequence has its own KV stream
(``kv_unified = false``): it attends over its own cells, laid out as they would be alone (a
unified cache interleaves the sequences' cells, which changes the floating-point sums). Each
has its own sampler chain too, the one ``Llama.generate`` builds, seeded ``params.seed + i``
for sample i. So where llama.cpp's CPU matmul gives a row the same result alone and among
others (SmolLM2's Q4_1), a batched sample is bit for bit the one-at-a-time sample, at any
temperature; with repacked Q4_K weights (Qwen) rows are computed 4 at a time, a little
differently, so samples differ from one at a time while staying deterministic. Finished
sequences leave the batch and free their stream for a waiting sample (k > ``n_parallel``, or
fewer streams fit in ``batch_n_ctx``). The batched context is made by the first batched request
and sized from it (``width + 1`` streams of prompt + budget cells), made again larger when a
request needs more; the prompt stays in sequence 0, so the next request for the same question
does not prefill it again.

One sample at a time (``Llama.generate``, the prompt's KV cache reused by prefix matching)
serves k == 1, ``n_parallel=1``, recurrent models and requests of which two samples do not fit
in ``batch_n_ctx`` (logged).

Samples are yielded in index order. A request's ``step_judge`` (prefix pruning) is asked at
each step end (a blank line) of each sample; when it says abort, that sequence stops at once,
frees its slot and comes back ``"pruned"`` with the tokens so far and no answer; with a judge,
samples are yielded as they finish (the judge's reference grows as they are scored). Abort is
first-class: every request has a :class:`threading.Event` that the decode loop checks after each
step and before each sampled token, so a cancelled request stops all its sequences within one
decode step. Token log-probs come from the raw logits of each step (asking the completion API
for ``logprobs`` makes decoding ~7x slower). Sampling is plain temperature + top-p (llama.cpp's
default top-k 40 and min-p 0.05 are off).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from optscale.engines.generation.base import (
    LogprobSummary,
    judged_out,
    log_softmax_at,
    sample_id,
    validate_request,
)
from optscale.engines.generation.llamacpp_parallel import (
    Parallel,
    Seq,
    seq_cells,
)
from optscale.grading import extract_answer
from optscale.models import resolve_gguf
from optscale.ports import GenerateRequest
from optscale.types import GeneratedSample, SamplingParams

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}<|im_start|>assistant\n"
)

_log = logging.getLogger(__name__)


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
        n_parallel: int = 16,
        batch_n_ctx: int | None = None,
    ) -> None:
        """``n_ctx``: context of one sample (prompt + completion), as before. ``n_parallel``:
        most sequences decoded together (1 = always one at a time). ``batch_n_ctx``: most KV
        cells of the batched context (default ``4 * n_ctx``)."""
        from llama_cpp import Llama, LogitsProcessorList
        from llama_cpp import llama_cpp as ll

        self._processors = LogitsProcessorList
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        path = resolve_gguf(model)
        self.model_name = path.name
        self.max_k = max_k
        self.max_tokens = max_tokens
        self.n_parallel = n_parallel
        self.batch_n_ctx = batch_n_ctx or 4 * n_ctx
        self._n_threads = n_threads or os.cpu_count() or 1
        self._llm = Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=self._n_threads,
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
        model_p = self._llm.model
        recurrent = ll.llama_model_is_recurrent(model_p) or ll.llama_model_is_hybrid(model_p)
        self._can_batch = not recurrent
        self._max_width = int(ll.llama_max_parallel_sequences()) - 1  # sequence 0: the prompt
        if not self._can_batch and n_parallel > 1:
            _log.warning(
                "llamacpp: %s keeps recurrent state: samples decode one at a time", path.name
            )
        self._par: Parallel | None = None  # the batched context, created when first needed
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="llamacpp")
        self._rng = random.Random(seed)
        self.tokens_total = 0
        self.tokens_after_abort = 0  # decoded after an abort was requested (benchmark)
        self.batched_samples = 0  # samples decoded as parallel sequences

    def prompt_tokens(self, prompt: str) -> list[int]:
        text = self._format(messages=[{"role": "user", "content": prompt}]).prompt
        return list(self._llm.tokenize(text.encode(), add_bos=False, special=True))

    def _budget(self, p: SamplingParams, n_prompt: int) -> int:
        """Completion tokens of one sample: max_tokens, or what is left of its context."""
        return min(p.max_tokens, self._llm.n_ctx() - n_prompt - 1)

    def batch_width(self, k: int, n_prompt: int, p: SamplingParams) -> int:
        """Sequences decoded together for k samples (< 2: one at a time). Each holds a copy
        of the prompt and a whole sample; one more holds the prompt alone."""
        budget = self._budget(p, n_prompt)
        if k < 2 or self.n_parallel < 2 or not self._can_batch or budget <= 0:
            return 1
        fits = self.batch_n_ctx // seq_cells(n_prompt, budget) - 1
        return max(1, min(k, self.n_parallel, fits, self._max_width))

    async def generate(self, request: GenerateRequest) -> AsyncIterator[GeneratedSample]:
        validate_request(request, max_k=self.max_k, max_tokens=self.max_tokens)
        loop = asyncio.get_running_loop()
        tokens = await loop.run_in_executor(self._pool, self.prompt_tokens, request.prompt)
        p = request.params
        seeds = [
            p.seed + i if p.seed is not None else self._rng.randrange(2**31)
            for i in range(request.k)
        ]
        width = self.batch_width(request.k, len(tokens), p)
        budget = self._budget(p, len(tokens))
        if width < 2 and request.k > 1 and self.n_parallel > 1 and self._can_batch and budget > 0:
            _log.warning(
                "llamacpp: %s: %d samples decode one at a time: 3 sequences (the prompt's and "
                "2 samples) of %d prompt + %d completion tokens exceed batch_n_ctx=%d",
                request.question_id,
                request.k,
                len(tokens),
                budget,
                self.batch_n_ctx,
            )
        if width < 2:
            for i in range(request.k):
                abort = threading.Event()
                fut = loop.run_in_executor(
                    self._pool, self._decode, request, i, tokens, p, seeds[i], abort
                )
                try:
                    sample = await asyncio.shield(fut)
                except BaseException:  # cancelled or closed: stop the engine, then re-raise
                    abort.set()
                    raise
                yield sample
            return

        abort = threading.Event()
        queue: asyncio.Queue[tuple[int, GeneratedSample | None]] = asyncio.Queue()

        def emit(i: int, sample: GeneratedSample | None) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, (i, sample))
            except RuntimeError:  # the event loop is closed: nobody is listening
                pass

        job = loop.run_in_executor(
            self._pool, self._run_batched, request, tokens, seeds, width, abort, emit
        )
        try:
            ready: dict[int, GeneratedSample] = {}
            in_order = request.step_judge is None  # with a judge: as they finish
            for i in range(request.k):
                while not ready or (in_order and i not in ready):
                    j, done = await queue.get()
                    if done is None:  # the engine stopped early: surface its error
                        await job
                        raise RuntimeError("llamacpp: batched decode ended without all samples")
                    ready[j] = done
                yield ready.pop(i if in_order else next(iter(ready)))
        except BaseException:  # cancelled or closed: stop every sequence, then re-raise
            abort.set()
            raise

    def _decode(
        self,
        req: GenerateRequest,
        i: int,
        prompt: list[int],
        p: SamplingParams,
        seed: int,
        abort: threading.Event,
    ) -> GeneratedSample:
        """One sample alone (``Llama.generate``)."""
        import numpy as np

        t0 = time.perf_counter()
        llm = self._llm
        llm.set_seed(seed)
        budget = self._budget(p, len(prompt))
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
            self._prefill_head(prompt)
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
                closed = False
                if last_logits[0] is not None:
                    lp, sc = log_softmax_at(last_logits[0], tok)
                    closed = summary.add(lp, piece, sc)
                if len(out) >= budget:
                    break
                if closed and judged_out(req.step_judge, sample_id(req, i), summary):
                    reason = "pruned"  # the step judge aborts it at this step end
                    break
        return self._sample(req, i, out, reason, summary, t0, len(prompt))

    def _prefill_head(self, prompt: list[int]) -> None:
        """Put the prompt but its last token in the context, so ``Llama.generate`` decodes
        that token alone for every sample, as the batched path does for every sequence: a
        token decoded with others of its sequence gets slightly different logits (llama.cpp's
        CPU kernels), so otherwise sample 0 could differ from samples 1.. at temperature 0."""
        llm = self._llm
        head = prompt[:-1]
        cached = llm.input_ids[: llm.n_tokens]
        same = 0
        for a, b in zip(cached, head, strict=False):
            if a != b:
                break
            same += 1
        if same < len(head):
            llm.n_tokens = same
            llm.eval(head[same:])

    def _sample(
        self,
        req: GenerateRequest,
        i: int,
        out: list[int],
        reason: str,
        summary: LogprobSummary,
        t0: float,
        n_prompt: int,
    ) -> GeneratedSample:
        text = self._llm.detokenize(out).decode("utf-8", errors="replace")
        mean_lp, certainty, steps = summary.finish()
        return GeneratedSample(
            question_id=req.question_id,
            sample_id=sample_id(req, i),
            text=text,
            answer=None if reason == "pruned" else extract_answer(text),
            completion_tokens=len(out),
            finish_reason=reason,
            mean_logprob=mean_lp,
            self_certainty=certainty,
            step_logprobs=steps,
            step_token_ends=tuple(summary.step_ends),
            gen_seconds=time.perf_counter() - t0,
            prompt_tokens=n_prompt,
        )

    def _run_batched(self, *args: Any) -> None:
        """:meth:`_decode_batched` (same arguments), then the end-of-stream mark (-1), also
        after an error."""
        emit: Callable[[int, GeneratedSample | None], None] = args[-1]
        try:
            self._decode_batched(*args)
        finally:
            emit(-1, None)

    def _decode_batched(
        self,
        req: GenerateRequest,
        prompt: list[int],
        seeds: list[int],
        width: int,
        abort: threading.Event,
        emit: Callable[[int, GeneratedSample | None], None],
    ) -> None:
        """The k samples as parallel sequences: ``width`` live at a time, one token each per
        step; a finished sequence's slot goes to the next waiting sample."""
        started = time.perf_counter()
        p = req.params
        n_prompt = len(prompt)
        budget = self._budget(p, n_prompt)
        if self._par is None:
            self._par = Parallel(self._llm, self._n_threads)
        par = self._par
        par.reserve(width, seq_cells(n_prompt, budget), self.batch_n_ctx)
        waiting = deque(range(req.k))
        live: list[Seq] = []
        slots = list(range(width, 0, -1))  # sequence ids 1..width; 0 holds the prompt
        try:
            if abort.is_set():  # cancelled while it waited for the engine
                return
            par.prefill(prompt[:-1])
            while waiting or live:
                if abort.is_set():
                    return
                while waiting and slots:
                    i = waiting.popleft()
                    seq = Seq(i, slots.pop(), par.sampler(p, seeds[i]), prompt[-1], n_prompt - 1)
                    if i < width:  # the first ones waited for the prefill
                        seq.t0 = started
                    par.start(seq.slot)
                    live.append(seq)
                    self.batched_samples += 1
                par.decode([(s.token, s.pos, s.slot) for s in live])
                finished: list[Seq] = []
                for row, s in enumerate(live):
                    if abort.is_set():
                        return
                    tok = par.sample(s.sampler, row)
                    self.tokens_total += 1
                    if abort.is_set():
                        self.tokens_after_abort += 1
                        return
                    if tok in self._stop_ids:
                        s.reason = "stop"
                        finished.append(s)
                        continue
                    piece = self._llm.detokenize([tok]).decode("utf-8", errors="ignore")
                    sid = sample_id(req, s.i)
                    if s.take(tok, piece, par.logits(row), budget, req.step_judge, sid):
                        finished.append(s)  # out of budget, or pruned at a step end
                for s in finished:  # after the step: no token is counted once a sample is out
                    live.remove(s)
                    par.end(s.slot)
                    par.free_sampler(s.sampler)
                    slots.append(s.slot)
                    emit(s.i, self._sample(req, s.i, s.out, s.reason, s.summary, s.t0, n_prompt))
        finally:
            for s in live:
                par.free_sampler(s.sampler)
            par.release()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._par is not None:
            self._par.close()  # before the model it was made from
            self._par = None
        self._llm.close()
