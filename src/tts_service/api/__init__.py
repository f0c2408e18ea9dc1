"""The HTTP application: `create_app(settings)` wires routes, limits and the service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tts_service import __version__
from tts_service.api import native, ops
from tts_service.api.errors import install_error_handlers
from tts_service.api.limits import BodyLimitMiddleware
from tts_service.config import Settings
from tts_service.service import TTSService


def create_app(settings: Settings, service: TTSService | None = None) -> FastAPI:
    service = service or TTSService(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(title="tts-service", version=__version__, lifespan=lifespan)
    app.state.service = service
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(ops.router)
    app.include_router(native.router)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    return app
