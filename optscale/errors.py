"""One exception hierarchy for the whole package.

Every error that bad input can cause is an :class:`OptScaleError`; the message names the bad
field and value so a caller (CLI, gRPC handler, Kafka consumer) can report it as is.
"""

from __future__ import annotations


class OptScaleError(Exception):
    """Base class of every error optscale raises on purpose."""


class InvalidArgumentError(OptScaleError, ValueError):
    """A parameter is outside its domain (alpha, s_min, n_max, sampling params, ...)."""

    def __init__(self, field: str, value: object, why: str) -> None:
        self.field = field
        self.value = value
        self.why = why
        super().__init__(f"invalid {field}={value!r}: {why}")


class InvalidScoreError(InvalidArgumentError):
    """A verifier score is NaN, infinite or outside [0, 1]."""

    def __init__(self, value: object, why: str = "scores must be finite and in [0, 1]") -> None:
        super().__init__("score", value, why)


class AlreadyExistsError(OptScaleError):
    """A name is taken: e.g. a question id already used by a different question."""


class DataError(OptScaleError):
    """An input file (dataset, pool, questions) is missing or malformed.

    ``where`` names the file and, when known, the 1-based line.
    """

    def __init__(self, where: str, why: str) -> None:
        self.where = where
        self.why = why
        super().__init__(f"{where}: {why}")


class ModelNotFoundError(OptScaleError):
    """A model file or packaged model is not installed."""


class BackendUnavailableError(OptScaleError):
    """A model server a backend talks to is unreachable or failing (retry later)."""
