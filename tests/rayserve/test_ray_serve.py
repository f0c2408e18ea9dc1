"""The service on a real local Ray Serve fleet: `tts-service serve --ray` starts Ray (2 CPUs),
Serve's proxy and 2 replicas of 1 worker each; everything goes through the proxy.

One fleet for the whole module (starting Ray costs tens of seconds). Its limits are small on
purpose: each replica admits 2 requests (1 worker + 1 queued) and Serve's proxy queues 24, so
a burst fills it. The tests run in file order: the one that kills a replica runs next to last,
the one that stops the fleet last.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import openai
import pytest
import websockets

from audiocheck import RATE, piper_pcm, seconds, sentences, wav_pcm
from conftest import ROOT, free_port

pytestmark = pytest.mark.ray

APP = "tts-service"
README = (ROOT / "README.md").read_text(encoding="utf-8")
TEXTS = ("Hello there. How are you?", "Concurrency is safe.", "Pack my box!", "One more time.")
# The README's own examples, run as written against the fleet's port.
README_CURLS = (
    'curl -s localhost:3002/synthesize/binary -d \'{"text": "Hello there. How are you?"}\''
    " -o hello.wav",
    "curl -sN localhost:3002/synthesize/binary \\\n"
    '  -d \'{"text": "One. Two. Three.", "format": "mp3", "stream": true}\' -o out.mp3',
    "curl -s localhost:3002/v1/audio/speech -H 'Content-Type: application/json' \\\n"
    '  -d \'{"model": "tts-1", "input": "Hello from Piper.", "voice": "alloy"}\''
    " -o hello.mp3",
)


class Fleet:
    """`python -m tts_service serve --ray` in its own session, ready when it says so."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"ray-fleet-{self.port}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TTS_", "RAY_"))}
        env.update(
            RAY_USAGE_STATS_ENABLED="0",
            PYTHONUNBUFFERED="1",
            TTS_SOLO_FIRST_SENTENCE="false",  # byte-equality with 1-thread Piper
            TTS_NORMALIZATION="peak",  # and with its per-sentence peak normalisation
            TTS_RAY_QUEUED_PER_WORKER="1",
            TTS_RAY_MAX_QUEUED_REQUESTS="24",
            TTS_RAY_RETRY_AFTER="1",
            TTS_RAY_HEALTH_CHECK_PERIOD="2",
        )
        command = [sys.executable, "-m", "tts_service", "serve", "--ray", "--port", str(self.port)]
        command += ["--ray-num-cpus", "2", "--ray-min-replicas", "2", "--ray-max-replicas", "2"]
        command += ["--noise-scale", "0", "--noise-w-scale", "0"]
        self._log = open(self.log_path, "wb")  # closed in stop()
        self.proc = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
            start_new_session=True,  # Ray's processes are its children: one group to end
        )  # fmt: skip
        self.address = self._wait_ready()
        self.replicas = self._replica_names()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _wait_ready(self, timeout: float = 240.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"fleet exited early:\n{self.log()[-5000:]}")
            log = self.log()
            address = re.search(r"Ray cluster at (\S+)", log)
            if address and "through Ray Serve" in log:
                return address.group(1)
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"fleet not ready after {timeout} s:\n{self.log()[-5000:]}")

    def _replica_names(self) -> set[str]:
        """Both replicas' names: an idle fleet routes each request to either."""
        names: set[str] = set()
        for _ in range(200):
            names.add(httpx.get(f"{self.base_url}/health", timeout=10).headers["x-replica"])
            if len(names) == 2:
                return names
        raise RuntimeError(f"only replicas {names} answered")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


@pytest.fixture(scope="module")
def fleet(logs_dir: Path) -> Iterator[Fleet]:
    started = Fleet(logs_dir)
    yield started
    started.stop()


async def replica_health(client: httpx.AsyncClient, replica: str) -> dict[str, Any]:
    """`/health` of one replica: the proxy picks one per request, so ask until it is that one."""
    for _ in range(200):
        response = await client.get("/health")
        if response.headers.get("x-replica") == replica:
            body: dict[str, Any] = response.json()
            return body
    raise AssertionError(f"the proxy never routed /health to replica {replica}")


def run_curl(command: str, port: int, folder: Path) -> subprocess.CompletedProcess[bytes]:
    command = command.replace("localhost:3002", f"localhost:{port}")
    return subprocess.run(["bash", "-c", command], cwd=folder, capture_output=True, timeout=120)


def decoded_seconds(data: bytes) -> float:
    with av.open(io.BytesIO(data)) as container:
        frames = [frame for frame in container.decode(audio=0)]
    return sum(frame.samples for frame in frames) / frames[0].sample_rate


def test_a_local_ray_keeps_to_loopback(fleet: Fleet) -> None:
    """Ray left to itself announces the machine's network address; the local fleet's
    cluster is on 127.0.0.1."""
    assert fleet.address.startswith("127.0.0.1:"), fleet.address


def test_the_readmes_curl_examples_work_through_the_proxy(fleet: Fleet, tmp_path: Path) -> None:
    for command in README_CURLS:
        assert command in README, f"not the README's example any more: {command}"
        result = run_curl(command, fleet.port, tmp_path)
        assert result.returncode == 0, result.stderr
    assert wav_pcm((tmp_path / "hello.wav").read_bytes()) == piper_pcm(TEXTS[0])
    assert decoded_seconds((tmp_path / "out.mp3").read_bytes()) > 1.0
    assert decoded_seconds((tmp_path / "hello.mp3").read_bytes()) > 0.5
    raw = run_curl(
        'curl -sN localhost:3002/v1/audio/speech -d \'{"input": "One. Two.", '
        '"response_format": "pcm"}\'',
        fleet.port,
        tmp_path,
    )
    assert '-d \'{"input": "One. Two.", "response_format": "pcm"}\'' in README
    assert raw.returncode == 0 and seconds(raw.stdout, rate=24000) > 0.5


def test_the_readmes_openai_examples_work_through_the_proxy(fleet: Fleet, tmp_path: Path) -> None:
    assert 'client = OpenAI(base_url="http://localhost:3002/v1", api_key="unused")' in README
    client = openai.OpenAI(base_url=f"http://localhost:{fleet.port}/v1", api_key="unused")
    client.audio.speech.create(model="tts-1", voice="alloy", input="Hello there!").write_to_file(
        tmp_path / "hello.mp3"
    )
    assert decoded_seconds((tmp_path / "hello.mp3").read_bytes()) > 0.5
    pieces: list[bytes] = []
    with client.audio.speech.with_streaming_response.create(
        model="tts-1",
        voice="en_US-joe-medium",
        input="First. Second. Third.",
        response_format="pcm",
    ) as response:
        assert response.headers["x-replica"]
        pieces.extend(response.iter_bytes())
    assert seconds(b"".join(pieces), rate=24000) > 1.0


async def test_sixteen_concurrent_requests_equal_serial_piper_on_both_replicas(
    fleet: Fleet,
) -> None:
    jobs = [(TEXTS[n % 4], n % 2 == 1) for n in range(16)]

    async def one(client: httpx.AsyncClient, text: str, stream: bool) -> httpx.Response:
        response = await client.post("/synthesize/binary", json={"text": text, "stream": stream})
        assert response.status_code == 200, response.text
        return response

    async with httpx.AsyncClient(base_url=fleet.base_url, timeout=120) as client:
        responses = await asyncio.gather(*(one(client, text, stream) for text, stream in jobs))
    for (text, _), response in zip(jobs, responses, strict=True):
        assert wav_pcm(response.content) == piper_pcm(text), f"audio differs for {text!r}"
    served_by = Counter(response.headers["x-replica"] for response in responses)
    assert len(served_by) == 2, f"one replica served everything: {served_by}"


async def test_streams_send_first_audio_before_the_last_sentence_exists(fleet: Fleet) -> None:
    """Native chunked and OpenAI streaming: when the first bytes are in, the replica that
    sends them still has sentences of that request to synthesize. One stream per replica
    (Serve routes the second to the idle one), so that /health, routed to the replica with
    fewer ongoing requests, can reach either."""
    count = 16
    kinds = [
        ("/synthesize/binary", lambda n: {"text": sentences(count, n), "stream": True}),
        ("/v1/audio/speech", lambda n: {"input": sentences(count, n), "response_format": "pcm"}),
    ]
    async with httpx.AsyncClient(base_url=fleet.base_url, timeout=120) as client:
        for path, body in kinds:
            held: dict[str, tuple[httpx.Response, AsyncIterator[bytes]]] = {}
            try:
                for start in range(1, 500, 100):  # until one stream runs on each replica
                    request = client.build_request("POST", path, json=body(start))
                    response = await client.send(request, stream=True)
                    replica = response.headers["x-replica"]
                    if replica in held:
                        await response.aclose()
                        continue
                    chunks = response.aiter_raw()  # kept: dropping the iterator hangs up
                    held[replica] = response, chunks
                    assert response.status_code == 200 and await anext(chunks)  # first bytes
                    if len(held) == 2:
                        break
                assert len(held) == 2, "every stream went to one replica"
                for replica in held:
                    health = await replica_health(client, replica)
                    assert health["queued_sentences"] > 0, "the whole text was synthesized first"
                for _, chunks in held.values():
                    rest = b"".join([part async for part in chunks])
                    assert len(rest) > RATE * count * 0.5  # the rest of it arrived
            finally:
                for response, _ in held.values():
                    await response.aclose()


async def test_a_client_that_hangs_up_cancels_the_replicas_work(fleet: Fleet) -> None:
    count = 40
    async with httpx.AsyncClient(base_url=fleet.base_url, timeout=120) as observer:
        before = {name: (await replica_health(observer, name))["totals"] for name in fleet.replicas}
        leaving = httpx.AsyncClient(base_url=fleet.base_url, timeout=120)
        body = {"text": sentences(count, start=200), "stream": True}
        async with leaving.stream("POST", "/synthesize/binary", json=body) as response:
            replica = response.headers["x-replica"]
            await anext(response.aiter_raw())
        await leaving.aclose()  # hang up after the first audio

        for _ in range(500):
            health = await replica_health(observer, replica)
            if health["totals"]["cancelled"] > before[replica]["cancelled"]:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("hanging up did not cancel the request")
        assert health["active_requests"] == 0 and health["queued_sentences"] == 0
        made = health["totals"]["sentences"] - before[replica]["sentences"]
        assert made < count, "every sentence was synthesized despite the hang-up"


async def test_the_websocket_route_works_through_the_proxy(fleet: Fleet) -> None:
    url = f"ws://127.0.0.1:{fleet.port}/synthesize/stream"
    async with websockets.connect(url) as socket:
        assert socket.response is not None and socket.response.headers["x-replica"]
        for text in TEXTS[:2]:  # two requests on one socket
            await socket.send(json.dumps({"text": text}))
            start = json.loads(await socket.recv())
            assert start["type"] == "start" and start["sample_rate"] == RATE
            pcm = b""
            while isinstance(message := await socket.recv(), bytes):
                pcm += message
            assert json.loads(message)["type"] == "end"
            assert pcm == piper_pcm(text)


async def read_all(chunks: AsyncIterator[bytes], first: bytes) -> bytes:
    return first + b"".join([part async for part in chunks])


async def test_a_full_fleet_answers_503_with_retry_after_never_a_hang_or_500(
    fleet: Fleet,
) -> None:
    """4 long streams fill the replicas (2 each); then a burst of 48 short requests: 24 wait
    at the proxy and the rest get the proxy's own 503 at once, as JSON with Retry-After.
    Every one is answered, and every 200 is exact."""
    limits = httpx.Limits(max_connections=100)
    long_text = sentences(16, start=300)
    body = {"text": "A short burst."}
    async with httpx.AsyncClient(base_url=fleet.base_url, timeout=180, limits=limits) as client:
        async with contextlib.AsyncExitStack() as stack:
            readers = []
            for _ in range(4):  # one at a time: each is in a replica before the next is sent
                request = client.stream(
                    "POST", "/synthesize/binary", json={"text": long_text, "stream": True}
                )
                response = await stack.enter_async_context(request)
                assert response.status_code == 200
                chunks = response.aiter_raw()
                first = await anext(chunks)
                readers.append(asyncio.create_task(read_all(chunks, first)))
            responses = await asyncio.gather(
                *(client.post("/synthesize/binary", json=body) for _ in range(48))
            )
            streamed = await asyncio.gather(*readers)
        statuses = Counter(response.status_code for response in responses)
        assert set(statuses) == {200, 503}, statuses
        for response in responses:
            if response.status_code == 503:
                assert int(response.headers["retry-after"]) >= 1
                assert response.json()["error"]["code"] == "overloaded"
            else:
                assert wav_pcm(response.content) == piper_pcm(body["text"])
        assert all(wav_pcm(data) == piper_pcm(long_text) for data in streamed)
        after = await client.post("/synthesize/binary", json=body)
        assert after.status_code == 200


async def test_killing_a_replica_mid_burst(fleet: Fleet) -> None:
    """The process of a replica serving a stream dies (SIGKILL) while a burst is in flight:
    its stream is cut (not ended cleanly), requests it had admitted but not started end as
    502 `replica_failed` with Retry-After, none is retried by Serve; every later request
    succeeds on the other replica; Serve starts a new replica and its /health is ok."""
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(base_url=fleet.base_url, timeout=120, limits=limits) as client:
        pids = {name: (await replica_health(client, name))["pid"] for name in fleet.replicas}
        body = {"text": sentences(20, start=400), "stream": True}
        async with client.stream("POST", "/synthesize/binary", json=body) as doomed:
            victim = doomed.headers["x-replica"]
            chunks = doomed.aiter_raw()  # kept: dropping the iterator would hang up
            await anext(chunks)
            burst = [
                asyncio.create_task(client.post("/synthesize/binary", json={"text": TEXTS[n % 4]}))
                for n in range(12)
            ]
            await asyncio.sleep(0.2)
            os.kill(pids[victim], signal.SIGKILL)
            with pytest.raises(httpx.RemoteProtocolError):  # cut, not ended cleanly
                async for _ in chunks:
                    pass
        outcomes = await asyncio.gather(*burst)
        for response in outcomes:
            assert response.status_code in (200, 502), response.text
            if response.status_code == 502:
                assert response.json()["error"]["code"] == "replica_failed"
                assert int(response.headers["retry-after"]) >= 1
            else:
                assert wav_pcm(response.content)

        later = [await client.post("/synthesize/binary", json={"text": t}) for t in TEXTS * 2]
        assert [r.status_code for r in later] == [200] * 8
        assert all(r.headers["x-replica"] != victim for r in later)

        for _ in range(600):  # Serve notices the dead actor and starts a replacement
            names = await serving_replicas(client)
            if len(names) == 2 and victim not in names:
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError(f"Serve did not replace replica {victim}:\n{fleet.log()[-3000:]}")
        (newcomer,) = names - fleet.replicas
        health = await replica_health(client, newcomer)
        assert health["status"] == "ok" and health["totals"]["failed"] == 0
        assert health["pid"] != pids[victim]


async def serving_replicas(client: httpx.AsyncClient, asks: int = 40) -> set[str]:
    """The replicas the proxy routes to now (an idle fleet routes each request to either)."""
    names = set()
    for _ in range(asks):
        response = await client.get("/health")
        if response.status_code == 200:
            names.add(response.headers["x-replica"])
    return names


async def test_stopping_drains_admitted_work_and_refuses_new(fleet: Fleet) -> None:
    """SIGTERM to `serve --ray` deletes the application: Serve stops routing to its replicas
    and waits (up to the drain time) for what they admitted, which ends complete; a new
    request meanwhile gets 503 `not_deployed` with Retry-After. (Downscaling removes a
    replica through the same graceful shutdown.) Last: it stops the fleet."""
    text = sentences(12, start=600)
    async with httpx.AsyncClient(base_url=fleet.base_url, timeout=120) as client:
        body = {"text": text, "stream": True}
        async with client.stream("POST", "/synthesize/binary", json=body) as response:
            chunks = response.aiter_raw()  # kept: dropping the iterator would hang up
            data = await anext(chunks)
            fleet.proc.send_signal(signal.SIGTERM)
            for _ in range(500):  # until the proxy has dropped the application's route
                refused = await client.post("/synthesize/binary", json={"text": "Late."})
                if refused.status_code != 200:
                    break
            assert refused.status_code == 503 and int(refused.headers["retry-after"]) >= 1
            assert refused.json()["error"]["code"] == "not_deployed"
            data += b"".join([part async for part in chunks])
    assert wav_pcm(data) == piper_pcm(text)
    assert fleet.proc.wait(timeout=120) == 0
