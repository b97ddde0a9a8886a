"""Aggregate completion tokens/s of the llama.cpp generator: k samples as parallel sequences
against one sample at a time, in one run.

    .venv/bin/python benchmarks/generator_throughput.py [--model qwen] [--ks 1,4,8]
        [--max-tokens 48] [--rounds 3] [--threads 2]

One backend (one model load) serves both modes: ``n_parallel=1`` decodes the k samples of a
request one after the other (the engine before batching), ``n_parallel=max(ks)`` decodes them
as parallel sequences of one context (the default for k > 1). Each round asks, for every k,
one GSM8K question (prompt as ``optscale solve`` builds it; a new question each time, so the
prompt is prefilled in both modes) with temperature 0.7, top_p 0.95 and fixed seeds, once per
mode, the mode that goes first alternating between rounds, so that both modes see the same
machine load. Tokens/s = completion tokens / wall seconds of the requests (prompt prefill
included), summed over the rounds. Prints per k both rates, the ratio batched / one at a time
(target >= 2x at k = 8 on 2 cores) and how many samples came out identical in both modes: all
of them with SmolLM2 (same seeds, same sampler chain, bit-identical logits); with Qwen's Q4_K
weights llama.cpp's CPU matmul works on groups of 4 rows, so a token's logits differ slightly
with the number of sequences in the step and some sampled texts diverge (k = 1: both modes
decode alone, the ratio shows the noise). The load average is printed too: the machine is
shared, and llama.cpp's threads slow down a lot when the cores are busy.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import time
from pathlib import Path

from optscale.engines.generation.llamacpp import Backend
from optscale.ports import GenerateRequest
from optscale.solve import build_prompt
from optscale.types import GeneratedSample, Question, SamplingParams

POOL = Path(__file__).resolve().parent / "data" / "gsm8k50-qwen1.5b-confidence.jsonl.gz"


def questions(n: int) -> list[str]:
    """The first ``n`` distinct questions of the committed GSM8K pool, as prompts."""
    seen: dict[str, str] = {}
    with gzip.open(POOL, "rt") as fh:
        for line in fh:
            row = json.loads(line)
            if row["question_id"] not in seen:
                seen[row["question_id"]] = build_prompt(
                    Question(row["question_id"], row["question"])
                )
                if len(seen) == n:
                    break
    return list(seen.values())


def rss_mib() -> float:
    """Peak resident memory of this process so far (MiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def timed(backend: Backend, req: GenerateRequest) -> tuple[list[GeneratedSample], float]:
    t0 = time.perf_counter()
    out = [s async for s in backend.generate(req)]
    return out, time.perf_counter() - t0


async def main(model: str, ks: list[int], max_tokens: int, rounds: int, threads: int) -> None:
    width = max(ks)
    backend = Backend(model, n_ctx=2048, n_threads=threads, max_k=width, max_tokens=max_tokens)
    prompts = questions(rounds * len(ks) + 1)
    params = SamplingParams(temperature=0.7, top_p=0.95, max_tokens=max_tokens, seed=0)
    modes = {"alone": 1, "batched": width}
    load0 = os.getloadavg()[0]
    for n_parallel in modes.values():  # warm-up: model pages, the batched context
        backend.n_parallel = n_parallel
        await timed(backend, GenerateRequest("warm", prompts[-1], 2, params))
    tokens = {(k, m): 0 for k in ks for m in modes}
    seconds = {(k, m): 0.0 for k in ks for m in modes}
    same = {k: 0 for k in ks}
    started = time.perf_counter()
    for r in range(rounds):
        for j, k in enumerate(ks):
            req = GenerateRequest(f"r{r}k{k}", prompts[r * len(ks) + j], k, params)
            order = list(modes) if r % 2 == 0 else list(reversed(modes))
            texts: dict[str, list[str]] = {}
            for mode in order:
                backend.n_parallel = modes[mode]
                out, secs = await timed(backend, req)
                tokens[k, mode] += sum(s.completion_tokens for s in out)
                seconds[k, mode] += secs
                texts[mode] = [s.text for s in out]
            same[k] += sum(a == b for a, b in zip(texts["alone"], texts["batched"], strict=True))
    load1 = os.getloadavg()[0]
    print(
        f"model {backend.model_name}, {threads} threads, max_tokens {max_tokens}, "
        f"temperature 0.7, {rounds} rounds, {time.perf_counter() - started:.0f} s; "
        f"load average {load0:.1f} -> {load1:.1f} on {os.cpu_count()} cores; "
        f"peak RSS {rss_mib():.0f} MiB"
    )
    print(f"{'k':>3}  {'one at a time':>26}  {'batched':>26}  {'ratio':>6}  identical")
    for k in ks:
        cells = []
        for mode in modes:
            t, s = tokens[k, mode], seconds[k, mode]
            cells.append(f"{t / s:6.1f} tok/s ({t:4d} / {s:5.1f} s)")
        a, b = (tokens[k, m] / seconds[k, m] for m in modes)
        print(f"{k:>3}  {cells[0]:>26}  {cells[1]:>26}  {b / a:5.2f}x  {same[k]}/{k * rounds}")
    backend.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen", help="alias (qwen, smollm2) or a GGUF path")
    ap.add_argument("--ks", default="1,4,8", help="comma-separated k values")
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    ks = [int(x) for x in a.ks.split(",")]
    asyncio.run(main(a.model, ks, a.max_tokens, a.rounds, a.threads))
