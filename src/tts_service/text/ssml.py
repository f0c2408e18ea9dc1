"""The SSML subset: `<speak>` text to spoken segments, each character mapped to its place
in the SSML source.

Safety: defusedxml parses it first (no DTD, so no entity can be declared: no XML bomb, no
external entity); only then does expat walk it for character offsets, without recursion,
with the nesting depth bounded. Honoured: break (time, strength), p, s, prosody (rate),
say-as, sub, phoneme (IPA, through Piper's raw phonemes), mark. Accepted and ignored (their
text is spoken): emphasis, voice, lang, audio, and any unknown tag.
"""

from __future__ import annotations

import dataclasses
import re
import xml.parsers.expat
from dataclasses import dataclass, field
from xml.etree.ElementTree import ParseError

import defusedxml.ElementTree
from defusedxml import DefusedXmlException

from tts_service.errors import InvalidRequest
from tts_service.text import sayas
from tts_service.text.mapped import MappedText
from tts_service.text.pauses import DEFAULT_PAUSE, seconds
from tts_service.text.segments import MAX_PAUSE, Mark, Segment, with_pause

MAX_DEPTH = 64
"""Deepest element nesting taken; real SSML nests a handful."""
SPEAK = re.compile(r"^\s*(<speak[\s>/]|<\?xml[^>]*\?>|<!DOCTYPE)")
STRENGTHS = {
    "none": 0.0,
    "x-weak": 0.1,
    "weak": 0.25,
    "medium": DEFAULT_PAUSE,
    "strong": 0.75,
    "x-strong": 1.0,
}
RATES = {"x-slow": 0.5, "slow": 0.75, "medium": 1.0, "default": 1.0, "fast": 1.25, "x-fast": 1.5}
_PERCENT = re.compile(r"^([+-]?)(\d+(?:\.\d+)?)%$")
_REPLACING = frozenset({"say-as", "sub", "phoneme"})
"""Elements whose content is replaced (by its reading, alias or phonemes)."""


class InvalidSSML(InvalidRequest):
    code = "invalid_ssml"


def is_ssml(text: str) -> bool:
    """The text starts as an XML document (`<speak>`, or an XML or DOCTYPE declaration
    before it): how every transport recognises SSML."""
    return SPEAK.match(text) is not None


ROOT = "<speak>"


def parse(source: str, language: str) -> list[Segment]:
    """The segments `source` speaks; InvalidSSML (400) naming line and column if broken.
    A text asked to be read as SSML without its root ("Hi <break/> there") gets one."""
    if is_ssml(source):
        return _parse(source, language)
    try:
        segments = _parse(f"{ROOT}{source}</speak>", language)
    except InvalidSSML as error:
        if error.details.get("line") == 1:
            error.details["column"] = max(1, error.details["column"] - len(ROOT))
            error.message = re.sub(
                r"column \d+", f"column {error.details['column']}", error.message
            )
            error.args = (error.message,)
        raise
    return [_shifted(segment, -len(ROOT), len(source)) for segment in segments]


def _shifted(segment: Segment, by: int, size: int) -> Segment:
    text = segment.text
    starts = tuple(min(size, max(0, s + by)) for s in text.starts)
    ends = tuple(min(size, max(0, e + by)) for e in text.ends)
    return Segment(MappedText(text.text, starts, ends), segment.pause, segment.rate, segment.marks)


def _parse(source: str, language: str) -> list[Segment]:
    _check(source)
    reader = _Reader(source, language)
    parser = xml.parsers.expat.ParserCreate()
    parser.StartElementHandler = reader.start
    parser.EndElementHandler = reader.end
    parser.CharacterDataHandler = reader.characters
    reader.parser = parser
    try:
        parser.Parse(reader.data, True)
    except xml.parsers.expat.ExpatError as error:  # pragma: no cover - defusedxml saw it
        raise InvalidSSML(f"SSML is not well-formed: {error}", param="text") from None
    reader.flush()
    if reader.marks and reader.segments:  # marks after the last words: at the end
        last = reader.segments[-1]
        reader.segments[-1] = dataclasses.replace(last, marks=last.marks + tuple(reader.marks))
    return reader.segments


def _check(source: str) -> None:
    try:
        root = defusedxml.ElementTree.fromstring(
            source, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except ParseError as error:
        line, column = error.position
        raise InvalidSSML(
            f"SSML is not well-formed at line {line}, column {column + 1}: "
            f"{str(error).split(':')[0]}",
            param="text",
            line=line,
            column=column + 1,
        ) from None
    except DefusedXmlException:
        raise InvalidSSML("SSML may not have a DTD or entity declarations", param="text") from None
    if root.tag.rpartition("}")[2] != "speak":
        raise InvalidSSML(f"SSML's root must be <speak>, not <{root.tag}>", param="text")


@dataclass
class _Open:
    """An element being read: its name, its pace and what its replaced content holds."""

    name: str
    attrs: dict[str, str]
    rate: float
    content: list[str] = field(default_factory=list)
    start: int = 0


class _Reader:
    """Expat's events to segments, keeping every character's offset in the source."""

    def __init__(self, source: str, language: str) -> None:
        self.source = source
        self.language = language
        self.data = source.encode("utf-8")
        # expat reports byte offsets: the character each byte belongs to.
        self.char_at = (
            None
            if len(self.data) == len(source)
            else [k for k, c in enumerate(source) for _ in range(len(c.encode("utf-8")))]
        )
        self.parser: xml.parsers.expat.XMLParserType | None = None
        self.stack: list[_Open] = []
        self.parts: list[MappedText] = []
        self.marks: list[Mark] = []
        self.segments: list[Segment] = []

    # ------------------------------------------------------------------ positions

    def _here(self) -> int:
        assert self.parser is not None
        index = self.parser.CurrentByteIndex
        if self.char_at is None:
            return index
        return self.char_at[index] if index < len(self.char_at) else len(self.source)

    @property
    def rate(self) -> float:
        return self.stack[-1].rate if self.stack else 1.0

    @property
    def replacing(self) -> _Open | None:
        return next((o for o in reversed(self.stack) if o.name in _REPLACING), None)

    # --------------------------------------------------------------------- events

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        name = tag.rpartition("}")[2]
        if len(self.stack) >= MAX_DEPTH:
            raise InvalidSSML(f"SSML nests deeper than {MAX_DEPTH} elements", param="text")
        rate = self.rate
        if name in {"p", "s"}:
            self.flush()
        elif name == "prosody" and "rate" in attrs and self.replacing is None:
            self.flush()
            rate = rate * _rate(attrs["rate"])
        elif name == "break" and self.replacing is None:
            self.flush()
            self._pause(_break(attrs))
        elif name == "mark" and "name" in attrs:
            self.marks.append(Mark(attrs["name"], self._here()))
        self.stack.append(_Open(name, attrs, rate, start=self._here()))

    def end(self, tag: str) -> None:
        element = self.stack[-1]
        if element.name in {"p", "s"} or (element.name == "prosody" and "rate" in element.attrs):
            self.flush()  # at the element's own pace, before it is left
        self.stack.pop()
        if element.name in _REPLACING and self.replacing is None:
            self._replace(element, self._here())

    def characters(self, data: str) -> None:
        replacing = self.replacing
        if replacing is not None:
            replacing.content.append(data)
            return
        at = self._here()
        if self.source.startswith(data, at) and not self.source.startswith("&", at):
            self.parts.append(MappedText.verbatim(data, at))
        else:  # an entity or character reference, or a normalised line end
            end = self.source.find(";", at) + 1 if self.source.startswith("&", at) else at + 1
            self.parts.append(MappedText.standing_for(data, at, max(end, at + 1)))

    # -------------------------------------------------------------------- content

    def _replace(self, element: _Open, end: int) -> None:
        """A say-as, sub or phoneme, now that its content is known."""
        content = "".join(element.content)
        spoken = _reading(element, content, self.language)
        # The element's start tag starts at element.start; its content's place is what
        # a word of it should point at: the content, found after the start tag.
        # (expat puts an end tag's event at its "<": where the content ends). Without
        # content (`<sub alias="x"/>`), the element itself.
        inner = self.source.find(">", element.start) + 1
        start, stop = (inner, end) if content.strip() and end > inner else (element.start, inner)
        # Words around it stay apart; Piper's raw phonemes take the spacing of the source.
        padded = spoken if element.name == "phoneme" else f" {spoken} "
        self.parts.append(MappedText.standing_for(padded, start, stop))

    def _pause(self, pause: float) -> None:
        if self.segments and not self.parts:
            self.segments[-1] = with_pause(self.segments[-1], pause)
        elif self.segments or self.parts:
            self.flush(pause)
        # A pause before anything is said has nothing to follow: it is dropped.

    def flush(self, pause: float | None = None) -> None:
        """End the segment being read (with `pause` after it)."""
        text = MappedText.join(self.parts)
        self.parts = []
        if not text.text.strip():  # its marks wait for the next words (or the last ones)
            if pause is not None and self.segments:
                self.segments[-1] = with_pause(self.segments[-1], pause)
            return
        marks, self.marks = tuple(self.marks), []
        segment = Segment(text, None, self.rate, marks)
        self.segments.append(segment if pause is None else with_pause(segment, pause))


def _reading(element: _Open, content: str, language: str) -> str:
    """What a say-as, sub or phoneme says."""
    attrs = element.attrs
    if element.name == "sub":
        return attrs.get("alias", content)
    if element.name == "phoneme":
        ph = attrs.get("ph", "").replace("[", "").replace("]", "")
        if attrs.get("alphabet", "ipa").lower() != "ipa" or not ph.strip():
            return content  # only IPA is Piper's alphabet: the text is read instead
        return f"[[ {ph} ]]"
    return sayas.read(attrs.get("interpret-as", ""), attrs.get("format", ""), content, language)


def _break(attrs: dict[str, str]) -> float:
    if "time" in attrs:
        try:
            return seconds(attrs["time"], "break time")
        except ValueError as error:
            raise InvalidSSML(str(error), param="text") from None
    strength = attrs.get("strength", "medium")
    if strength not in STRENGTHS:
        raise InvalidSSML(
            f"break strength '{strength}' is not one of {', '.join(STRENGTHS)}", param="text"
        )
    return min(STRENGTHS[strength], MAX_PAUSE)


def _rate(value: str) -> float:
    """A prosody rate as a speed factor: a name, "80%", "+10%" or a number."""
    value = value.strip().lower()
    if value in RATES:
        return RATES[value]
    match = _PERCENT.match(value)
    try:
        if match is not None:
            sign, amount = match.group(1), float(match.group(2)) / 100
            factor = 1 + amount if sign == "+" else 1 - amount if sign == "-" else amount
        else:
            factor = float(value)
    except ValueError:
        factor = 0.0
    if not 0.2 <= factor <= 5.0:
        raise InvalidSSML(
            f"prosody rate '{value}' is not a name ({', '.join(RATES)}), a percentage or a "
            "factor between 20% and 500%",
            param="text",
        )
    return factor
