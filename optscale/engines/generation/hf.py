"""Any Hugging Face causal LM through transformers, on CPU or GPU, with batched sampling.

The k samples of a request decode as one batch: the prompt is prefilled once and its KV cache
repeated k times; each step samples one token per live row (temperature + top-p), records the
chosen token's log-prob and self-certainty from the raw logits, and drops finished rows from
the batch (``Cache.batch_select_indices``) so the tail of long samples does not pay for the
short ones. A sample is emitted as soon as its row finishes. Abort is first-class: the decode
loop checks an :class:`threading.Event` before every step, so closing the iterator or
cancelling its task stops the engine within one step.

Models: ``--model smollm2`` / ``qwen`` use the packaged GGUF weights, dequantized once into the
model cache (:func:`optscale.models.resolve_dir`); a local directory or a Hugging Face model id
is passed to ``from_pretrained`` as is (with the hub cache on a GPU cluster).
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from optscale.engines.generation.base import LogprobSummary, sample_id, validate_request
from optscale.grading import extract_answer
from optscale.models import resolve_dir
from optscale.ports import GenerateRequest
from optscale.types import GeneratedSample

_DONE = object()


def sample_top_p(logits: Any, temperature: float, top_p: float, generator: Any) -> Any:
    """One token per row from raw logits ``[rows, vocab]``: greedy when temperature is 0,
    otherwise temperature-scaled nucleus sampling (the smallest set of tokens whose
    probability reaches ``top_p``; the most likely token is always kept)."""
    import torch

    if temperature <= 0.0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        before = sorted_p.cumsum(dim=-1) - sorted_p  # mass strictly before each token
        sorted_p = sorted_p.masked_fill(before >= top_p, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


class Backend:
    name = "hf"

    def __init__(
        self,
        model: str | None = None,
        *,
        device: str = "cpu",
        n_ctx: int = 4096,
        n_threads: int | None = None,
        seed: int = 0,
        max_k: int = 64,
        max_tokens: int = 4096,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if n_threads:
            torch.set_num_threads(n_threads)
        path = resolve_dir(model or "qwen")
        self.model_name = path.rstrip("/").rsplit("/", 1)[-1]
        self.max_k = max_k
        self.max_tokens = max_tokens
        self.n_ctx = n_ctx
        self.device = torch.device(device)
        dtype = torch.float32 if self.device.type == "cpu" else torch.bfloat16
        self._tok: Any = AutoTokenizer.from_pretrained(path)
        lm: Any = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        self._model: Any = lm.to(self.device)
        self._model.eval()
        self._stop_ids = self._find_stop_ids()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="hf")
        self._rng = random.Random(seed)
        self.tokens_total = 0
        self.tokens_after_abort = 0  # decoded after an abort was requested (benchmark)

    def _find_stop_ids(self) -> set[int]:
        ids: set[int] = set()
        eos = self._model.generation_config.eos_token_id
        ids.update(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if self._tok.eos_token_id is not None:
            ids.add(self._tok.eos_token_id)
        for special in ("<|im_end|>", "<|endoftext|>", "<|eot_id|>"):
            tid = self._tok.convert_tokens_to_ids(special)
            if isinstance(tid, int) and tid != self._tok.unk_token_id:
                ids.add(tid)
        return ids

    def prompt_tokens(self, prompt: str) -> list[int]:
        messages = [{"role": "user", "content": prompt}]
        if self._tok.chat_template:
            ids = self._tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
            if isinstance(ids, dict) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
            return [int(t) for t in ids]
        return [int(t) for t in self._tok(prompt)["input_ids"]]

    async def generate(self, request: GenerateRequest) -> AsyncIterator[GeneratedSample]:
        validate_request(request, max_k=self.max_k, max_tokens=self.max_tokens)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        abort = threading.Event()

        def emit(item: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        seed = request.params.seed
        if seed is None:
            seed = self._rng.randrange(2**31)
        fut = loop.run_in_executor(self._pool, self._run, request, seed, abort, emit)
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    break
                yield item
            await fut  # surfaces an engine error
        except BaseException:  # cancelled or closed: stop the engine, then re-raise
            abort.set()
            raise

    def _run(
        self, req: GenerateRequest, seed: int, abort: threading.Event, emit: Callable[[Any], None]
    ) -> None:
        try:
            self._decode(req, seed, abort, emit)
        finally:
            emit(_DONE)

    def _decode(
        self, req: GenerateRequest, seed: int, abort: threading.Event, emit: Callable[[Any], None]
    ) -> None:
        import torch

        t0 = time.perf_counter()
        p = req.params
        prompt = self.prompt_tokens(req.prompt)
        budget = min(p.max_tokens, self.n_ctx - len(prompt) - 1)
        gen = torch.Generator(device=self.device).manual_seed(seed)
        rows = list(range(req.k))  # sample index of each live batch row
        out: list[list[int]] = [[] for _ in rows]
        summaries = [LogprobSummary() for _ in rows]

        def finish(i: int, reason: str) -> None:
            text = self._tok.decode(out[i], skip_special_tokens=True)
            mean_lp, certainty, steps = summaries[i].finish()
            emit(
                GeneratedSample(
                    question_id=req.question_id,
                    sample_id=sample_id(req, i),
                    text=text,
                    answer=extract_answer(text),
                    completion_tokens=len(out[i]),
                    finish_reason=reason,
                    mean_logprob=mean_lp,
                    self_certainty=certainty,
                    step_logprobs=steps,
                    step_token_ends=tuple(summaries[i].step_ends),
                    gen_seconds=time.perf_counter() - t0,
                    prompt_tokens=len(prompt),
                )
            )

        if budget <= 0:
            for i in rows:
                finish(i, "length")
            return
        with torch.inference_mode():
            ids = torch.tensor([prompt], device=self.device)
            res = self._model(input_ids=ids, use_cache=True)
            cache = res.past_key_values
            cache.batch_repeat_interleave(len(rows))
            logits = res.logits[:, -1, :].float().expand(len(rows), -1)
            while rows:
                if abort.is_set():
                    return
                tokens = sample_top_p(logits, p.temperature, p.top_p, gen)
                logp = torch.log_softmax(logits, dim=-1)
                chosen = logp.gather(1, tokens[:, None]).squeeze(1).tolist()
                # self-certainty KL(uniform || p) = -log V - mean log p
                certainty = (-math.log(logp.shape[-1]) - logp.mean(dim=-1)).tolist()
                self.tokens_total += len(rows)
                keep: list[int] = []
                for r, i in enumerate(rows):
                    tok = int(tokens[r])
                    if tok in self._stop_ids:
                        finish(i, "stop")
                        continue
                    out[i].append(tok)
                    piece = self._tok.decode([tok])
                    summaries[i].add(chosen[r], piece, certainty[r])
                    if len(out[i]) >= budget:
                        finish(i, "length")
                    else:
                        keep.append(r)
                if not keep:
                    return
                if len(keep) < len(rows):
                    cache.batch_select_indices(torch.tensor(keep, device=self.device))
                    tokens = tokens[keep]
                    rows = [rows[r] for r in keep]
                if abort.is_set():
                    return
                res = self._model(input_ids=tokens[:, None], past_key_values=cache, use_cache=True)
                cache = res.past_key_values
                logits = res.logits[:, -1, :].float()
                if abort.is_set():
                    self.tokens_after_abort += len(rows)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
