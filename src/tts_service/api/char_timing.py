"""Character timings from word timings, for clients that align text by character
(ElevenLabs' `alignment`): each word's characters share its time evenly; the characters
between two words (spaces, punctuation) share the pause between them."""

from __future__ import annotations

from dataclasses import dataclass

from tts_service.engine.words import Word


@dataclass(frozen=True)
class CharTimes:
    """Each character of a text, when it starts and how long it lasts (seconds)."""

    chars: list[str]
    starts: list[float]
    durations: list[float]


def spoken_span(text: str, words: list[Word]) -> tuple[int, int]:
    """Where in `text` the sentence that `words` speak lies: from its first word to its
    last one's closing punctuation."""
    if not words:
        return 0, 0
    begin, end = words[0].char_start, words[-1].char_end
    while end < len(text) and not text[end].isspace():
        end += 1
    return begin, end


def _share(
    starts: list[float], durations: list[float], count: int, begin: float, end: float
) -> None:
    count = max(0, count)
    step = max(0.0, end - begin) / count if count else 0.0
    for index in range(count):
        starts.append(begin + index * step)
        durations.append(step)


def char_times(text: str, words: list[Word], start: float = 0.0, end: float = 0.0) -> CharTimes:
    """The timings of every character of `text`, whose words are `words` (offsets into
    `text`). Characters before the first word start at `start`; after the last, they
    share the time up to `end` (the end of the audio, when known)."""
    starts: list[float] = []
    durations: list[float] = []
    position, clock = 0, start
    for word in words:
        _share(starts, durations, word.char_start - position, clock, word.start)
        _share(starts, durations, word.char_end - word.char_start, word.start, word.end)
        position, clock = word.char_end, word.end
    _share(starts, durations, len(text) - position, clock, max(end, clock))
    # Words that overlap (never from the engine) must not leave the lists unequal.
    missing = len(text) - len(starts)
    starts, durations = starts[: len(text)] + [clock] * missing, durations[: len(text)]
    durations += [0.0] * missing
    return CharTimes(list(text), starts, durations)
