"""The pool data model: questions with their recorded samples, and pure operations on pools.

A *pool* is every sample that was generated and scored for a set of questions. Replay re-runs
stopping policies offline on pools, so a pool must hold, per sample, what a policy sees (answer,
score, tokens) and what the report needs (correct or not).

No I/O here (reading and writing pool files is :mod:`optscale.pools`). :func:`merge_pools` keeps
question ids unique by renaming a repeated id to ``"<pool name>:<id>"``; a single pool is returned
as is. :func:`split_pool` assigns each question to dev or test by a seeded SHA-256 of its id, so a
question's side never changes when the pool grows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "Pool",
    "PoolQuestion",
    "PoolSample",
    "in_dev_split",
    "merge_pools",
    "split_pool",
]


@dataclass(frozen=True, slots=True)
class PoolSample:
    """One recorded sample, as replay needs it."""

    sample_id: str
    answer: str | None
    correct: bool
    score: float
    tokens: int
    step_scores: tuple[float, ...] = ()
    gen_seconds: float = 0.0
    step_token_ends: tuple[int, ...] = ()  # tokens decoded by the end of each step, if recorded


@dataclass(slots=True)
class PoolQuestion:
    question_id: str
    reference: str | None
    samples: list[PoolSample] = field(default_factory=list)
    question: str | None = None


@dataclass(slots=True)
class Pool:
    name: str
    questions: list[PoolQuestion]

    @property
    def min_samples(self) -> int:
        return min((len(q.samples) for q in self.questions), default=0)

    @property
    def max_samples(self) -> int:
        return max((len(q.samples) for q in self.questions), default=0)

    def n_samples(self) -> int:
        return sum(len(q.samples) for q in self.questions)

    def summary(self) -> str:
        n = self.n_samples()
        acc = sum(s.correct for q in self.questions for s in q.samples) / n if n else 0.0
        return (
            f"{self.name}: {len(self.questions)} questions, {n} samples "
            f"({self.min_samples}-{self.max_samples} per question), "
            f"{100 * acc:.1f}% of samples correct"
        )


def merge_pools(pools: Sequence[Pool]) -> Pool:
    if len(pools) == 1:
        return pools[0]
    questions: list[PoolQuestion] = []
    seen: set[str] = set()
    for pool in pools:
        for q in pool.questions:
            qid = q.question_id if q.question_id not in seen else f"{pool.name}:{q.question_id}"
            seen.add(qid)
            questions.append(
                PoolQuestion(qid, q.reference, q.samples, q.question) if qid != q.question_id else q
            )
    return Pool("+".join(p.name for p in pools), questions)


def in_dev_split(question_id: str, *, dev_fraction: float = 0.5, seed: int = 0) -> bool:
    """Deterministic dev/test assignment of one question by a seeded hash of its id."""
    h = hashlib.sha256(f"{seed}:{question_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2.0**64 < dev_fraction


def split_pool(pool: Pool, *, dev_fraction: float = 0.5, seed: int = 0) -> tuple[Pool, Pool]:
    """Split into (dev, test) by question id hash; stable when the pool grows."""
    dev = [
        q
        for q in pool.questions
        if in_dev_split(q.question_id, dev_fraction=dev_fraction, seed=seed)
    ]
    test = [
        q
        for q in pool.questions
        if not in_dev_split(q.question_id, dev_fraction=dev_fraction, seed=seed)
    ]
    return Pool(f"{pool.name}[dev]", dev), Pool(f"{pool.name}[test]", test)
