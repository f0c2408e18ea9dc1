"""Browser-origin safety: a web page the user happens to open must not drive this server.

Two checks, in a pure ASGI middleware so HTTP and WebSocket share them:

- Host allow-list (DNS rebinding): a hostile name that resolves to 127.0.0.1 reaches the
  server with its own name in `Host`. Only the bind address, the loopback names and the
  configured `allowed_hosts` are answered; anything else is a 400. Bound to a wildcard
  address with no list configured, the server cannot know its public names: any host goes.
- Origin check (cross-site requests): a page may POST `text/plain` to another site without
  a CORS preflight, and may open a WebSocket anywhere. A request that does work (any method
  but GET/HEAD/OPTIONS, every WebSocket) and carries an `Origin` that is neither the server's
  own nor an allowed CORS origin is refused with 403. Clients that send no `Origin` (curl,
  SDKs, Home Assistant) are not browsers and are not affected.

Refusals happen before a body is read or a WebSocket accepted.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from tts_service.error_dialect import error_messages
from tts_service.errors import ForbiddenOrigin, InvalidHost, ServiceError

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARD_BINDS = ("0.0.0.0", "::", "")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DENIAL_EXTENSION = "websocket.http.response"  # lets a WebSocket be refused with a real response
_DEFAULT_PORTS = {"http": ":80", "ws": ":80", "https": ":443", "wss": ":443"}
_ECHO_CHARS = 100


def host_name(value: str) -> str:
    """`Host` (or an allowed-host entry) without its port, lower case: "[::1]:80" -> "::1"."""
    value = value.strip().lower()
    if value.startswith("["):
        value = value[1:].partition("]")[0]
    elif value.count(":") == 1:  # name:port; more colons is a bare IPv6 address
        value = value.partition(":")[0]
    return value.removesuffix(".")


class HostPolicy:
    """Which `Host` names the server answers for."""

    def __init__(self, bind_host: str, allowed_hosts: Iterable[str]) -> None:
        allowed = [host_name(host) for host in allowed_hosts]
        self.any = "*" in allowed or (host_name(bind_host) in WILDCARD_BINDS and not allowed)
        self.names = frozenset([host_name(bind_host), *LOOPBACK_NAMES, *allowed])

    def accepts(self, host: str | None) -> bool:
        # No Host at all is HTTP/1.0: no browser sends that, and a rebinding page cannot.
        return self.any or host is None or host_name(host) in self.names


def _netloc(value: str, scheme: str) -> str:
    """host[:port] in lower case, without the scheme's default port."""
    return value.lower().removesuffix(_DEFAULT_PORTS[scheme])


def same_origin(origin: str, host: str | None) -> bool:
    """Whether `Origin` names this very server, as the client reached it (its `Host`)."""
    if host is None:
        return False
    parts = urlsplit(origin)
    if parts.scheme not in _DEFAULT_PORTS or not parts.netloc:
        return False
    return _netloc(parts.netloc, parts.scheme) == _netloc(host, parts.scheme)


class OriginPolicy:
    """Which browser origins may make the server do work."""

    def __init__(self, cors_origins: Iterable[str]) -> None:
        origins = [origin.strip().lower().rstrip("/") for origin in cors_origins]
        self.any = "*" in origins
        self.origins = frozenset(origins)

    def accepts(self, origin: str | None, host: str | None) -> bool:
        if origin is None or self.any:
            return True
        if origin.strip().lower() == "null":  # sandboxed frames, file: pages, redirects
            return False
        return same_origin(origin, host) or origin.strip().lower() in self.origins


def _header(scope: Scope, name: bytes) -> str | None:
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


def _echo(value: str) -> str:
    return value if len(value) <= _ECHO_CHARS else value[:_ECHO_CHARS] + "..."


class OriginGuardMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        bind_host: str,
        allowed_hosts: Iterable[str] = (),
        cors_origins: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.hosts = HostPolicy(bind_host, allowed_hosts)
        self.origins = OriginPolicy(cors_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = self.refusal(scope) if scope["type"] in ("http", "websocket") else None
        if error is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._refuse_websocket(scope, receive, send, error)
        else:
            await self._refuse_http(scope, send, error)

    def refusal(self, scope: Scope) -> ServiceError | None:
        """Why this request is refused, or None."""
        host = _header(scope, b"host")
        if not self.hosts.accepts(host):
            assert host is not None
            return InvalidHost(
                f"host '{_echo(host)}' is not served here; "
                "allow it with --allowed-host or TTS_ALLOWED_HOSTS"
            )
        does_work = scope["type"] == "websocket" or scope.get("method") not in SAFE_METHODS
        origin = _header(scope, b"origin")
        if does_work and not self.origins.accepts(origin, host):
            assert origin is not None
            return ForbiddenOrigin(
                f"requests from origin '{_echo(origin)}' are not allowed; "
                "allow it with --cors-origin or TTS_CORS_ORIGINS"
            )
        return None

    async def _refuse_http(self, scope: Scope, send: Send, error: ServiceError) -> None:
        for message in error_messages(scope["path"], error):
            await send(message)

    async def _refuse_websocket(
        self, scope: Scope, receive: Receive, send: Send, error: ServiceError
    ) -> None:
        """Refuse the handshake itself: with the server's denial-response extension a real
        400/403 with the JSON body, otherwise a close before accepting (a plain 403)."""
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        if DENIAL_EXTENSION not in scope.get("extensions", {}):
            await send({"type": "websocket.close", "code": 1008})
            return
        for reply in error_messages(scope["path"], error, kind="websocket.http"):
            await send(reply)
