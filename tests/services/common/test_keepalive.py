"""Keepalive settings (``OPTSCALE_GRPC_KEEPALIVE_*``) and the lease deadline's input checks;
that they notice a SIGSTOPped generator is tests/integration/test_lease_keepalive.py."""

from __future__ import annotations

import pytest

from optscale.errors import InvalidArgumentError
from services.common.keepalive import Keepalive
from services.controller.clients import GrpcGenerator


def test_settings_come_from_the_environment() -> None:
    assert Keepalive.from_env({}) == Keepalive(20.0, 10.0)
    env = {"OPTSCALE_GRPC_KEEPALIVE_SECONDS": "2", "OPTSCALE_GRPC_KEEPALIVE_TIMEOUT_SECONDS": "0.5"}
    ka = Keepalive.from_env(env)
    client = dict(ka.client_options())
    assert client["grpc.keepalive_time_ms"] == 2000
    # both timeouts: gRPC otherwise waits 60 s for a PING's ack whatever keepalive_timeout says
    assert client["grpc.keepalive_timeout_ms"] == client["grpc.http2.ping_timeout_ms"] == 500
    assert client["grpc.http2.max_pings_without_data"] == 0  # keep pinging a quiet stream
    server = dict(ka.server_options())
    assert server["grpc.http2.max_ping_strikes"] == 0  # never GOAWAY a pinging client
    assert server["grpc.http2.min_recv_ping_interval_without_data_ms"] == 2000


def test_zero_turns_keepalive_off() -> None:
    ka = Keepalive.from_env({"OPTSCALE_GRPC_KEEPALIVE_SECONDS": "0"})
    assert ka.client_options() == [] and ka.server_options() == []


@pytest.mark.parametrize(
    "env",
    [
        {"OPTSCALE_GRPC_KEEPALIVE_SECONDS": "soon"},
        {"OPTSCALE_GRPC_KEEPALIVE_SECONDS": "-1"},
        {"OPTSCALE_GRPC_KEEPALIVE_TIMEOUT_SECONDS": "0"},
        {"OPTSCALE_GRPC_KEEPALIVE_TIMEOUT_SECONDS": "nan"},
    ],
)
def test_bad_settings_are_refused_by_name(env: dict[str, str]) -> None:
    with pytest.raises(InvalidArgumentError, match=r"(?i)keepalive"):
        Keepalive.from_env(env)


def test_a_negative_lease_deadline_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="deadline"):
        GrpcGenerator("127.0.0.1:1", deadline_s=-1)
