"""Run a real Pipecat pipeline around one of its TTS services and record what comes out:
the audio frames (with their context), errors, and when each frame arrived."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pipecat.frames.frames import EndFrame, ErrorFrame, Frame, TTSAudioRawFrame, TTSTextFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.runner import PipelineRunner
from pipecat.pipeline.task import PipelineParams, PipelineTask
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor


@dataclass
class Heard:
    """Audio frames in order of arrival, with their context ids and times; errors."""

    audio: list[TTSAudioRawFrame] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    words: list[TTSTextFrame] = field(default_factory=list)
    """The words Pipecat timed from the alignment it was sent."""
    queued: list[tuple[Frame, float]] = field(default_factory=list)
    """Each frame pushed in, with when."""

    def queued_at(self, kind: type[Frame]) -> float:
        return next(at for frame, at in self.queued if isinstance(frame, kind))

    def seconds_after(self, context: str | None, moment: float) -> float:
        """Seconds of `context`'s audio that arrived after `moment`."""
        return sum(
            len(frame.audio) / 2 / frame.sample_rate
            for frame, at in zip(self.audio, self.times, strict=True)
            if frame.context_id == context and at > moment
        )

    def pcm(self, context: str | None = None) -> bytes:
        return b"".join(
            frame.audio for frame in self.audio if context is None or frame.context_id == context
        )

    def contexts(self) -> list[str | None]:
        """Each audio frame's context id, in order of arrival."""
        return [frame.context_id for frame in self.audio]

    def runs(self) -> list[tuple[str | None, float]]:
        """(context, seconds of its audio) for each run of frames of one context, in order."""
        runs: list[tuple[str | None, float]] = []
        for frame in self.audio:
            seconds = len(frame.audio) / 2 / frame.sample_rate
            if runs and runs[-1][0] == frame.context_id:
                runs[-1] = (frame.context_id, runs[-1][1] + seconds)
            else:
                runs.append((frame.context_id, seconds))
        return runs


class Recorder(FrameProcessor):
    def __init__(self, heard: Heard) -> None:
        super().__init__()
        self.heard = heard

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TTSAudioRawFrame):
            self.heard.audio.append(frame)
            self.heard.times.append(time.monotonic())
        elif isinstance(frame, TTSTextFrame):
            self.heard.words.append(frame)
        elif isinstance(frame, ErrorFrame):
            self.heard.errors.append(frame.error)
        await self.push_frame(frame, direction)


async def run_pipeline(
    tts: Any, frames: Sequence[Frame | float], sample_rate: int, limit: float = 60
) -> Heard:
    """Push `frames` in order through `tts` (a number: sleep that long first), then end the
    pipeline and wait for it to finish."""
    heard = Heard()
    pipeline = Pipeline([tts, Recorder(heard)])
    params = PipelineParams(audio_out_sample_rate=sample_rate, enable_rtvi=False)
    task = PipelineTask(pipeline, params=params, idle_timeout_secs=None, enable_rtvi=False)

    async def feed() -> None:
        for item in frames:
            if isinstance(item, Frame):
                heard.queued.append((item, time.monotonic()))
                await task.queue_frame(item)
            else:
                await asyncio.sleep(item)
        await task.queue_frame(EndFrame())

    runner = PipelineRunner(handle_sigint=False)
    await asyncio.wait_for(asyncio.gather(runner.run(task), feed()), limit)
    return heard
