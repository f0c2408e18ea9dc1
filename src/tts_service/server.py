"""Run the app under uvicorn with a graceful drain: on SIGTERM/SIGINT stop admitting
(readiness and new work answer 503), let admitted work finish within the grace period,
then exit 0. A second signal exits at once."""

from __future__ import annotations

import asyncio
import logging
import signal
from types import FrameType

import uvicorn

from tts_service.api import create_app
from tts_service.config import Settings
from tts_service.memory import tune_allocator
from tts_service.metrics import Metrics
from tts_service.service import TTSService

log = logging.getLogger(__name__)

# malloc arenas shared by all threads (glibc makes up to 8 per core): fewer arenas hold
# less freed memory apart. Measured after 3 bursts of 16 (MB): 1 arena 219, 2 238, 16 270;
# the peaks alike; 2 keeps two workers from contending for one.
MALLOC_ARENAS = 2


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, service: TTSService, grace: float) -> None:
        super().__init__(config)
        self.service = service
        self.grace = grace
        self._drain_task: asyncio.Task[None] | None = None
        self._cut_task: asyncio.Task[int] | None = None
        self._signalled = False
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)  # type: ignore[arg-type]

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A signal handler may interrupt the loop anywhere: only schedule work from here
        # (call_soon_threadsafe also wakes a loop asleep in select).
        if self._loop is None:
            super().handle_exit(sig, frame)
        elif not self._signalled:
            self._signalled = True
            self._loop.call_soon_threadsafe(self._start_drain, sig)
        else:
            self._loop.call_soon_threadsafe(self._stop_now, sig)
            super().handle_exit(sig, frame)

    def _start_drain(self, sig: int) -> None:
        log.info("received %s: draining for up to %g s", signal.Signals(sig).name, self.grace)
        assert self._loop is not None
        self._drain_task = self._loop.create_task(self._drain())

    def _stop_now(self, sig: int) -> None:
        """Second signal: cut every request now (each gets a ShuttingDown error), so uvicorn's
        shutdown finds nothing left to wait for."""
        log.warning("received %s again: stopping now", signal.Signals(sig).name)
        assert self._loop is not None
        self._cut_task = self._loop.create_task(self.service.drain(0))

    async def _drain(self) -> None:
        cut = await self.service.drain(self.grace)
        if cut:
            log.warning("drain period over: %d unfinished request(s) were stopped", cut)
        await asyncio.sleep(0.05)  # let the last responses flush
        self.should_exit = True


def serve(settings: Settings) -> int:
    tune_allocator(MALLOC_ARENAS)  # before any thread starts
    metrics = Metrics()
    service = TTSService(settings, observer=metrics.observer)
    app = create_app(settings, service, metrics)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,  # our access log (api/access_log.py) has the request's figures
        log_config=None,  # uvicorn's loggers propagate to ours (text or JSON lines)
        timeout_graceful_shutdown=5,
        ws_max_size=settings.max_body_bytes,
    )
    server = DrainingServer(config, service, settings.drain_seconds)
    server.run()
    return 0 if server.started else 1
