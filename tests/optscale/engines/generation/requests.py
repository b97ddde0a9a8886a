"""Request and collection helpers shared by the backend tests."""

from __future__ import annotations

from typing import Any

from optscale.ports import GenerateRequest
from optscale.types import SamplingParams


def make_request(
    k: int = 2, max_tokens: int = 24, seed: int | None = 7, **kw: Any
) -> GenerateRequest:
    params = SamplingParams(max_tokens=max_tokens, seed=seed)
    return GenerateRequest("q1", "What is 2 + 3?", k, params, **kw)


async def collect(backend: Any, req: GenerateRequest) -> list[Any]:
    return [s async for s in backend.generate(req)]
