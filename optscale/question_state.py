"""What a stopping policy looks at and what it answers: the per-question state (immutable,
updated one scored sample at a time), the :class:`Decision`, the :class:`Policy` interface and
the ways of choosing the answer (best score, majority vote, score-weighted vote).

Answers vote by :func:`optscale.grading.normalize_answer`; samples without an answer do not
vote. Ties: the earliest sample (best score), the answer whose best sample scores higher
(votes). Re-exported by :mod:`optscale.policies`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Protocol

from optscale.errors import InvalidArgumentError
from optscale.grading import normalize_answer
from optscale.stats import Fit, SuffStats

__all__ = [
    "Chosen",
    "Decision",
    "Observation",
    "Policy",
    "QuestionState",
    "Vote",
    "choose_best",
    "choose_majority",
    "choose_weighted",
    "int_at_least",
    "top_votes",
]


def int_at_least(name: str, v: object, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise InvalidArgumentError(name, v, f"must be an integer >= {lo}")
    return v


@dataclass(frozen=True, slots=True)
class Observation:
    """One scored sample."""

    sample_id: str
    answer: str | None
    score: float
    tokens: int


@dataclass(frozen=True, slots=True)
class Chosen:
    """The sample a policy answers with."""

    sample_id: str
    answer: str | None
    score: float


@dataclass(frozen=True, slots=True)
class Vote:
    count: int
    score_sum: float
    best: Chosen


@dataclass(frozen=True, slots=True)
class QuestionState:
    """Everything a policy may look at, for one question. Immutable; O(#answers) per update.

    ``n_dispatched`` counts samples asked for, ``n_failed`` those that failed without a
    score; scored samples are ``stats.n``. Observing a sample id twice is a no-op.
    """

    n_dispatched: int = 0
    n_failed: int = 0
    tokens: int = 0
    stats: SuffStats = SuffStats()  # noqa: RUF009 (immutable)
    best: Chosen | None = None
    votes: Mapping[str, Vote] = field(default_factory=lambda: MappingProxyType({}))
    answers: tuple[str | None, ...] = ()  # normalized answers in arrival order
    seen: frozenset[str] = frozenset()
    last: Chosen | None = None  # the latest scored sample (sequential rounds answer with it)

    @property
    def n_scored(self) -> int:
        return self.stats.n

    @property
    def n_live(self) -> int:
        """Samples that count towards a target: scored plus in flight."""
        return self.n_dispatched - self.n_failed

    @property
    def n_inflight(self) -> int:
        return max(0, self.n_dispatched - self.n_failed - self.n_scored)

    def dispatched(self, k: int) -> QuestionState:
        return replace(self, n_dispatched=self.n_dispatched + int_at_least("k", k, 0))

    def failed(self, k: int = 1) -> QuestionState:
        n_failed = self.n_failed + int_at_least("k", k, 0)
        return replace(
            self, n_failed=n_failed, n_dispatched=max(self.n_dispatched, n_failed + self.n_scored)
        )

    def observe(self, obs: Observation) -> QuestionState:
        if obs.sample_id in self.seen:
            return self
        if isinstance(obs.tokens, bool) or not isinstance(obs.tokens, int) or obs.tokens < 0:
            raise InvalidArgumentError("tokens", obs.tokens, "must be an integer >= 0")
        stats = self.stats.add(obs.score)  # validates the score
        me = Chosen(obs.sample_id, obs.answer, float(obs.score))
        best = self.best if self.best is not None and self.best.score >= me.score else me
        key = normalize_answer(obs.answer) if obs.answer is not None else None
        votes = self.votes
        if key:
            old = votes.get(key)
            vote = (
                Vote(1, me.score, me)
                if old is None
                else Vote(
                    old.count + 1,
                    old.score_sum + me.score,
                    old.best if old.best.score >= me.score else me,
                )
            )
            votes = MappingProxyType({**votes, key: vote})
        return replace(
            self,
            n_dispatched=max(self.n_dispatched, stats.n + self.n_failed),
            tokens=self.tokens + obs.tokens,
            stats=stats,
            best=best,
            votes=votes,
            answers=(*self.answers, key or None),
            seen=self.seen | {obs.sample_id},
            last=me,
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """Stop (answer ``chosen``) or keep ``target`` samples alive (scored + in flight)."""

    stop: bool
    target: int
    chosen: Chosen | None
    reason: str
    n_star: int | None = None
    fit: Fit | None = None
    # expected gain in P(correct) per expected token of one more sample (inf before any score;
    # None: the policy does not price samples) — what a batch allocator ranks questions by
    priority: float | None = None


class Policy(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def n_max(self) -> int: ...

    def decide(self, state: QuestionState) -> Decision: ...


# --------------------------------------------------------------------------- choosing


def choose_best(state: QuestionState) -> Chosen | None:
    return state.best


def top_votes(state: QuestionState, weighted: bool) -> list[Vote]:
    def key(v: Vote) -> tuple[float, float]:
        return (v.score_sum if weighted else v.count, v.best.score)

    return sorted(state.votes.values(), key=key, reverse=True)


def choose_majority(state: QuestionState) -> Chosen | None:
    top = top_votes(state, weighted=False)
    return top[0].best if top else state.best


def choose_weighted(state: QuestionState) -> Chosen | None:
    top = top_votes(state, weighted=True)
    return top[0].best if top else state.best
