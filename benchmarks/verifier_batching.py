"""Verifier batching: candidates/s scored in micro-batches against one at a time, in one run.

    .venv/bin/python benchmarks/verifier_batching.py [--batch 16] [--candidates 512]
        [--fixed-ms 20] [--per-item-ms 1] [--prm-candidates 32] [--threads 1] [--rounds 3]
        [--no-prm]

Two code paths of the verifier service, each with ``max_batch = --batch`` (batched) and
``max_batch = 1`` (one at a time, the worker before issue 15):

* ``kafka``: the Kafka worker (:func:`services.verifier.worker.run_verifier`) on an in-memory
  consumer that hands it the candidates in ``getmany`` batches of ``--batch`` and a producer
  that acknowledges at once (no broker: the scoring is what is measured);
* ``grpc``: the ``Verifier.Score`` handler (:class:`services.verifier.server.VerifierServicer`,
  its micro-batcher) with one concurrent call per candidate, one candidate each (no transport).

Backends: the sim scorer with a fixed-plus-per-item latency model (``--fixed-ms`` per call
plus ``--per-item-ms`` per candidate: a GPU PRM's shape; target >= 4x at batch 16), and the
CPU PRM code path (:class:`optscale.engines.scoring.prm.Backend`: chat template, windowing,
padding and one forward pass per micro-batch) over a randomly initialised 4-layer Llama token
classifier (hidden 256; ``--threads`` torch threads) with the SmolLM2 tokenizer — no PRM
weights ship on PyPI, so the figure is the code path's and this model's, not
Qwen2.5-Math-PRM-7B's. The PRM texts are the
recorded GSM8K pool's solutions (~300 tokens). Modes alternate between rounds (the machine is
shared); candidates/s is summed over the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optscale.engines.scoring.sim import Backend as SimScorer
from optscale.v1 import common_pb2, verifier_pb2
from services.verifier.server import VerifierServicer
from services.verifier.worker import run_verifier

POOL = Path(__file__).resolve().parent / "data" / "gsm8k50-qwen1.5b-confidence.jsonl.gz"


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes


class MemoryConsumer:
    """Hands out the queued candidates ``per_poll`` at a time; sets ``done`` when empty."""

    def __init__(self, values: list[bytes], per_poll: int, done: asyncio.Event) -> None:
        self.msgs = [Message("c", 0, i, b"q", v) for i, v in enumerate(values)]
        self.per_poll, self.done, self.at = per_poll, done, 0

    async def getmany(self, timeout_ms: int = 0, max_records: int | None = None) -> Any:
        from aiokafka import TopicPartition

        n = min(self.per_poll, max_records or self.per_poll)
        batch, self.at = self.msgs[self.at : self.at + n], self.at + n
        if not batch:
            self.done.set()
            await asyncio.sleep(0)
            return {}
        return {TopicPartition("c", 0): batch}

    async def commit(self, offsets: Any) -> None:
        return None


class AckingProducer:
    def __init__(self) -> None:
        self.sent = 0

    async def send(self, topic: str, value: bytes, key: bytes | None = None, **_: Any) -> Any:
        self.sent += 1
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


def candidates(n: int, texts: list[tuple[str, str]]) -> list[common_pb2.Candidate]:
    """``n`` candidates over 8 questions, cycling through ``texts`` (question, solution)."""
    out = []
    for i in range(n):
        question, text = texts[i % len(texts)]
        q = f"q{i % 8}"
        out.append(
            common_pb2.Candidate(
                question_id=q,
                sample_id=f"{q}/{i}",
                text=text,
                prompt=question,
                epoch=1,
                step_logprobs=[-0.2, -0.1],
                mean_logprob=-0.15,
                completion_tokens=300,
            )
        )
    return out


async def kafka_path(backend: Any, cands: list[common_pb2.Candidate], max_batch: int) -> int:
    done, stop = asyncio.Event(), asyncio.Event()
    consumer = MemoryConsumer([c.SerializeToString() for c in cands], max_batch, done)
    producer = AckingProducer()
    task = asyncio.create_task(
        run_verifier(backend, consumer, producer, stop=stop, max_batch=max_batch, max_wait_ms=0)
    )
    await done.wait()
    stop.set()
    await task
    return producer.sent


async def grpc_path(backend: Any, cands: list[common_pb2.Candidate], max_batch: int) -> int:
    servicer = VerifierServicer(backend, log=None, max_batch=max_batch, max_wait=0.002)
    try:
        calls = [servicer.Score(verifier_pb2.ScoreRequest(candidates=[c]), None) for c in cands]
        answers = await asyncio.gather(*calls)
    finally:
        await servicer.batcher.close()
    return sum(len(a.scored) for a in answers)


PATHS: dict[str, Callable[..., Any]] = {"kafka": kafka_path, "grpc": grpc_path}


def measure(backend: Any, cands: list[Any], batch: int, rounds: int) -> dict[str, dict[str, float]]:
    """candidates/s per path and mode, modes alternating first between rounds."""
    out: dict[str, dict[str, float]] = {}
    for name, path in PATHS.items():
        secs = {"batched": 0.0, "one_at_a_time": 0.0}
        for r in range(rounds):
            modes = [("batched", batch), ("one_at_a_time", 1)]
            for mode, size in modes if r % 2 == 0 else modes[::-1]:
                t0 = time.perf_counter()
                scored = asyncio.run(path(backend, cands, size))
                secs[mode] += time.perf_counter() - t0
                assert scored == len(cands), (name, mode, scored)
        rate = {m: rounds * len(cands) / s for m, s in secs.items()}
        out[name] = {**rate, "ratio": rate["batched"] / rate["one_at_a_time"]}
    return out


def prm_backend(batch: int, threads: int) -> Any:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForTokenClassification

    from optscale.engines.scoring.prm import SEPARATOR, Backend
    from optscale.models import resolve_dir

    tok = AutoTokenizer.from_pretrained(resolve_dir("smollm2"))
    tok.add_tokens([SEPARATOR], special_tokens=True)
    torch.manual_seed(0)
    torch.set_num_threads(threads)
    shape: dict[str, Any] = {
        "vocab_size": len(tok),
        "hidden_size": 256,
        "intermediate_size": 1024,
        "num_hidden_layers": 4,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
        "max_position_embeddings": 4096,
        "num_labels": 2,
        "pad_token_id": tok.pad_token_id or 0,
    }
    classifier: Any = LlamaForTokenClassification
    model = classifier(LlamaConfig(**shape)).eval()
    return Backend("random-llama-256x4", loaded=(model, tok), batch_size=batch)


def pool_texts(n: int) -> list[tuple[str, str]]:
    with gzip.open(POOL, "rt") as fh:
        rows = [json.loads(line) for _, line in zip(range(n), fh, strict=False)]
    return [(r["question"], r["text"]) for r in rows]


def show(title: str, figures: dict[str, dict[str, float]], batch: int) -> None:
    print(title)
    for name, f in figures.items():
        print(
            f"  {name:5s}  batched {f['batched']:9.1f} cand/s   one at a time "
            f"{f['one_at_a_time']:9.1f} cand/s   ratio {f['ratio']:5.2f}x (batch {batch})"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--candidates", type=int, default=512)
    ap.add_argument("--fixed-ms", type=float, default=20.0)
    ap.add_argument("--per-item-ms", type=float, default=1.0)
    ap.add_argument("--prm-candidates", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1, help="torch threads for the PRM")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-prm", action="store_true")
    a = ap.parse_args()
    sim = SimScorer(delay=a.fixed_ms / 1000, per_sample=a.per_item_ms / 1000)
    sim_cands = candidates(a.candidates, [("question", "step one\n\nstep two \\boxed{42}")])
    figures = {"sim": measure(sim, sim_cands, a.batch, a.rounds)}
    show(
        f"sim scorer, {a.fixed_ms:g} ms per call + {a.per_item_ms:g} ms per candidate, "
        f"{a.candidates} candidates x {a.rounds} rounds:",
        figures["sim"],
        a.batch,
    )
    ideal = (a.fixed_ms + a.per_item_ms) / (a.fixed_ms / a.batch + a.per_item_ms)
    print(f"  (the latency model's own bound: {ideal:.2f}x; target >= 4x)")
    if not a.no_prm:
        prm = prm_backend(a.batch, a.threads)
        prm_cands = candidates(a.prm_candidates, pool_texts(a.prm_candidates))
        figures["prm_cpu"] = measure(prm, prm_cands, a.batch, a.rounds)
        prm.close()
        show(
            f"CPU PRM code path (random 4-layer Llama, hidden 256; GSM8K solutions), "
            f"{a.prm_candidates} candidates x {a.rounds} rounds:",
            figures["prm_cpu"],
            a.batch,
        )
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(
        json.dumps(
            {
                k: {p: {m: round(v, 2) for m, v in f.items()} for p, f in fs.items()}
                for k, fs in figures.items()
            }
        )
    )


if __name__ == "__main__":
    main()
