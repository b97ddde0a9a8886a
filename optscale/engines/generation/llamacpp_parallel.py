"""The batched side of the llama.cpp generator: a second context on the same model whose
sequences decode in parallel, each with its own KV stream (a unified cache interleaves the
sequences' cells and changes their logits), one multi-sequence batch per step, and one
sampler chain per sequence. Used by :mod:`optscale.engines.generation.llamacpp`."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from optscale.engines.generation.base import LogprobSummary, judged_out, log_softmax_at
from optscale.ports import StepJudge
from optscale.types import SamplingParams

__all__ = ["CELL_PAD", "PENALTY_LAST_N", "Parallel", "Seq", "round_up", "seq_cells"]

PENALTY_LAST_N = 64  # Llama's last_n_tokens_size: the penalties sampler is a no-op (1.0 / 0 / 0)


CELL_PAD = 256  # llama.cpp pads context sizes to this


def round_up(n: int, to: int) -> int:
    return -(-n // to) * to


def seq_cells(n_prompt: int, budget: int) -> int:
    """KV cells of one sample's sequence: the prompt and every sampled token but the last."""
    return round_up(n_prompt + budget - 1, CELL_PAD)


@dataclass(slots=True)
class Seq:
    """One sample being decoded: its sequence id, sampler and the token to decode next."""

    i: int
    slot: int
    sampler: Any
    token: int
    pos: int
    t0: float = field(default_factory=time.perf_counter)
    out: list[int] = field(default_factory=list)
    summary: LogprobSummary = field(default_factory=LogprobSummary)
    reason: str = "length"

    def take(
        self, tok: int, piece: str, logits: Any, budget: int, judge: StepJudge | None, sid: str
    ) -> bool:
        """Append a sampled (non-stop) token; ``True`` when the sample is done (``reason``
        set): its budget is spent, or ``judge`` aborts it at the step end this token closed
        (``"pruned"``). Else the token is the next one to decode."""
        self.out.append(tok)
        lp, sc = log_softmax_at(logits, tok)
        closed = self.summary.add(lp, piece, sc)
        if len(self.out) >= budget:
            self.reason = "length"
            return True
        if closed and judged_out(judge, sid, self.summary):
            self.reason = "pruned"
            return True
        self.token, self.pos = tok, self.pos + 1
        return False


class Parallel:
    """A multi-sequence llama.cpp context on the backend's model (low-level bindings).

    One KV stream per sequence (``kv_unified = false``): sequence 0 holds a prompt without its
    last token; sequences 1..n_seq are the samples, each a copy of sequence 0
    (``llama_memory_seq_cp`` across streams copies the stream) that decodes the prompt's last
    token first. Made with the one-at-a-time context's parameters (threads aside), so a token
    sees the same model settings in both."""

    def __init__(self, llm: Any, n_threads: int) -> None:
        from llama_cpp import llama_cpp as ll

        self._ll = ll
        self._model = llm.model
        self._base = ll.llama_context_params.from_buffer_copy(llm.context_params)
        self._n_threads = n_threads
        self.n_vocab = int(llm.n_vocab())
        self.n_batch = int(self._base.n_batch)
        self._batch: Any = None
        self._batch_rows = 0
        self.ctx: Any = None
        self._mem: Any = None
        self.n_seq = 0  # sample sequences the context holds (sequence 0: the prompt)
        self.seq_cells = 0  # KV cells of each sequence
        self.root: list[int] = []  # tokens of sequence 0, from position 0
        self.prefilled = 0  # prompt tokens decoded into sequence 0

    def reserve(self, n_seq: int, seq_cells: int, most: int) -> None:
        """Make the context hold ``n_seq`` sample sequences of ``seq_cells`` KV cells each
        (beside the prompt's), keeping the current one if it is large enough. A new context
        is as large as both when that fits in ``most`` cells; it drops the cached prompt."""
        if self.ctx is not None and self.n_seq >= n_seq and self.seq_cells >= seq_cells:
            return
        ll = self._ll
        seq_cells = round_up(seq_cells, CELL_PAD)
        both = (max(n_seq, self.n_seq), max(seq_cells, self.seq_cells))
        if (both[0] + 1) * both[1] <= most:
            n_seq, seq_cells = both
        self._free_ctx()
        if self._batch_rows < max(self.n_batch, n_seq):
            if self._batch is not None:
                ll.llama_batch_free(self._batch)
            self._batch_rows = max(self.n_batch, n_seq)
            self._batch = ll.llama_batch_init(self._batch_rows, 0, 1)
        params = ll.llama_context_params.from_buffer_copy(self._base)
        params.n_seq_max = n_seq + 1
        params.n_ctx = (n_seq + 1) * seq_cells
        params.kv_unified = False  # one stream per sequence: each attends over its own cells
        params.n_threads = params.n_threads_batch = self._n_threads
        ctx = ll.llama_init_from_model(self._model, params)
        if ctx is None:
            raise RuntimeError(f"llamacpp: cannot create a {params.n_ctx}-cell batched context")
        self.ctx, self._mem = ctx, ll.llama_get_memory(ctx)
        self.n_seq, self.seq_cells = n_seq, int(ll.llama_n_ctx_seq(ctx))
        self.root = []

    def prefill(self, prefix: Sequence[int]) -> None:
        """Make sequence 0 hold exactly ``prefix``, decoding only what the cache lacks."""
        ll = self._ll
        keep = 0
        for a, b in zip(self.root, prefix, strict=False):
            if a != b:
                break
            keep += 1
        if not ll.llama_memory_seq_rm(self._mem, 0, keep, -1):  # also what a failure left
            ll.llama_memory_clear(self._mem, True)
            keep = 0
        self.root = list(prefix[:keep])
        for start in range(keep, len(prefix), self.n_batch):
            chunk = prefix[start : start + self.n_batch]
            self.root = []  # unknown if the decode fails half-way
            self._decode([(t, start + j, 0) for j, t in enumerate(chunk)], outputs=False)
            self.prefilled += len(chunk)
            self.root = list(prefix[: start + len(chunk)])

    def start(self, seq: int) -> None:
        self._ll.llama_memory_seq_cp(self._mem, 0, seq, -1, -1)

    def end(self, seq: int) -> None:
        self._ll.llama_memory_seq_rm(self._mem, seq, -1, -1)

    def release(self) -> None:
        """Empty every sample's sequence (the prompt's stays)."""
        if self._mem is not None:
            for seq in range(1, self.n_seq + 1):
                self._ll.llama_memory_seq_rm(self._mem, seq, -1, -1)

    def decode(self, rows: Sequence[tuple[int, int, int]]) -> None:
        """One step: (token, position, sequence) per row, logits for every row."""
        self._decode(rows, outputs=True)

    def _decode(self, rows: Sequence[tuple[int, int, int]], *, outputs: bool) -> None:
        b = self._batch
        b.n_tokens = len(rows)
        for j, (tok, pos, seq) in enumerate(rows):
            b.token[j] = tok
            b.pos[j] = pos
            b.n_seq_id[j] = 1
            b.seq_id[j][0] = seq
            b.logits[j] = outputs
        rc = self._ll.llama_decode(self.ctx, b)
        if rc != 0:
            raise RuntimeError(f"llamacpp: llama_decode returned {rc} ({len(rows)} tokens)")

    def sampler(self, p: SamplingParams, seed: int) -> Any:
        """The chain ``Llama.generate`` builds for top_k=0, min_p=0, repeat_penalty=1."""
        ll = self._ll
        chain = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())
        parts = [ll.llama_sampler_init_penalties(self.n_vocab, PENALTY_LAST_N, 1.0, 0.0, 0.0)]
        if p.temperature == 0.0:
            parts.append(ll.llama_sampler_init_greedy())
        else:
            parts += [
                ll.llama_sampler_init_top_k(0),
                ll.llama_sampler_init_typical(1.0, 1),
                ll.llama_sampler_init_top_p(p.top_p, 1),
                ll.llama_sampler_init_min_p(0.0, 1),
                ll.llama_sampler_init_temp(p.temperature),
                ll.llama_sampler_init_dist(seed & 0xFFFFFFFF),
            ]
        for part in parts:
            ll.llama_sampler_chain_add(chain, part)
        return chain

    def free_sampler(self, chain: Any) -> None:
        self._ll.llama_sampler_free(chain)

    def sample(self, chain: Any, row: int) -> int:
        return int(self._ll.llama_sampler_sample(chain, self.ctx, row))

    def logits(self, row: int) -> Any:
        """Raw logits of one row of the last step (a view: read before the next step)."""

        return np.ctypeslib.as_array(self._ll.llama_get_logits_ith(self.ctx, row), (self.n_vocab,))

    def _free_ctx(self) -> None:
        if self.ctx is not None:
            self._ll.llama_free(self.ctx)
            self.ctx, self._mem, self.root = None, None, []
            self.n_seq = self.seq_cells = 0

    def close(self) -> None:
        self._free_ctx()
        if self._batch is not None:
            self._ll.llama_batch_free(self._batch)
            self._batch = None
