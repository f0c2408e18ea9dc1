"""The Serve deployment: each replica runs the whole service behind the same FastAPI app.

The class builds the service in the replica (so its voices, scheduler and worker threads
live there, sized by the settings `plan` derived), hands Serve the app through
`__serve_build_asgi_app__` (Serve then runs the app's lifespan: voices load and warm up
before the replica takes traffic), and answers Serve's health checks from the scheduler.
Every response carries `X-Replica`, the replica that served it.
"""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve.deployment import Application, Deployment
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tts_service.api import create_app
from tts_service.config import RaySettings, Settings
from tts_service.logs import setup_logging
from tts_service.metrics import Metrics
from tts_service.rayserve import health
from tts_service.rayserve.plan import ReplicaPlan, plan
from tts_service.service import TTSService

REPLICA_HEADER = b"x-replica"


class ReplicaHeaderMiddleware:
    """Name the replica on every HTTP response and WebSocket handshake."""

    def __init__(self, app: ASGIApp, name: str) -> None:
        self.app = app
        self.header = (REPLICA_HEADER, name.encode("latin-1"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return

        async def named(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                message["headers"] = [*message.get("headers", []), self.header]
            await send(message)

        await self.app(scope, receive, named)


@serve.ingress()
class TTSReplica:
    """One replica: the service, its metrics and its app."""

    def __init__(self, settings: Settings) -> None:
        setup_logging(settings.log_level, json_lines=settings.log_json, logger="tts_service")
        self.name = serve.get_replica_context().replica_tag
        metrics = Metrics()
        self.service = TTSService(settings, observer=metrics.observer)
        self.service_app = create_app(settings, self.service, metrics)

    def __serve_build_asgi_app__(self) -> ASGIApp:
        return ReplicaHeaderMiddleware(self.service_app, self.name)

    async def check_health(self) -> None:
        health.check(self.service)


def application(replica: ReplicaPlan) -> Application:
    """The Serve application for a plan: the deployment with its options, bound."""
    deployment: Deployment = serve.deployment(**replica.options)(TTSReplica)
    return deployment.bind(replica.settings)


def cluster_cpus() -> float:
    import ray

    resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
    return float(resources.get("CPU", 1.0))


def build(args: dict[str, Any]) -> Application:
    """Application builder for `serve run` / `serve deploy` configs
    (`import_path: tts_service.rayserve.deployment:build`). `args` holds `service` (the
    service's settings, as `TTS_*` names them, lower case without the prefix) and `ray`
    (as `TTS_RAY_*` names them); the environment fills in the rest."""
    unknown = set(args) - {"service", "ray"}
    if unknown:
        raise ValueError(f"unknown application args {sorted(unknown)}: use 'service' and 'ray'")
    settings = Settings(**args.get("service", {}))
    ray_settings = RaySettings(**args.get("ray", {}))
    return application(plan(settings, ray_settings, cluster_cpus()))
