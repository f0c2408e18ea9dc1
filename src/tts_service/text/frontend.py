"""The text front-end: a request's text to the segments the phonemizer reads, each
character mapped back to the request (SSML or plain text with inline pauses, then the
clean-up and the normalisation the request asks for, then comma and paragraph pauses)."""

from __future__ import annotations

from tts_service.text import markdown, normalize, pauses, ssml
from tts_service.text.clean import speakable
from tts_service.text.lexicon import NO_LEXICON, Lexicon
from tts_service.text.mapped import MappedText
from tts_service.text.options import TextOptions
from tts_service.text.segments import Segment


def read(
    text: str, options: TextOptions, language: str, lexicon: Lexicon = NO_LEXICON
) -> list[Segment]:
    """The segments `text` speaks; an empty list when it says nothing. InvalidSSML for
    broken SSML. `lexicon`: the voice language's pronunciations."""
    text = speakable(text)  # keeps every character in its place
    as_ssml = ssml.is_ssml(text) if options.ssml is None else options.ssml
    if as_ssml:
        parsed = ssml.parse(text, language)
    else:
        parsed = pauses.split_inline(MappedText.verbatim(text), Segment(MappedText.verbatim("")))
    segments = [_rewrite(segment, options, language, lexicon) for segment in parsed]
    segments = pauses.comma_and_paragraph(segments, options.comma_pause, options.paragraph_pause)
    return _merged(segments)


def _rewrite(segment: Segment, options: TextOptions, language: str, lexicon: Lexicon) -> Segment:
    text = segment.text
    if options.clean:
        text = markdown.clean(text)
    text = lexicon.apply(text)  # before normalisation: an entry may name "Dr." or "km"
    if options.normalize:
        text = normalize.normalize(text, language, options.normalize_skip)
    if text is segment.text:
        return segment
    return Segment(text, segment.pause, segment.rate, segment.marks)


def _merged(segments: list[Segment]) -> list[Segment]:
    """Segments with nothing to say give their pause (and marks) to the one before."""
    kept: list[Segment] = []
    for segment in segments:
        if segment.speakable or not kept:
            kept.append(segment)
            continue
        last = kept[-1]
        pause = (
            None
            if last.pause is None and segment.pause is None
            else ((last.pause or 0.0) + (segment.pause or 0.0))
        )
        kept[-1] = Segment(last.text, pause, last.rate, last.marks + segment.marks)
    return [s for s in kept if s.speakable]
