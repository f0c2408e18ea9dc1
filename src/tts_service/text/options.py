"""How a request asks its text to be read: markup, clean-up, normalisation, pauses."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TextOptions:
    """The front-end's settings for one request (the defaults read text as Piper does)."""

    ssml: bool | None = None
    """True: the text is SSML; False: never; None: SSML when it starts with `<speak`."""
    clean: bool = False
    """Strip markdown, emoji and symbols (a language model's answer)."""
    normalize: bool = False
    """Spell out numbers, money, times, dates and the like for the voice's language."""
    normalize_skip: frozenset[str] = field(default_factory=frozenset)
    """Parts of normalize.PARTS left to espeak."""
    comma_pause: float | None = None
    """Seconds of silence after each comma (the text is cut there)."""
    paragraph_pause: float | None = None
    """Seconds of silence after each paragraph (a blank line)."""
