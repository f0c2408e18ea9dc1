"""TTSService without HTTP: validation before admission, settings applied to requests,
streaming text input. Runs the real engine and scheduler with the tiny generated voices."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tts_service.config import Settings
from tts_service.errors import (
    InvalidRequest,
    ShuttingDown,
    SpeakerNotFound,
    TextTooLong,
    ValidationFailed,
    VoiceNotFound,
)
from tts_service.service import SpeechRequest, TTSService
from voicegen import expected_num_samples


@pytest.fixture
async def service(tiny_voices: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TTSService]:
    for key in list(os.environ):
        if key.startswith("TTS_"):
            monkeypatch.delenv(key)
    settings = Settings(
        voices_dir=[tiny_voices],
        default_voice="tiny-single",
        workers=2,
        max_text_chars=200,
        noise_scale=0.0,
        request_timeout=5,
    )
    service = TTSService(settings)
    await service.start()
    yield service
    await service.stop()


async def test_start_loads_the_default_voice(service: TTSService) -> None:
    assert service.ready and service.accepting
    assert service.voices.loaded.is_loaded("tiny-single")
    assert not service.voices.loaded.is_loaded("tiny-multi")


async def test_submit_synthesizes_every_sentence(service: TTSService) -> None:
    admitted = await service.submit(SpeechRequest(text="One. Two words. Three little words."))
    pcm = await service.scheduler.collect(admitted.job)
    sentences = admitted.voice.phonemize("One. Two words. Three little words.")
    assert admitted.sentences == len(sentences) == 3
    assert len(pcm) == 2 * sum(expected_num_samples(len(ids)) for ids in sentences)
    assert admitted.voice.info.name == "tiny-single"


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
async def test_empty_text_is_a_validation_error(service: TTSService, text: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        await service.submit(SpeechRequest(text=text))
    assert refused.value.status == 422 and refused.value.details["param"] == "text"


async def test_text_over_the_limit_is_too_long(service: TTSService) -> None:
    with pytest.raises(TextTooLong) as refused:
        await service.submit(SpeechRequest(text="a" * 201))
    assert refused.value.status == 413
    assert service.scheduler.stats()["totals"]["submitted"] == 0


async def test_text_with_nothing_to_say_is_refused(service: TTSService) -> None:
    with pytest.raises(ValidationFailed, match="nothing that can be spoken"):
        await service.submit(SpeechRequest(text="... -- ()"))


async def test_unknown_priority_voice_and_speaker(service: TTSService) -> None:
    with pytest.raises(InvalidRequest, match="priority"):
        await service.submit(SpeechRequest(text="Hi.", priority="urgent"))
    with pytest.raises(VoiceNotFound):
        await service.submit(SpeechRequest(text="Hi.", voice="nope"))
    with pytest.raises(SpeakerNotFound):
        await service.submit(SpeechRequest(text="Hi.", voice="tiny-multi", speaker="dave"))
    assert service.scheduler.stats()["totals"]["submitted"] == 0


async def test_settings_fill_in_what_the_request_leaves_out(service: TTSService) -> None:
    _, options = await service.resolve(SpeechRequest(text="x", voice="tiny-multi", speaker="bob"))
    assert options.speaker_id == 1
    assert options.noise_scale == 0.0  # the server's default
    assert options.noise_w_scale is None  # neither says: the voice's own
    _, options = await service.resolve(SpeechRequest(text="x", noise_scale=0.5, volume=0.3))
    assert options.noise_scale == 0.5 and options.volume == 0.3


async def test_a_request_may_shorten_the_deadline_never_extend_it(service: TTSService) -> None:
    short = await service.submit(SpeechRequest(text="Hi.", timeout=1.5))
    long = await service.submit(SpeechRequest(text="Hi.", timeout=999))
    default = await service.submit(SpeechRequest(text="Hi."))
    assert [short.job.timeout, long.job.timeout, default.job.timeout] == [1.5, 5, 5]
    for admitted in (short, long, default):
        await service.scheduler.collect(admitted.job)


async def test_streamed_text_equals_the_whole_text(service: TTSService) -> None:
    whole = await service.submit(SpeechRequest(text="First part. Second part. Third."))
    expected = await service.scheduler.collect(whole.job)

    opened = await service.open_stream(SpeechRequest(text=""))
    await service.add_text(opened, "   ")  # nothing to say: nothing admitted
    assert opened.admitted is None
    await service.add_text(opened, "First part. ")
    await service.add_text(opened, "   ")  # nothing to say: nothing added
    await service.add_text(opened, "Second part. Third.", close=True)

    assert opened.admitted is not None and opened.closed
    assert await service.scheduler.collect(opened.admitted.job) == expected
    assert opened.admitted.sentences == 3


async def test_an_open_stream_enters_the_scheduler_with_its_first_sentence(
    service: TTSService,
) -> None:
    opened = await service.open_stream(SpeechRequest(text="", voice="tiny-multi", client="c1"))
    stats = service.scheduler.stats()
    assert stats["totals"]["submitted"] == 0
    assert stats["queued_requests"] + stats["active_requests"] == 0

    await service.add_text(opened, "Now it speaks. ")
    assert opened.admitted is not None and opened.admitted.job.client == "c1"
    assert service.scheduler.stats()["totals"]["submitted"] == 1
    await service.add_text(opened, "", close=True)
    assert len(await service.scheduler.collect(opened.admitted.job)) > 0


async def test_a_stream_closed_before_any_sentence_is_never_admitted(
    service: TTSService,
) -> None:
    opened = await service.open_stream(SpeechRequest(text=""))
    await service.add_text(opened, " ... ", close=True)  # nothing speakable
    assert opened.closed and opened.admitted is None
    assert service.scheduler.stats()["totals"]["submitted"] == 0


async def test_a_stream_is_checked_when_it_opens(service: TTSService) -> None:
    with pytest.raises(VoiceNotFound):
        await service.open_stream(SpeechRequest(text="", voice="nope"))
    with pytest.raises(SpeakerNotFound):
        await service.open_stream(SpeechRequest(text="", voice="tiny-multi", speaker="dave"))
    with pytest.raises(InvalidRequest, match="priority"):
        await service.open_stream(SpeechRequest(text="", priority="urgent"))
    await service.scheduler.drain(0)
    with pytest.raises(ShuttingDown):
        await service.open_stream(SpeechRequest(text=""))


async def test_stop_refuses_further_work(service: TTSService) -> None:
    await service.stop()
    assert not service.ready and not service.accepting
    with pytest.raises(ShuttingDown):
        await service.submit(SpeechRequest(text="Too late."))
