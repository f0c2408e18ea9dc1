"""The HTTP application: `create_app(settings)` wires routes, limits and the service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from tts_service import __version__
from tts_service.api import (
    audio_headers,
    captioned,
    docs,
    elevenlabs_http,
    elevenlabs_socket,
    metrics_route,
    native,
    native_contexts,
    ops,
    piper_http,
    ui,
    voice_catalog,
)
from tts_service.api.access_log import AccessLogMiddleware
from tts_service.api.auth import ApiKeyMiddleware
from tts_service.api.errors import install_error_handlers
from tts_service.api.limits import BodyLimitMiddleware
from tts_service.api.openai import router as openai_router
from tts_service.api.openapi import install_openapi
from tts_service.api.origin import OriginGuardMiddleware
from tts_service.api.stall import StallGuardMiddleware
from tts_service.config import Settings
from tts_service.metrics import HttpMetricsMiddleware, Metrics, RouteLabels
from tts_service.service import TTSService
from tts_service.wyoming.server import WyomingServer
from tts_service.wyoming.zeroconf import ZeroconfAnnouncer, announce


@asynccontextmanager
async def home_assistant(settings: Settings, service: TTSService) -> AsyncIterator[None]:
    """Wyoming on the same loop, voices and scheduler, announced by zeroconf if asked."""
    if not settings.wyoming_uri:
        yield
        return
    wyoming = WyomingServer(service, settings.wyoming_uri)
    await wyoming.start()
    announcer: ZeroconfAnnouncer | None = None
    try:
        if settings.zeroconf:  # so Home Assistant finds it by itself
            announcer = await announce(settings.zeroconf, settings.wyoming_uri)
        yield
    finally:
        if announcer is not None:
            await announcer.stop()
        await wyoming.stop()


def create_app(
    settings: Settings, service: TTSService | None = None, metrics: Metrics | None = None
) -> FastAPI:
    metrics = metrics or Metrics()
    service = service or TTSService(settings, observer=metrics.observer)
    metrics.watch(service)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            async with home_assistant(settings, service):
                yield
        finally:
            await service.stop()

    app = FastAPI(
        title="tts-service",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,  # api.docs serves them with local assets
        redoc_url=None,
    )
    app.state.service = service
    app.state.settings = settings
    app.state.metrics = metrics
    install_error_handlers(app)
    app.include_router(voice_catalog.router)  # before ops: /voices/catalog is no voice
    app.include_router(ops.router)
    app.include_router(metrics_route.router)
    app.include_router(native.router)
    app.include_router(native_contexts.router)
    app.include_router(elevenlabs_socket.router)
    app.include_router(elevenlabs_http.router)
    app.include_router(openai_router)
    app.include_router(captioned.router)
    app.include_router(docs.router)
    app.include_router(piper_http.router)  # POST /; the page's GET / stays with ui
    if settings.ui:
        app.include_router(ui.router)
    install_openapi(app)
    # Last added runs first: request id and log, metrics (so every refusal below is logged
    # and counted), CORS (so preflights, and refusals to an allowed page, get CORS headers),
    # the Host and Origin guard, the key check (before a body is read), the body limit, the
    # stall guard (innermost, so a stalled client's response ends unfinished, not as an
    # error).
    app.add_middleware(StallGuardMiddleware, timeout=settings.stall_timeout)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(ApiKeyMiddleware, keys=settings.api_key)
    app.add_middleware(
        OriginGuardMiddleware,
        bind_host=settings.host,
        allowed_hosts=settings.allowed_hosts,
        cors_origins=settings.cors_origins,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=[
                "X-Request-ID",
                "Retry-After",
                *audio_headers.EXPOSED,
            ],
            max_age=600,
        )
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics, labels=RouteLabels(app))
    app.add_middleware(AccessLogMiddleware)
    return app
