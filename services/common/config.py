"""One typed config object per service, from env (``OPTSCALE_<SERVICE>_<FIELD>``) with defaults.

Shared fields (``OPTSCALE_KAFKA_BOOTSTRAP``, ``OPTSCALE_REDIS_URL``, ``OPTSCALE_LOG_LEVEL``) are
read without the service part. Bad values raise :class:`InvalidArgumentError` naming the
variable.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any, TypeVar, get_args, get_type_hints

from optscale.errors import InvalidArgumentError

T = TypeVar("T")
SHARED = {"kafka_bootstrap", "redis_url", "log_level"}


def _convert(name: str, raw: str, typ: Any) -> Any:
    try:
        if typ is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if typ is int:
            return int(raw)
        if typ is float:
            return float(raw)
    except ValueError as exc:
        raise InvalidArgumentError(name, raw, f"not a valid {typ.__name__}") from exc
    return raw


def _base_type(typ: Any) -> Any:
    """``int`` for ``int`` and ``int | None``; ``str`` for anything unusual."""
    args = [a for a in get_args(typ) if a is not type(None)] or [typ]
    return args[0] if args[0] in (bool, int, float, str) else str


def from_env(cls: type[T], service: str, env: Mapping[str, str] | None = None, **over: Any) -> T:
    """Build ``cls`` (a dataclass) from the environment; keyword overrides (flags) win."""
    env = os.environ if env is None else env
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        var = (
            f"OPTSCALE_{f.name.upper()}"
            if f.name in SHARED
            else (f"OPTSCALE_{service.upper()}_{f.name.upper()}")
        )
        if f.name in over and over[f.name] is not None:
            values[f.name] = over[f.name]
        elif var in env:
            values[f.name] = _convert(var, env[var], _base_type(hints[f.name]))
    return cls(**values)
