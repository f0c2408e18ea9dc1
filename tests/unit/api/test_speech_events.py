"""The documented SSE events are what `sse_stream` sends."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

from pydantic import TypeAdapter

from tts_service.api.openai import sse_stream
from tts_service.api.speech_events import EVENT_MODELS, SSE_CONTENT
from tts_service.errors import SynthesisFailed
from tts_service.service import Admitted

Event = TypeAdapter(EVENT_MODELS[0] | EVENT_MODELS[1] | EVENT_MODELS[2])


class _Admitted:
    total_phoneme_ids = 5
    audio_samples = 1024


async def _frames(fail: bool) -> list[dict[str, Any]]:
    async def audio() -> AsyncGenerator[bytes, None]:
        yield b"first"
        if fail:
            raise SynthesisFailed("boom")

    admitted: Admitted = _Admitted()  # type: ignore[assignment]
    frames = [frame async for frame in sse_stream(audio(), admitted)]
    return [json.loads(frame.removeprefix(b"data: ")) for frame in frames]


async def test_every_event_sent_is_a_documented_one() -> None:
    for events in (await _frames(fail=False), await _frames(fail=True)):
        for event in events:
            assert Event.validate_python(event).model_dump() == event


def test_the_event_data_is_documented_as_json() -> None:
    data = SSE_CONTENT["schema"]["properties"]["data"]
    assert data["type"] == "string" and data["contentMediaType"] == "application/json"
    names = {ref["$ref"].rsplit("/", 1)[1] for ref in data["contentSchema"]["oneOf"]}
    assert names == {model.__name__ for model in EVENT_MODELS}
