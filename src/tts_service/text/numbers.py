"""Numbers, dates and times as words in a voice's language, with `num2words` (dozens of
languages); a language it lacks gets None and the text is left to espeak."""

from __future__ import annotations

import functools
import re
from decimal import Decimal, InvalidOperation

from num2words import CONVERTER_CLASSES, num2words

_DIGIT_WORDS_SEPARATOR = " "


@functools.lru_cache(maxsize=64)
def language_code(language: str) -> str | None:
    """num2words' code for a voice language ("en_US" -> "en"), None if it has none."""
    code = language.replace("-", "_")
    for candidate in (code, code.split("_")[0].lower()):
        if candidate in CONVERTER_CLASSES:
            return candidate
    return None


def number(value: str, language: str, to: str = "cardinal") -> str | None:
    """`value` ("1984", "3.5", "-2") as words (to: cardinal, ordinal, year), or None."""
    code = language_code(language)
    if code is None:
        return None
    try:
        parsed = Decimal(value.replace(",", ""))
    except InvalidOperation:
        return None
    try:
        if to != "cardinal" or parsed == parsed.to_integral_value():
            return str(num2words(int(parsed), lang=code, to=to))
        return str(num2words(parsed, lang=code))
    except (NotImplementedError, OverflowError, ValueError, TypeError, KeyError):
        return None


def money(amount: str, currency: str, language: str) -> str | None:
    """ "3.50" "USD" as "three dollars, fifty cents" (in `language`), or None."""
    code = language_code(language)
    if code is None:
        return None
    english = code.startswith("en")
    decimal_comma = not english and re.fullmatch(r"\d+,\d{1,2}", amount) is not None
    cleaned = amount.replace(",", ".") if decimal_comma else amount.replace(",", "")
    try:
        value = Decimal(cleaned)
        if value == value.to_integral_value():  # no "zero cents"
            converter = CONVERTER_CLASSES[code]
            forms = converter.CURRENCY_FORMS[currency][0]
            whole = int(value)
            return f"{num2words(whole, lang=code)} {converter.pluralize(whole, forms)}"
        return str(num2words(value, lang=code, to="currency", currency=currency))
    except (InvalidOperation, NotImplementedError, OverflowError, ValueError, TypeError, KeyError):
        return None


def digits(text: str, language: str) -> str:
    """Each digit on its own ("42" -> "four two"); other characters as they are."""
    spoken = [number(c, language) or c if c.isdigit() else c for c in text if not c.isspace()]
    return _DIGIT_WORDS_SEPARATOR.join(spoken)


def characters(text: str) -> str:
    """Letter by letter ("NASA" -> "N A S A"): espeak names a lone letter."""
    return " ".join(c for c in text if not c.isspace())


_CLOCK = re.compile(r"^(\d{1,2})[:.h](\d{2})(?::(\d{2}))?\s*([aApP]\.?[mM]\.?)?$")


def clock(text: str, language: str) -> str | None:
    """ "8:00" as "eight o'clock" (English) or "eight" elsewhere, "14:05" as "fourteen oh
    five"; None when it is no time."""
    match = _CLOCK.match(text.strip())
    if match is None:
        return None
    hour, minute = int(match.group(1)), int(match.group(2))
    if hour > 24 or minute > 59:
        return None
    suffix = (match.group(4) or "").replace(".", "").upper()
    english = (language_code(language) or "").startswith("en")
    spoken_hour = number(str(hour), language)
    if spoken_hour is None:
        return None
    if minute == 0:
        said = f"{spoken_hour} o'clock" if english and not suffix else spoken_hour
    elif minute < 10 and english:
        said = f"{spoken_hour} oh {number(str(minute), language)}"
    else:
        said = f"{spoken_hour} {number(str(minute), language)}"
    return f"{said} {' '.join(suffix)}" if suffix else said
