"""In-process adapters of the seams in :mod:`optscale.ports` (embedded mode and unit tests).

* :class:`InProcessGenerator` — a :class:`~optscale.ports.GeneratorClient` over a generator
  backend object (``optscale/engines/generation/*``: ``async generate(request)`` yielding
  finished samples). Closing the stream (``aclose``) or cancelling the consuming task aborts
  the unfinished samples, exactly as cancelling the gRPC stream does.
* :class:`InProcessVerifier` — a :class:`~optscale.ports.VerifierClient` over a verifier
  backend (``async score_batch(items)``).

No grpc, aiokafka or redis imports here; backends are imported lazily by :func:`make_generator`
/ :func:`make_verifier`.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from optscale.errors import InvalidArgumentError
from optscale.ports import GenerateRequest
from optscale.types import GeneratedSample, ScoredSample


class InProcessGenerator:
    """GeneratorClient over an in-process backend."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    async def generate(self, request: GenerateRequest) -> AsyncIterator[GeneratedSample]:
        stream = self.backend.generate(request)
        try:
            async for sample in stream:
                yield sample
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()

    async def close(self) -> None:
        close = getattr(self.backend, "close", None)
        if close is not None:
            res = close()
            if inspect.isawaitable(res):
                await res


class InProcessVerifier:
    """VerifierClient over an in-process backend with ``score_batch``."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    async def score(self, prompt: str, samples: Sequence[GeneratedSample]) -> list[ScoredSample]:
        if not samples:
            return []
        out = await self.backend.score_batch([(prompt, s) for s in samples])
        result: list[ScoredSample] = []
        for s, r in zip(samples, out, strict=True):
            if isinstance(r, ScoredSample):
                result.append(r)
            elif isinstance(r, int | float):
                result.append(ScoredSample(s, float(r)))
            else:  # (score, step_scores)
                score, steps = r
                result.append(ScoredSample(s, float(score), tuple(steps)))
        return result


def make_generator(kind: str, **options: Any) -> InProcessGenerator:
    """``kind``: llamacpp | hf | sim; options go to the backend's constructor."""
    if kind == "llamacpp":
        from optscale.engines.generation import llamacpp as mod
    elif kind == "hf":
        from optscale.engines.generation import hf as mod  # type: ignore[no-redef]
    elif kind == "sim":
        from optscale.engines.generation import sim as mod  # type: ignore[no-redef]
    else:
        raise InvalidArgumentError("generator", kind, "one of llamacpp, hf, sim")
    return InProcessGenerator(_construct(mod, options))


def make_verifier(kind: str, **options: Any) -> InProcessVerifier:
    """``kind``: confidence | sim | prm."""
    if kind == "confidence":
        from optscale.engines.scoring import confidence as mod
    elif kind == "sim":
        from optscale.engines.scoring import sim as mod  # type: ignore[no-redef]
    elif kind == "prm":
        from optscale.engines.scoring import prm as mod  # type: ignore[no-redef]
    else:
        raise InvalidArgumentError("verifier", kind, "one of confidence, sim, prm")
    return InProcessVerifier(_construct(mod, options))


def _construct(mod: Any, options: Mapping[str, Any]) -> Any:
    """Build the backend a module exposes (``make_backend(**kw)`` or ``Backend(**kw)``),
    passing only the options its signature accepts."""
    factory = getattr(mod, "make_backend", None) or getattr(mod, "Backend", None)
    if factory is None:
        raise InvalidArgumentError("backend", mod.__name__, "module has no Backend/make_backend")
    params: Mapping[str, inspect.Parameter]
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        kw = {k: v for k, v in options.items() if v is not None}
    else:
        kw = {k: v for k, v in options.items() if k in params and v is not None}
    return factory(**kw)
