"""One request's view of the audio cache: its sentences' keys are the voice (and the
identity of its files), each sentence's synthesis options (the request's, or its own where
a pause or a pace sets it apart) and its phoneme ids.

Everything that shapes a sentence's audio is in the key: the voice's name, its model and
config files as they were when it loaded (a file replaced on disk changes the stamp, so
the reloaded voice never meets the old voice's audio), its sample rate, the whole
`SynthesisOptions` value (speaker, scales, volume, silence and whatever later fields
shape the audio count without a change here) and the front end's output. The format is
not: encoding happens after the cache and is deterministic (tests check it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tts_service.cache.store import AudioCache, entry_bytes
from tts_service.engine.voice import SentenceAudio, SynthesisOptions
from tts_service.voices.stamps import Stamp


@dataclass(frozen=True)
class VoiceIdentity:
    """A loaded voice, as its files were when it loaded."""

    name: str
    model: Stamp
    config: Stamp
    sample_rate: int


@dataclass(frozen=True)
class RequestCache:
    """What the scheduler asks for a request's sentences (`scheduling.cached.SentenceStore`)."""

    store: AudioCache
    voice: VoiceIdentity

    def get(self, phoneme_ids: Sequence[int], options: SynthesisOptions) -> SentenceAudio | None:
        return self.store.get((self.voice, options, tuple(phoneme_ids)))

    def put(
        self, phoneme_ids: Sequence[int], options: SynthesisOptions, audio: SentenceAudio
    ) -> None:
        key = (self.voice, options, tuple(phoneme_ids))
        self.store.put(key, audio, entry_bytes(len(phoneme_ids), audio))
