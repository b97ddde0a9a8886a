"""The seams between the algorithm and the world.

The controller logic, the embedded solver and replay talk only to these interfaces. Each has
an in-process adapter (``optscale.inprocess``) and a real one in ``services/`` (grpc.aio,
aiokafka, redis-py asyncio).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from optscale.types import GeneratedSample, SamplingParams, ScoredSample


@dataclass(frozen=True, slots=True)
class GenerateRequest:
    """Ask for ``k`` samples of one question.

    Sample ids are ``f"{question_id}/{first_index + i}"``."""

    question_id: str
    prompt: str
    k: int
    params: SamplingParams
    first_index: int = 0


@dataclass(frozen=True, slots=True)
class Prior:
    """Predicted parameters of the truncated-normal score distribution of one question."""

    mu_bar: float
    sigma_bar: float
    model_version: str


class GeneratorClient(Protocol):
    """Streams finished samples. The open stream is the lease: closing it (``aclose``) or
    cancelling the task that iterates it aborts every unfinished sample of the request."""

    def generate(self, request: GenerateRequest) -> AsyncIterator[GeneratedSample]: ...


class VerifierClient(Protocol):
    async def score(
        self, prompt: str, samples: Sequence[GeneratedSample]
    ) -> list[ScoredSample]: ...


class PredictorClient(Protocol):
    async def predict(self, questions: Sequence[str]) -> list[Prior]: ...


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    key: str
    value: bytes
    headers: Mapping[str, bytes]
    partition: int = 0
    offset: int = 0


class EventBus(Protocol):
    """Keyed, ordered-per-key messages (Kafka in production, asyncio queues in process)."""

    async def publish(
        self, topic: str, key: str, value: bytes, headers: Mapping[str, bytes] | None = None
    ) -> None: ...

    def subscribe(self, topic: str, group: str) -> AsyncIterator[Message]: ...

    async def commit(self, message: Message) -> None: ...
