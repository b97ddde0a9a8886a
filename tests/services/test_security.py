"""TLS, mutual TLS and token auth on a real grpc.aio server (the generator with the sim
backend: a server-streaming method) with certificates generated in the test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from optscale.engines.generation.sim import Backend as Sim
from optscale.errors import InvalidArgumentError
from optscale.v1 import common_pb2, generator_pb2, generator_pb2_grpc
from services.common.security import Security, open_channel
from services.common.server import Server
from services.generator.server import SERVICE, GeneratorServicer
from tests.services.certs import make_pki

REQ = generator_pb2.GenerateRequest(
    question_id="q", prompt="p", k=2, params=common_pb2.SamplingParams(max_tokens=16)
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
async def start(log: Any) -> AsyncIterator[Callable[[Security], Any]]:
    servers: list[Server] = []

    async def go(sec: Security) -> int:
        server = Server([SERVICE], sec)
        servicer = GeneratorServicer(Sim(seed=0), log)
        generator_pb2_grpc.add_GeneratorServicer_to_server(servicer, server.server)
        servers.append(server)
        return await server.start("127.0.0.1", 0)

    yield go
    for s in servers:
        await s.stop(0)


async def _generate(port: int, sec: Security) -> list[Any]:
    async with open_channel(f"127.0.0.1:{port}", sec) as ch:
        stub = generator_pb2_grpc.GeneratorStub(ch)
        return [ev async for ev in stub.Generate(REQ, timeout=10)]


async def _code(port: int, sec: Security) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _generate(port, sec)
    return err.value.code()


def _server_tls(pki: Path, **kw: Any) -> Security:
    return Security(
        tls_cert=str(pki / "server.crt"),
        tls_key=str(pki / "server.key"),
        tls_ca=str(pki / "ca.crt"),
        **kw,
    )


async def test_tls(pki: Path, start: Any) -> None:
    port = await start(_server_tls(pki))
    assert len(await _generate(port, Security(tls_ca=str(pki / "ca.crt")))) == 2
    assert await _code(port, Security()) == grpc.StatusCode.UNAVAILABLE  # plaintext refused
    # a client that trusts another CA does not accept the server
    assert await _code(port, Security(tls_ca=str(pki / "rogue.crt"))) == (
        grpc.StatusCode.UNAVAILABLE
    )


async def test_mutual_tls(pki: Path, start: Any) -> None:
    port = await start(_server_tls(pki, tls_client_auth=True))
    ok = Security(
        tls_ca=str(pki / "ca.crt"),
        tls_cert=str(pki / "client.crt"),
        tls_key=str(pki / "client.key"),
    )
    assert len(await _generate(port, ok)) == 2
    no_cert = Security(tls_ca=str(pki / "ca.crt"))
    assert await _code(port, no_cert) == grpc.StatusCode.UNAVAILABLE
    rogue = Security(
        tls_ca=str(pki / "ca.crt"), tls_cert=str(pki / "rogue.crt"), tls_key=str(pki / "rogue.key")
    )
    assert await _code(port, rogue) == grpc.StatusCode.UNAVAILABLE


async def test_token_auth_and_open_health(pki: Path, start: Any, tmp_path: Path) -> None:
    port = await start(Security(auth_token="s3cret-token"))
    assert len(await _generate(port, Security(auth_token="s3cret-token"))) == 2
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")  # a mounted Secret, trailing newline and all
    assert len(await _generate(port, Security(auth_token_file=str(token_file)))) == 2
    assert await _code(port, Security()) == grpc.StatusCode.UNAUTHENTICATED
    assert await _code(port, Security(auth_token="wrong")) == grpc.StatusCode.UNAUTHENTICATED
    async with open_channel(f"127.0.0.1:{port}") as ch:  # probes carry no token
        r = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest())
        assert r.status == health_pb2.HealthCheckResponse.SERVING


async def test_tls_and_token_together(pki: Path, start: Any) -> None:
    port = await start(_server_tls(pki, auth_token="t0k"))
    client = Security(tls_ca=str(pki / "ca.crt"), auth_token="t0k")
    assert len(await _generate(port, client)) == 2
    no_token = Security(tls_ca=str(pki / "ca.crt"))
    assert await _code(port, no_token) == grpc.StatusCode.UNAUTHENTICATED


def test_config_from_env_is_validated(pki: Path) -> None:
    env = {
        "OPTSCALE_TLS_CERT": str(pki / "server.crt"),
        "OPTSCALE_TLS_KEY": str(pki / "server.key"),
        "OPTSCALE_TLS_CA": str(pki / "ca.crt"),
        "OPTSCALE_TLS_CLIENT_AUTH": "true",
        "OPTSCALE_AUTH_TOKEN": "abc",
    }
    sec = Security.from_env(env)
    assert sec.tls and sec.tls_client_auth and sec.token() == "abc"
    assert sec.describe() == {"tls": True, "mtls": True, "token_auth": True, "outgoing_tls": True}
    assert "abc" not in repr(sec.describe())
    with pytest.raises(InvalidArgumentError, match="TLS_CERT/KEY"):
        Security.from_env({"OPTSCALE_TLS_CERT": "x.crt"})
    with pytest.raises(InvalidArgumentError, match="CLIENT_AUTH"):
        Security.from_env({"OPTSCALE_TLS_CLIENT_AUTH": "1"})
    with pytest.raises(InvalidArgumentError, match="TLS_KEY"):
        Security(tls_cert=str(pki / "server.crt"), tls_key="/nope.key").server_credentials()


def test_a_ca_alone_is_not_logged_as_a_tls_server(pki: Path) -> None:
    ca_only = Security.from_env({"OPTSCALE_TLS_CA": str(pki / "ca.crt")})
    assert ca_only.server_credentials() is None  # the server is plaintext...
    assert ca_only.describe()["tls"] is False and ca_only.describe()["mtls"] is False
    assert ca_only.describe()["outgoing_tls"] is True  # ...its calls to others are TLS
    assert _server_tls(pki).describe()["tls"] is True


async def test_a_rotated_token_file_is_used_from_the_next_call(
    start: Any, tmp_path: Path
) -> None:
    import os

    secret = tmp_path / "token"
    secret.write_text("old-token\n")
    port = await start(Security(auth_token_file=str(secret)))
    follower = Security(auth_token_file=str(secret))  # a client reading the same Secret
    async with open_channel(f"127.0.0.1:{port}", follower) as ch:
        stub = generator_pb2_grpc.GeneratorStub(ch)
        assert len([ev async for ev in stub.Generate(REQ, timeout=10)]) == 2
        staged = tmp_path / "token.new"
        staged.write_text("new-token\n")
        os.replace(staged, secret)  # rotation: a new file under the same name
        assert len(await _generate(port, Security(auth_token="new-token"))) == 2
        assert await _code(port, Security(auth_token="old-token")) == (
            grpc.StatusCode.UNAUTHENTICATED
        )
        # the long-lived channel of the following client sends the new token too
        assert len([ev async for ev in stub.Generate(REQ, timeout=10)]) == 2
        secret.unlink()  # mid-rotation: the last good token stays in use
        assert len(await _generate(port, Security(auth_token="new-token"))) == 2
        assert len([ev async for ev in stub.Generate(REQ, timeout=10)]) == 2


def test_an_empty_or_missing_token_file_is_an_error_not_open_access(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(InvalidArgumentError, match="is empty"):
        Security(auth_token_file=str(empty)).server_interceptors()
    with pytest.raises(InvalidArgumentError, match="cannot read"):
        Security(auth_token_file=str(tmp_path / "missing")).server_interceptors()
