"""The app's error handlers: a client that went away is logged as 499, nothing else."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tts_service.api.connection import CLIENT_CLOSED, ClientGone
from tts_service.api.errors import install_error_handlers


def test_a_client_gone_is_answered_client_closed_with_no_body() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/gone")
    async def gone() -> None:
        raise ClientGone

    response = TestClient(app).get("/gone")
    assert response.status_code == CLIENT_CLOSED == 499
    assert response.content == b""
