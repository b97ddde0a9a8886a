"""The seams between the algorithm and the world.

The embedded solver talks to :class:`GeneratorClient` and :class:`VerifierClient`
(in-process adapters in :mod:`optscale.inprocess`). The controller talks to
:class:`StateStore`, :class:`Publisher`, :class:`LeaseGenerator` and
:class:`PredictorClient`: the real adapters (redis-py + Lua, aiokafka, grpc.aio) are in
``services/``, in-memory ones in :mod:`optscale.memory`, so the controller's logic is tested
without servers and the same tests run against the real ones.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Protocol

from optscale.config import QuestionConfig
from optscale.policies import Observation
from optscale.pruning import PruneSpec
from optscale.stats import DEFAULT_TAU_MU, DEFAULT_TAU_SIGMA
from optscale.types import GeneratedSample, SamplingParams, ScoredSample


class StepJudge(Protocol):
    """Prefix pruning in the engine: a generator that knows a sample's steps while it decodes
    calls the judge at each step end (a blank line) with the sample's id and the mean token
    log-probs of its steps so far; ``True`` aborts the sample there (it comes back with
    ``finish_reason="pruned"``, the tokens decoded by then and no answer). Called from the
    generator's decode thread. A generator without step log-probs never calls it."""

    def __call__(self, sample_id: str, step_logprobs: Sequence[float]) -> bool: ...


@dataclass(frozen=True, slots=True)
class GenerateRequest:
    """Ask for ``k`` samples of one question.

    Sample ids are ``f"{question_id}/{first_index + i}"``; sample ``i`` uses ``params.seed +
    i`` when a seed is set. ``step_judge``: in-process only (it is not sent over gRPC);
    ``pruning``: prefix pruning as the controller sends it over gRPC (the generator service
    turns it into a ``step_judge`` for engines that judge step ends)."""

    question_id: str
    prompt: str
    k: int
    params: SamplingParams
    first_index: int = 0
    step_judge: StepJudge | None = field(default=None, compare=False, repr=False)
    pruning: PruneSpec | None = None


@dataclass(frozen=True, slots=True)
class Prior:
    """Predicted parameters of the truncated-normal score distribution of one question, and
    how far off such predictions are (``tau_*``: the predictor's measured RMSE on held-out
    questions, the widths of OptScale^t's Gaussian prior; defaults when none was measured)."""

    mu_bar: float
    sigma_bar: float
    model_version: str
    tau_mu: float = DEFAULT_TAU_MU
    tau_sigma: float = DEFAULT_TAU_SIGMA


class GeneratorClient(Protocol):
    """Streams finished samples. The open stream is the lease: closing it (``aclose``) or
    cancelling the task that iterates it aborts every unfinished sample of the request."""

    def generate(self, request: GenerateRequest) -> AsyncIterator[GeneratedSample]: ...


class LeaseGenerator(Protocol):
    """The controller's generator: candidates travel through the event bus, the stream only
    reports the ids of finished samples. Cancelling the iterating task aborts the rest."""

    def generate(self, request: GenerateRequest, *, epoch: int) -> AsyncIterator[str]: ...


class VerifierClient(Protocol):
    async def score(
        self, prompt: str, samples: Sequence[GeneratedSample]
    ) -> list[ScoredSample]: ...


class PredictorClient(Protocol):
    async def predict(self, questions: Sequence[str]) -> list[Prior]: ...


class Publisher(Protocol):
    """Keyed, ordered-per-key messages. ``acked``: return only once the broker has them."""

    async def __call__(
        self,
        topic: str,
        key: str,
        value: bytes,
        reason: str | None = None,
        acked: bool = False,
    ) -> None: ...


# --------------------------------------------------------------------------- state store


class Outcome(IntEnum):
    """What a state-store transition did (the Redis scripts return these codes)."""

    DUPLICATE = 0  # this sample id was applied before: nothing changed
    APPLIED = 1
    LATE = 2  # the question is final, or has N_max scores: recorded, not counted
    STALE = 3  # a sample of an older owner epoch, forgotten when this owner claimed it
    FENCED = -1  # a newer owner holds the question: stop touching it
    MISSING = -2  # no such question
    NOT_ACTIVE = -3  # finished already
    OVER_N_MAX = -4  # the dispatch would exceed N_max live samples: nothing reserved


@dataclass(frozen=True, slots=True)
class Applied:
    """A score or dispatch transition: its outcome and, when samples were reserved, the first
    reserved index."""

    outcome: Outcome
    first_index: int | None = None


@dataclass(frozen=True, slots=True)
class ScoreWrite:
    """A score to apply: the observation, the owner epoch its sample was dispatched under
    (0: unknown) and, when the score leads to more samples, how many to reserve in the same
    transition (``dispatch_k``, within ``n_max`` live samples)."""

    observation: Observation
    sample_epoch: int = 0
    dispatch_k: int = 0
    n_max: int = 0


@dataclass(frozen=True, slots=True)
class StoredQuestion:
    """One question as the store has it: enough to resume its loop."""

    question_id: str
    status: str  # "active" | "done" | "failed" | "cancelled"
    epoch: int
    partition: int
    config: QuestionConfig
    n_dispatched: int
    n_failed: int
    n_scored: int
    next_index: int
    tokens: int
    observations: tuple[Observation, ...]
    result: dict[str, Any] | None


class StateStore(Protocol):
    """Per-question state shared by the controllers. Every transition is atomic, idempotent by
    sample id and fenced by the owner epoch (a write with an older epoch than the stored one
    is refused with ``FENCED``)."""

    async def new_epoch(self) -> int: ...

    async def create(self, q: str, epoch: int, config: QuestionConfig, partition: int) -> bool: ...

    async def claim(self, q: str, epoch: int, *, forget_inflight: bool = False) -> Outcome: ...

    async def dispatch(self, q: str, epoch: int, k: int, n_max: int) -> Applied: ...

    async def apply_score(self, q: str, epoch: int, write: ScoreWrite) -> Applied: ...

    async def apply_failure(
        self, q: str, epoch: int, sample_id: str, *, sample_epoch: int = 0
    ) -> Outcome: ...

    async def finalize(
        self, q: str, epoch: int, status: str, result: dict[str, Any], partition: int
    ) -> Outcome: ...

    async def active(self, partition: int) -> list[str]: ...

    async def get(self, q: str) -> StoredQuestion | None: ...

    async def batch_spent(self, batch_id: str) -> int:
        """Completion tokens charged to a batch's token budget so far (0 for a new batch)."""
        ...

    async def batch_charge(self, batch_id: str, tokens: int) -> int:
        """Add ``tokens`` to the batch's spent count (atomic); return the new count."""
        ...
