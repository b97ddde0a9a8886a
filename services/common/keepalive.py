"""gRPC keepalive, so that a peer that stopped answering (SIGSTOPped, frozen node, black-holed
network) is noticed in seconds instead of when TCP gives up (minutes to hours).

Every ``interval_s`` each side sends an HTTP/2 PING on an otherwise quiet connection; a PING
not acknowledged within ``timeout_s`` closes the connection, which fails its calls with
``UNAVAILABLE`` (the controller's lease then asks another generator for the same sample ids,
and a generator aborts the samples of a controller that went silent). Configured for every
service by ``OPTSCALE_GRPC_KEEPALIVE_SECONDS`` (default 20; 0 = off) and
``OPTSCALE_GRPC_KEEPALIVE_TIMEOUT_SECONDS`` (default 10). A server never refuses a client's
PINGs (no ``too_many_pings`` GOAWAY), so clients may use a shorter interval than servers."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from optscale.errors import InvalidArgumentError

KEEPALIVE_S = 20.0
KEEPALIVE_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Keepalive:
    interval_s: float = KEEPALIVE_S  # 0 = no keepalive PINGs
    timeout_s: float = KEEPALIVE_TIMEOUT_S

    def __post_init__(self) -> None:
        if not self.interval_s >= 0:
            raise InvalidArgumentError("keepalive interval_s", self.interval_s, "must be >= 0")
        if not self.timeout_s > 0:
            raise InvalidArgumentError("keepalive timeout_s", self.timeout_s, "must be > 0")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Keepalive:
        env = os.environ if env is None else env
        values = []
        for key, default in (
            ("KEEPALIVE_SECONDS", KEEPALIVE_S),
            ("KEEPALIVE_TIMEOUT_SECONDS", KEEPALIVE_TIMEOUT_S),
        ):
            raw = env.get(f"OPTSCALE_GRPC_{key}", "")
            try:
                values.append(float(raw) if raw else default)
            except ValueError:
                why = "must be a number"
                raise InvalidArgumentError(f"OPTSCALE_GRPC_{key}", raw, why) from None
        return cls(values[0], values[1])

    def _ms(self, seconds: float) -> int:
        return max(1, round(seconds * 1000))

    def client_options(self) -> list[tuple[str, int]]:
        """Channel options: PING every interval (also while a stream waits for data and
        while no call is open), give up after the timeout."""
        if not self.interval_s:
            return []
        return [
            ("grpc.keepalive_time_ms", self._ms(self.interval_s)),
            ("grpc.keepalive_timeout_ms", self._ms(self.timeout_s)),
            # gRPC >= 1.6x waits for any PING's ack this long (default 60 s) before a keepalive
            # timeout can close the connection: without it a dead peer takes a minute
            ("grpc.http2.ping_timeout_ms", self._ms(self.timeout_s)),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),  # default 2: a quiet stream stops pinging
        ]

    def server_options(self) -> list[tuple[str, int]]:
        """Server options: PING clients the same way, and accept their PINGs at that rate
        (by default a server answers a client that PINGs more often than every 5 minutes
        without data with GOAWAY ``too_many_pings``)."""
        if not self.interval_s:
            return []
        return [
            ("grpc.keepalive_time_ms", self._ms(self.interval_s)),
            ("grpc.keepalive_timeout_ms", self._ms(self.timeout_s)),
            ("grpc.http2.ping_timeout_ms", self._ms(self.timeout_s)),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_recv_ping_interval_without_data_ms", self._ms(self.interval_s)),
            ("grpc.http2.max_ping_strikes", 0),  # 0 = never GOAWAY for PINGs
            ("grpc.http2.max_pings_without_data", 0),
        ]
