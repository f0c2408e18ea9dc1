"""Optional API keys, checked by a pure ASGI middleware so HTTP and WebSocket share one gate.

With keys configured, a request needs `Authorization: Bearer <key>` (what OpenAI SDKs send)
or `xi-api-key: <key>` (what ElevenLabs clients send). Browsers cannot set headers on a
WebSocket, so sockets also take the key as `?api_key=<key>` or `?xi-api-key=<key>`.
Probes, metrics, the web page (`GET /`, with its assets and icon) and the API docs stay
public: they carry no data, and an orchestrator or a browser navigating to them cannot
attach a key (the page's own API calls do carry it). `POST /` is synthesis and needs one.

Keys are compared in constant time against every configured key (no early exit that would
tell which key was close), and are never logged or echoed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from tts_service.error_dialect import error_messages
from tts_service.errors import Unauthorized

PUBLIC_PATHS = frozenset(
    {
        "/ping",
        "/health",
        "/metrics",
        "/favicon.ico",
        "/docs",
        "/redoc",
        "/openapi.json",
    }
)
PUBLIC_PREFIXES = ("/static/", "/docs/static/")
QUERY_KEYS = ("api_key", "xi-api-key")
KEY_HEADER = b"xi-api-key"
PAGE = "/"
"""The web page: public to read, while `POST /` (Piper's request) is synthesis."""
POLICY_VIOLATION = 1008  # WebSocket close code for "not allowed"


def is_public(path: str, method: str = "GET") -> bool:
    if path == PAGE:
        return method in ("GET", "HEAD")
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def _headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    return headers


def bearer_token(scope: Scope) -> str | None:
    for name, value in _headers(scope):
        if name == b"authorization":
            # surrogateescape keeps the exact bytes, whatever the encoding of the key
            scheme, _, token = value.decode("utf-8", "surrogateescape").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None


def key_header(scope: Scope) -> str | None:
    for name, value in _headers(scope):
        if name == KEY_HEADER and value.strip():
            return value.decode("utf-8", "surrogateescape").strip()
    return None


def query_token(scope: Scope) -> str | None:
    raw: bytes = scope.get("query_string", b"")
    query = raw.decode("latin-1")
    for name, value in parse_qsl(query, keep_blank_values=False):
        if name in QUERY_KEYS:
            return value
    return None


def _digest(value: str) -> bytes:
    # Comparing fixed-length digests hides the keys' lengths as well as their contents.
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()


class KeyRing:
    """The accepted keys; `matches` costs the same whichever key (if any) is right."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = [_digest(key) for key in keys if key]

    def __bool__(self) -> bool:
        return bool(self._digests)

    def matches(self, token: str | None) -> bool:
        if not token:
            return False
        given = _digest(token)
        found = False
        for digest in self._digests:
            found |= hmac.compare_digest(given, digest)
        return found


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, keys: Iterable[str]) -> None:
        self.app = app
        self.keys = KeyRing(keys)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not self.keys:
            await self.app(scope, receive, send)
            return
        if is_public(scope["path"], scope.get("method", "GET")) or self._authorized(scope):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await self._close_websocket(receive, send)
        else:
            await self._refuse_http(scope, send)

    def _authorized(self, scope: Scope) -> bool:
        tokens = [bearer_token(scope), key_header(scope)]
        if scope["type"] == "websocket":
            tokens.append(query_token(scope))
        return any([self.keys.matches(token) for token in tokens])  # each costs the same

    async def _refuse_http(self, scope: Scope, send: Send) -> None:
        missing = bearer_token(scope) is None and key_header(scope) is None
        error = Unauthorized(
            "missing API key: send 'Authorization: Bearer <key>'" if missing else "invalid API key"
        )
        challenge = b'Bearer realm="tts-service"'
        if not missing:
            challenge += b', error="invalid_token"'
        for message in error_messages(
            scope["path"], error, extra=[(b"www-authenticate", challenge)]
        ):
            await send(message)

    @staticmethod
    async def _close_websocket(receive: Receive, send: Send) -> None:
        """Accept, then close with 1008 and a reason: a browser sees the code and reason,
        while a refusal before accepting would reach its script as an anonymous 1006."""
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        await send(
            {
                "type": "websocket.close",
                "code": POLICY_VIOLATION,
                "reason": "invalid or missing API key",
            }
        )
