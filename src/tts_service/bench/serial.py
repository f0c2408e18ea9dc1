"""Serial Piper: plain `piper.PiperVoice` in this process, the reference every ratio uses."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from piper import PiperVoice
from piper.config import PiperConfig

from tts_service.engine.voice import make_session
from tts_service.voices.loaded import VoiceFiles


class SerialPiper:
    """(a): plain Piper in this process, onnxruntime on `threads` threads."""

    def __init__(self, files: VoiceFiles, threads: int) -> None:
        with open(files.config, encoding="utf-8") as handle:
            config = PiperConfig.from_dict(json.load(handle))
        session = make_session(files.model, threads)
        self.voice: PiperVoice = PiperVoice(session=session, config=config)
        self.sample_rate: int = config.sample_rate
        self.threads = threads

    def synthesize_all(self, texts: Sequence[str]) -> float:
        """One text after another, like a single caller; returns audio seconds."""
        chunks = (chunk for text in texts for chunk in self.voice.synthesize(text))
        return sum(len(chunk.audio_int16_bytes) // 2 for chunk in chunks) / self.sample_rate

    def first_audio(self, text: str) -> float:
        """Seconds until Piper yields its first chunk (it phonemizes the whole text first)."""
        started = time.perf_counter()
        next(iter(self.voice.synthesize(text)))
        return time.perf_counter() - started

    def first_sentences(self, text: str, count: int) -> tuple[list[bytes], float]:
        """PCM of the first `count` sentences and the seconds it took to make them."""
        started = time.perf_counter()
        pcm = []
        for chunk in self.voice.synthesize(text):
            pcm.append(chunk.audio_int16_bytes)
            if len(pcm) == count:
                break
        return pcm, time.perf_counter() - started

    def phonemize_seconds(self, text: str) -> float:
        started = time.perf_counter()
        self.voice.phonemize(text)
        return time.perf_counter() - started
