"""Transport security for every gRPC server and client, from the environment.

* TLS: ``OPTSCALE_TLS_CERT`` / ``OPTSCALE_TLS_KEY`` (PEM files: this process's certificate,
  served by servers and presented by clients), ``OPTSCALE_TLS_CA`` (PEM: the CA that signs
  peers; clients verify servers with it). ``OPTSCALE_TLS_CLIENT_AUTH=1`` makes servers require
  a client certificate signed by that CA (mutual TLS). ``OPTSCALE_TLS_SERVER_NAME`` overrides
  the name a client checks in the server certificate (e.g. one cert for a whole Service).
* Token auth: ``OPTSCALE_AUTH_TOKEN`` or ``OPTSCALE_AUTH_TOKEN_FILE`` (a mounted Secret):
  servers reject calls whose ``authorization: Bearer <token>`` metadata does not match
  (``UNAUTHENTICATED``); clients attach it. ``grpc.health.v1.Health`` stays open so that
  Kubernetes gRPC probes (which cannot send metadata) keep working. The file is re-read when
  it changes (a rotated Secret; checked with one ``stat`` per call): servers and clients use
  the new token from the next call on, without a restart. An empty or unreadable file is an
  error at start; later, the last good token stays in use.

Nothing here is ever logged; :meth:`Security.describe` says what is on without values. A
server serves TLS only with a certificate (``OPTSCALE_TLS_CERT``/``_KEY``): a CA alone only
makes this process's *outgoing* calls TLS, and the log says so.
Kafka SASL/SSL settings are in :mod:`services.common.kafka`. Redis AUTH/ACL/TLS: the Redis URL
(``redis://user:password@host:6379/0``; ``rediss://…?ssl_ca_certs=/path/ca.crt`` for TLS), or
the URL without credentials plus ``OPTSCALE_REDIS_USERNAME`` / ``OPTSCALE_REDIS_PASSWORD``
(e.g. the URL in a ConfigMap, the password in a Secret) — see :func:`redis_client`.
"""

from __future__ import annotations

import hmac
import os
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from optscale.errors import InvalidArgumentError

OPEN_METHODS = ("/grpc.health.v1.Health/",)


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InvalidArgumentError(what, path, f"cannot read: {exc.strerror or exc}") from exc


@dataclass(frozen=True, slots=True)
class Security:
    tls_cert: str = ""
    tls_key: str = ""
    tls_ca: str = ""
    tls_client_auth: bool = False
    tls_server_name: str = ""
    auth_token: str = ""
    auth_token_file: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Security:
        env = os.environ if env is None else env

        def get(key: str) -> str:
            return env.get(f"OPTSCALE_{key}", "")

        sec = cls(
            tls_cert=get("TLS_CERT"),
            tls_key=get("TLS_KEY"),
            tls_ca=get("TLS_CA"),
            tls_client_auth=get("TLS_CLIENT_AUTH").lower() in ("1", "true", "yes", "on"),
            tls_server_name=get("TLS_SERVER_NAME"),
            auth_token=get("AUTH_TOKEN"),
            auth_token_file=get("AUTH_TOKEN_FILE"),
        )
        sec.validate()
        return sec

    def validate(self) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise InvalidArgumentError("OPTSCALE_TLS_CERT/KEY", "<one set>", "set both or neither")
        if self.tls_client_auth and not (self.tls_ca and self.tls_cert):
            raise InvalidArgumentError(
                "OPTSCALE_TLS_CLIENT_AUTH", True, "needs OPTSCALE_TLS_CA, _CERT and _KEY"
            )

    @property
    def tls(self) -> bool:
        """Outgoing calls use TLS (a CA to verify servers, or a client certificate)."""
        return bool(self.tls_cert or self.tls_ca)

    @property
    def serves_tls(self) -> bool:
        """Servers use TLS: only with a certificate (a CA alone does not make a server TLS)."""
        return bool(self.tls_cert)

    @property
    def token_auth(self) -> bool:
        return bool(self.auth_token or self.auth_token_file)

    def token_source(self) -> TokenSource:
        return TokenSource(self.auth_token, self.auth_token_file)

    def token(self) -> str:
        """The token now (read from the file when one is configured)."""
        return self.token_source().current() if self.token_auth else ""

    def describe(self) -> dict[str, Any]:
        """What a server has switched on, for its "serving" log: never a value."""
        return {
            "tls": self.serves_tls,
            "mtls": self.serves_tls and self.tls_client_auth,
            "token_auth": self.token_auth,
            "outgoing_tls": self.tls,
        }

    # -- servers ---------------------------------------------------------------------------
    def server_credentials(self) -> grpc.ServerCredentials | None:
        if not self.tls_cert:
            return None
        return grpc.ssl_server_credentials(
            [(_read(self.tls_key, "OPTSCALE_TLS_KEY"), _read(self.tls_cert, "OPTSCALE_TLS_CERT"))],
            root_certificates=_read(self.tls_ca, "OPTSCALE_TLS_CA") if self.tls_ca else None,
            require_client_auth=self.tls_client_auth,
        )

    def server_interceptors(self) -> list[Any]:
        if not self.token_auth:
            return []
        source = self.token_source()
        source.current()  # fail at start on an unreadable or empty file
        return [TokenAuthInterceptor(source)]

    # -- clients ---------------------------------------------------------------------------
    def channel_credentials(self) -> grpc.ChannelCredentials | None:
        if not self.tls:
            return None
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.tls_ca, "OPTSCALE_TLS_CA") if self.tls_ca else None,
            private_key=_read(self.tls_key, "OPTSCALE_TLS_KEY") if self.tls_cert else None,
            certificate_chain=_read(self.tls_cert, "OPTSCALE_TLS_CERT") if self.tls_cert else None,
        )

    def channel_options(self) -> list[tuple[str, Any]]:
        if self.tls and self.tls_server_name:
            return [("grpc.ssl_target_name_override", self.tls_server_name)]
        return []


class TokenSource:
    """The bearer token: the fixed one, or the file's content re-read whenever the file
    changes (inode, size or mtime: kubelet swaps a Secret's symlink on rotation)."""

    def __init__(self, token: str = "", path: str = "") -> None:
        self.path = path
        self._value = token
        self._seen: tuple[int, int, int, int] | None = None
        self._lock = threading.Lock()  # servers and clients may share one across threads

    def current(self) -> str:
        if not self.path:
            return self._value
        what = "OPTSCALE_AUTH_TOKEN_FILE"
        with self._lock:
            try:
                st = os.stat(self.path)
                seen = (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns)
                if seen != self._seen:
                    value = _read(self.path, what).decode().strip()
                    if not value:
                        raise InvalidArgumentError(what, self.path, "is empty")
                    self._value, self._seen = value, seen
            except (OSError, InvalidArgumentError) as exc:
                if not self._value:  # nothing good yet: a clear error, never "no auth"
                    if isinstance(exc, InvalidArgumentError):
                        raise
                    raise InvalidArgumentError(what, self.path, f"cannot read: {exc}") from exc
                # mid-rotation (file briefly missing or empty): keep the last good token
            return self._value


def open_channel(
    target: str, security: Security | None = None, options: Sequence[tuple[str, Any]] = ()
) -> grpc.aio.Channel:
    """An asyncio channel with TLS / mTLS and the token attached to every call, as configured."""
    sec = security or Security()
    opts = [*options, *sec.channel_options()]
    interceptors = None
    if sec.token_auth:
        source = sec.token_source()
        source.current()  # fail here on an unreadable or empty file
        interceptors = _metadata_interceptors(source)
    creds = sec.channel_credentials()
    if creds is not None:
        return grpc.aio.secure_channel(target, creds, options=opts, interceptors=interceptors)
    return grpc.aio.insecure_channel(target, options=opts, interceptors=interceptors)


def open_sync_channel(target: str, security: Security | None = None) -> grpc.Channel:
    """A blocking channel (health probes, CLI): TLS as configured; health needs no token."""
    sec = security or Security()
    creds = sec.channel_credentials()
    if creds is not None:
        return grpc.secure_channel(target, creds, options=sec.channel_options())
    return grpc.insecure_channel(target)


class TokenAuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Rejects calls without ``authorization: Bearer <token>`` (constant-time compare)
    against the token now (a token file is re-read when it changes)."""

    def __init__(self, token: str | TokenSource) -> None:
        self._source = token if isinstance(token, TokenSource) else TokenSource(token)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        method = details.method or ""
        if method.startswith(OPEN_METHODS):
            return await continuation(details)
        got = dict(details.invocation_metadata or ()).get("authorization", "")
        if isinstance(got, bytes):
            got = got.decode(errors="replace")
        expected = f"Bearer {self._source.current()}".encode()
        if hmac.compare_digest(str(got).encode(), expected):
            return await continuation(details)
        handler = await continuation(details)
        return _deny(handler)


def _deny(handler: Any) -> Any:
    async def unary(request: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid token")

    async def stream(request: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid token")
        yield  # pragma: no cover - makes this an async generator

    if handler is None or not (handler.request_streaming or handler.response_streaming):
        return grpc.unary_unary_rpc_method_handler(unary)
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(stream)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(unary)
    return grpc.unary_stream_rpc_method_handler(stream)


class _AddMetadata:
    def __init__(self, source: TokenSource) -> None:
        self._source = source

    def _details(self, d: Any) -> Any:
        pairs = list(d.metadata.items()) if d.metadata else []  # aio.Metadata is a mapping
        token = ("authorization", f"Bearer {self._source.current()}")
        return d._replace(metadata=grpc.aio.Metadata(*pairs, token))


# grpc.aio files each interceptor under the first call type it matches, so one class per type.
class _UnaryUnary(_AddMetadata, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _UnaryStream(_AddMetadata, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _StreamUnary(_AddMetadata, grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[type-arg]
    async def intercept_stream_unary(self, continuation: Any, details: Any, it: Any) -> Any:
        return await continuation(self._details(details), it)


class _StreamStream(_AddMetadata, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[type-arg]
    async def intercept_stream_stream(self, continuation: Any, details: Any, it: Any) -> Any:
        return await continuation(self._details(details), it)


def _metadata_interceptors(source: TokenSource) -> list[Any]:
    return [cls(source) for cls in (_UnaryUnary, _UnaryStream, _StreamUnary, _StreamStream)]


def redis_client(url: str, env: Mapping[str, str] | None = None, max_connections: int = 512) -> Any:
    """An asyncio Redis client for ``url``; ``OPTSCALE_REDIS_USERNAME`` / ``_PASSWORD`` fill in
    credentials the URL does not carry. The pool is sized well above the controller's batch
    concurrency (48 questions at a time)."""
    import redis.asyncio as aioredis

    env = os.environ if env is None else env
    kw: dict[str, Any] = {"decode_responses": True}
    if env.get("OPTSCALE_REDIS_USERNAME"):
        kw["username"] = env["OPTSCALE_REDIS_USERNAME"]
    if env.get("OPTSCALE_REDIS_PASSWORD"):
        kw["password"] = env["OPTSCALE_REDIS_PASSWORD"]
    # timeouts: a command on a connection to a Redis that died must fail, not hang forever
    return aioredis.from_url(
        url,
        max_connections=max_connections,
        socket_timeout=10,
        socket_connect_timeout=5,
        health_check_interval=15,
        **kw,
    )
