"""What every route asks of its connection: the service behind the app, and who the client
is. At the bottom of the api package: the routes import it, it imports none of them."""

from __future__ import annotations

from typing import Final

from fastapi import Request, WebSocket

from tts_service.service import TTSService

CLIENT_CLOSED: Final = 499  # nginx's code for "client closed request"; only ever seen in logs


class ClientGone(Exception):
    """The HTTP client disconnected before its response was ready: answered CLIENT_CLOSED
    (by `api.errors`), which only the access log and the metrics ever see."""


def get_service(connection: Request | WebSocket) -> TTSService:
    service: TTSService = connection.app.state.service
    return service


def client_address(connection: Request | WebSocket) -> str:
    """The remote address: one client for the per-client limit and fairness."""
    return connection.client.host if connection.client is not None else ""
