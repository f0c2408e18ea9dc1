"""The audio cache's store: least recently used out first, never over its budget, and
counted; a request's view keys on the voice's identity, the options and the ids."""

from __future__ import annotations

import dataclasses

from tts_service.cache.requests import RequestCache, VoiceIdentity
from tts_service.cache.store import AudioCache, entry_bytes
from tts_service.engine.voice import SentenceAudio, SynthesisOptions


def sentence(n: int, size: int = 1000) -> SentenceAudio:
    return SentenceAudio(bytes([n % 256]) * size, samples_per_id=(size // 2,))


def test_eviction_keeps_the_budget_least_recently_used_first() -> None:
    size = entry_bytes(1, sentence(0))
    cache = AudioCache(budget=3 * size + size // 2)  # room for three
    for n in range(3):
        cache.put(n, sentence(n), size)
    assert cache.get(0) is not None  # 0 is now the most recently used: 1 goes next
    cache.put(3, sentence(3), size)
    assert cache.get(1) is None
    assert [cache.get(n) is not None for n in (0, 2, 3)] == [True, True, True]
    report = cache.report()
    assert report["entries"] == 3 and report["bytes"] == 3 * size <= cache.budget
    assert report["evictions"] == 1 and report["hits"] == 4 and report["misses"] == 1


def test_the_budget_holds_whatever_is_put() -> None:
    cache = AudioCache(budget=50_000)
    for n in range(500):
        audio = sentence(n, size=100 + 37 * n % 4000)
        cache.put(n, audio, entry_bytes(3, audio))
        assert cache.bytes <= cache.budget
    assert 0 < len(cache) < 500


def test_an_entry_larger_than_the_budget_is_not_kept() -> None:
    cache = AudioCache(budget=100)
    cache.put("long", sentence(1), 5000)
    assert cache.get("long") is None and cache.bytes == 0 and len(cache) == 0


def test_putting_a_key_again_replaces_it() -> None:
    cache = AudioCache(budget=10_000)
    cache.put("k", sentence(1), 1200)
    cache.put("k", sentence(2), 1300)
    assert cache.get("k") == sentence(2) and cache.bytes == 1300 and len(cache) == 1


def test_every_part_of_the_key_counts() -> None:
    store = AudioCache(budget=1 << 20)
    voice = VoiceIdentity("v", (1, 2, 3), (4, 5, 6), 22050)
    options = SynthesisOptions(noise_scale=0.0)
    RequestCache(store, voice).put([1, 2, 3], options, sentence(9))
    assert RequestCache(store, voice).get([1, 2, 3], options) == sentence(9)
    voices = [
        dataclasses.replace(voice, model=(1, 2, 4)),
        dataclasses.replace(voice, config=None),
        dataclasses.replace(voice, sample_rate=16000),
        dataclasses.replace(voice, name="w"),
    ]
    assert all(RequestCache(store, other).get([1, 2, 3], options) is None for other in voices)
    spoken = [
        dataclasses.replace(options, volume=0.5),
        dataclasses.replace(options, speaker_id=1),
        dataclasses.replace(options, sentence_silence=0.2),  # a pause after it, say
        dataclasses.replace(options, length_scale=1.1),
        dataclasses.replace(options, normalization="peak"),
    ]
    assert all(RequestCache(store, voice).get([1, 2, 3], other) is None for other in spoken)
    assert RequestCache(store, voice).get([1, 2, 4], options) is None
