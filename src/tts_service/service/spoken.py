"""A request's text through the front-end and the phonemizer: its sentences' phoneme ids,
the options of the sentences that differ from the request's (a pause after them, another
pace), and each sentence's words mapped back to the request's characters."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from tts_service.engine.voice import SynthesisOptions, Voice
from tts_service.engine.words import PlannedMark, PlannedWord
from tts_service.text import frontend
from tts_service.text.lexicon import Lexicon
from tts_service.text.mapped import MappedText
from tts_service.text.options import TextOptions
from tts_service.text.segments import Mark, Segment


@dataclass
class Spoken:
    """What a request's text says, ready for the scheduler."""

    sentences: list[list[int]] = field(default_factory=list)
    plans: list[list[PlannedWord]] | None = None
    options: dict[int, SynthesisOptions] = field(default_factory=dict)
    """Per sentence index, where it differs from the request's options."""
    extra_silence: float = 0.0
    """Seconds of pauses beyond the request's sentence silence (for the audio cap)."""
    marks: list[list[PlannedMark]] = field(default_factory=list)
    """With words: each sentence's SSML marks."""


INLINE_CHARS = 2000
"""Texts up to this long are read on the event loop (well under a millisecond); a longer
one in a thread (a 20,000-character Markdown answer cleaned and normalised takes ~80 ms)."""


async def segments_of(
    text: str, reading: TextOptions, language: str, lexicon: Lexicon
) -> list[Segment]:
    """`frontend.read`, off the event loop for a long text."""
    if len(text) <= INLINE_CHARS:
        return frontend.read(text, reading, language, lexicon)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, frontend.read, text, reading, language, lexicon)


Phonemize = Callable[[str], Awaitable[list[list[int]]]]
PhonemizeWords = Callable[[str], Awaitable[tuple[list[list[int]], list[list[PlannedWord]]]]]


async def speak(
    segments: Sequence[Segment],
    voice: Voice,
    options: SynthesisOptions,
    phonemize: Phonemize,
    phonemize_words: PhonemizeWords | None,
) -> Spoken:
    """Phonemize each segment (with its words when `phonemize_words` is given) and give
    its sentences their pause and pace."""
    spoken = Spoken(plans=[] if phonemize_words is not None else None)
    for segment in segments:
        if phonemize_words is not None and spoken.plans is not None:
            sentences, plans = await phonemize_words(segment.text.text)
            mapped = [remap(plan, segment.text) for plan in plans]
            spoken.plans += mapped
            spoken.marks += place_marks(segment.marks, mapped, sentences)
        else:
            sentences = await phonemize(segment.text.text)
        if not sentences:
            continue
        first = len(spoken.sentences)
        spoken.sentences += sentences
        paced = _paced(voice, options, segment.rate)
        for index in range(first, len(spoken.sentences)):
            last = index == len(spoken.sentences) - 1
            mine = paced
            if last and segment.pause is not None:
                mine = dataclasses.replace(paced, sentence_silence=segment.pause)
                spoken.extra_silence += segment.pause - options.sentence_silence
            if mine != options:
                spoken.options[index] = mine
    return spoken


def place_marks(
    marks: Sequence[Mark], plans: Sequence[Sequence[PlannedWord]], sentences: Sequence[list[int]]
) -> list[list[PlannedMark]]:
    """Each sentence's marks: a mark is reached where the first word at or after it in the
    request starts, or at the end of the segment's speech when no word follows it."""
    placed: list[list[PlannedMark]] = [[] for _ in sentences]
    for mark in marks:
        spot = next(
            (
                (k, word.id_start)
                for k, plan in enumerate(plans)
                for word in plan
                if word.char_start >= mark.at
            ),
            None,
        )
        if spot is None and sentences:
            spot = (len(sentences) - 1, len(sentences[-1]))
        if spot is not None:
            placed[spot[0]].append(PlannedMark(mark.name, spot[1]))
    return placed


def _paced(voice: Voice, options: SynthesisOptions, rate: float) -> SynthesisOptions:
    if rate == 1.0:
        return options
    scale = options.length_scale or voice.default_length_scale
    return dataclasses.replace(options, length_scale=scale / rate)


def remap(plan: Sequence[PlannedWord], text: MappedText) -> list[PlannedWord]:
    """A sentence's words, from offsets into a segment's text to the request's; the words
    of one rewrite ("three dollars fifty" for "$3.50") become one word."""
    mapped: list[PlannedWord] = []
    for word in plan:
        start, end = text.span(word.char_start, word.char_end)
        if mapped and (mapped[-1].char_start, mapped[-1].char_end) == (start, end):
            last = mapped[-1]
            mapped[-1] = PlannedWord(start, end, last.id_start, word.id_end)
        else:
            mapped.append(PlannedWord(start, end, word.id_start, word.id_end))
    return mapped
