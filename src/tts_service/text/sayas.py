"""SSML `<say-as>`: how its content is read, for each `interpret-as`."""

from __future__ import annotations

import re

from tts_service.text import numbers

_DATE = re.compile(r"^(\d{1,4})[-/.](\d{1,2})[-/.](\d{1,4})$")
_NUMBER = re.compile(r"[+-]?\d[\d,]*(?:\.\d+)?")


def read(interpret_as: str, format: str, content: str, language: str) -> str:
    """The words for `content`; an interpretation it does not fit reads it as it is."""
    kind = interpret_as.strip().lower()
    text = content.strip()
    if kind in {"characters", "spell-out", "verbatim"}:
        return numbers.characters(text)
    if kind in {"digits", "telephone"}:
        return telephone(text, language) if kind == "telephone" else numbers.digits(text, language)
    if kind in {"cardinal", "number", "ordinal"}:
        to = "ordinal" if kind == "ordinal" or format == "ordinal" else "cardinal"
        match = _NUMBER.search(text)
        said = numbers.number(match.group(), language, to) if match else None
        return said or text
    if kind == "date":
        return date(text, format, language) or text
    if kind == "time":
        return numbers.clock(text, language) or text
    return text


def telephone(text: str, language: str) -> str:
    """Digit by digit, a short pause (a comma) between the groups: "555-0100" reads
    "five five five, zero one zero zero"."""
    groups = [g for g in re.split(r"[^\d+]+", text) if g]
    said = [numbers.digits(g.replace("+", ""), language) for g in groups]
    prefix = "plus " if text.lstrip().startswith("+") else ""
    return prefix + ", ".join(said)


def date(text: str, format: str, language: str) -> str | None:
    """A date in `format` (ymd, mdy, dmy; default: ymd when the first part has four
    digits, else mdy for English and dmy elsewhere) read as its words."""
    match = _DATE.match(text)
    if match is None:
        return None
    a, b, c = match.groups()
    english = (numbers.language_code(language) or "").startswith("en")
    order = format.lower() or ("ymd" if len(a) == 4 else "mdy" if english else "dmy")
    parts = dict(zip(order, (a, b, c), strict=False))
    if set(parts) != {"y", "m", "d"}:
        return None
    return spoken_date(int(parts["y"]), int(parts["m"]), int(parts["d"]), language)


_MONTHS_EN = (
    "January February March April May June July August September October November December"
).split()


def spoken_date(year: int, month: int, day: int, language: str) -> str | None:
    """ "July fourth, twenty twenty-six" in English; elsewhere the day, the month's number
    and the year as words (espeak has no month names table to lean on here)."""
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    said_year = numbers.number(str(year), language, "year")
    said_day = numbers.number(str(day), language, "ordinal")
    if said_year is None or said_day is None:
        return None
    if (numbers.language_code(language) or "").startswith("en"):
        return f"{_MONTHS_EN[month - 1]} {said_day}, {said_year}"
    said_month = numbers.number(str(month), language)
    return f"{said_day} {said_month} {said_year}"
