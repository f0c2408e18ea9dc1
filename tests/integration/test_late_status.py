"""A streamed response commits its status only with its first audio: a request whose
deadline passes in the queue gets a real 504 JSON error, not a 200 cut short.

Admission by predicted wait refuses what it expects to miss its deadline, so a real server
rarely admits such a request; to make the case certain, this test runs the real app, voice
and uvicorn in-process and pins admission's speed estimate at zero (as if it misjudged),
then puts higher-priority work ahead of the request."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from audiocheck import sentences
from conftest import free_port
from tts_service.api import create_app
from tts_service.config import Settings
from tts_service.scheduling.admission import SpeedEstimate
from tts_service.service import TTSService

DEADLINE = 1.0


class InProcessServer:
    def __init__(self, settings: Settings) -> None:
        self.service = TTSService(settings)
        app = create_app(settings, self.service)
        config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.base_url = f"http://127.0.0.1:{settings.port}"

    def __enter__(self) -> InProcessServer:
        self.thread.start()
        for _ in range(600):
            if self.server.started:
                return self
            self.thread.join(0.1)
        raise AssertionError("the in-process server did not start")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture(scope="module")
def pinned() -> Iterator[InProcessServer]:
    settings = Settings(
        port=free_port(),
        workers=1,
        solo_first_sentence=False,
        request_timeout=DEADLINE,
        noise_scale=0.0,
        noise_w_scale=0.0,
        cache=False,  # one text, again and again: each time it must queue, not be a hit
    )
    with InProcessServer(settings) as server:
        never_late = SpeedEstimate(mean=0.0, measured=True)
        server.service.scheduler.gate.speed_of = lambda voice: never_late  # type: ignore[method-assign]
        yield server


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/synthesize/binary", {"text": "Late again.", "stream": True}),
        ("/v1/audio/speech", {"input": "Late again.", "response_format": "wav"}),
        ("/v1/audio/speech", {"input": "Late again.", "stream_format": "sse"}),
    ],
)
async def test_a_streamed_request_whose_deadline_passes_gets_504(
    pinned: InProcessServer, path: str, body: dict[str, Any]
) -> None:
    async with httpx.AsyncClient(base_url=pinned.base_url, timeout=120) as client:
        urgent_body = {"text": sentences(8), "priority": "high"}
        urgent = [
            asyncio.create_task(client.post("/synthesize/binary", json=urgent_body))
            for _ in range(2)
        ]

        async def admitted(count: int) -> None:
            while True:
                stats = (await client.get("/health")).json()
                if stats["queued_requests"] + stats["active_requests"] >= count:
                    return
                await asyncio.sleep(0.01)

        await asyncio.wait_for(admitted(2), 30)  # the urgent work is in before the late one
        response = await client.post(path, json=body)
        assert response.status_code == 504, response.text[:300]
        assert response.headers["content-type"].startswith("application/json")
        error = response.json()["error"]
        assert error["code"] == "deadline_exceeded" and f"{DEADLINE:g} s" in error["message"]
        if path.startswith("/v1/"):
            assert error["type"] == "server_error"
        assert all(r.status_code == 200 for r in await asyncio.gather(*urgent))
