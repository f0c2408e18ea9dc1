"""Normalisation for the voice's language: what espeak reads badly, rewritten as words.

espeak reads cardinals, decimals, ordinals ("21st"), percentages, years and e-mail
addresses well in English, so they are left to it (tests check that it does). It reads
"$3.50" "dollar three point five zero", "8:00" "eight zero zero", ISO dates and phone
numbers with "dash", units letter by letter and URLs' "h t t p s colon slash slash":
those are rewritten here. Money, times and dates use num2words in the voice's language;
units, abbreviations and addresses have English words only (other languages keep them).
Each rewrite stands for the characters it replaces, so "$3.50" stays one timed word."""

from __future__ import annotations

import re
from collections.abc import Callable

from tts_service.text import numbers, raw, sayas
from tts_service.text.mapped import MappedText

PARTS = ("urls", "currency", "times", "dates", "phones", "units", "abbreviations")
"""What normalisation rewrites, in the order it does; each can be turned off."""

_SYMBOL_CURRENCY = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY", "₹": "INR"}
_CODES = "USD|EUR|GBP|JPY|INR|CHF|CAD|AUD"
_AMOUNT = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+,\d{2}(?!\d)|\d+(?:\.\d+)?"
_CURRENCY = re.compile(
    rf"(?<![\w.])([$€£¥₹])\s?({_AMOUNT})(?![\d.]\d)|(?<![\w.])({_AMOUNT})\s?(€|{_CODES})(?!\w)"
)
_TIME = re.compile(
    r"(?<![\d:.])([01]?\d|2[0-4]):([0-5]\d)(?::[0-5]\d)?(\s*[aApP]\.?[mM]\.?)?(?![\d:])"
)
_DATE = re.compile(r"(?<![\d/.-])(\d{4}-\d{1,2}-\d{1,2}|\d{1,2}/\d{1,2}/\d{4})(?![\d/-])")
_PHONE = re.compile(r"(?<![\w+])(\+\d{1,3}[ .-]?)?(\(?\d{3}\)?[ .-])?\d{3}[.-]\d{4}(?![\w-])")
_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"']+[^\s<>\"'.,;:!?)\]]")
_UNITS_EN = {
    "km": "kilometers",
    "m": "meters",
    "cm": "centimeters",
    "mm": "millimeters",
    "kg": "kilograms",
    "g": "grams",
    "mg": "milligrams",
    "lb": "pounds",
    "lbs": "pounds",
    "l": "liters",
    "ml": "milliliters",
    "km/h": "kilometers per hour",
    "mph": "miles per hour",
    "kWh": "kilowatt hours",
    "kW": "kilowatts",
    "W": "watts",
    "V": "volts",
    "GB": "gigabytes",
    "MB": "megabytes",
    "TB": "terabytes",
    "°C": "degrees Celsius",
    "°F": "degrees Fahrenheit",
    "ft": "feet",
    "mi": "miles",
    "h": "hours",
    "min": "minutes",
    "s": "seconds",
    "ms": "milliseconds",
}
_UNIT = re.compile(
    r"(?<![\w.])(\d+(?:\.\d+)?)\s?("
    + "|".join(re.escape(u) for u in sorted(_UNITS_EN, key=len, reverse=True))
    + r")(?![\w/°])"
)
_ABBREVIATIONS_EN = {
    "Dr.": "Doctor",
    "Mr.": "Mister",
    "Mrs.": "Missus",
    "Ms.": "Miz",
    "Prof.": "Professor",
    "St.": "Saint",
    "Jr.": "Junior",
    "Sr.": "Senior",
    "vs.": "versus",
    "e.g.": "for example",
    "i.e.": "that is",
    "approx.": "approximately",
    "No.": "number",
    "Nr.": "number",
}
# Titles before a name, "No." before a number only: "No. I won't." and "Main St." stay.
_BEFORE = {"St.": r"\s+[A-Z]", "No.": r"\s*\d", "Nr.": r"\s*\d"}
_ABBREVIATION = re.compile(
    r"(?<![\w.])("
    + "|".join(re.escape(a) + "(?=" + _BEFORE.get(a, r"\s|$") + ")" for a in _ABBREVIATIONS_EN)
    + ")"
)


def normalize(text: MappedText, language: str, skip: frozenset[str] = frozenset()) -> MappedText:
    """`text` with the parts not in `skip` rewritten for `language` (raw blocks kept)."""
    english = (numbers.language_code(language) or "").startswith("en")
    rules: list[tuple[str, re.Pattern[str], Callable[[re.Match[str]], str | None]]] = [
        ("currency", _CURRENCY, lambda m: _money(m, language)),
        ("times", _TIME, lambda m: numbers.clock(m.group(), language)),
        ("dates", _DATE, lambda m: sayas.date(m.group(), "", language)),
    ]
    if english:
        rules = [
            ("urls", _URL, _url),
            *rules,
            ("phones", _PHONE, lambda m: sayas.telephone(m.group(), language)),
            ("units", _UNIT, _unit),
            ("abbreviations", _ABBREVIATION, lambda m: _ABBREVIATIONS_EN[m.group(1)]),
        ]
    chosen = [(pattern, rewrite) for part, pattern, rewrite in rules if part not in skip]

    def rewrite_all(stretch: MappedText) -> MappedText:
        for pattern, rewrite in chosen:
            stretch = stretch.sub(pattern, rewrite)
        return stretch

    return raw.outside(text, rewrite_all)


def _money(match: re.Match[str], language: str) -> str | None:
    symbol, amount = match.group(1), match.group(2)
    if symbol is None:
        amount, code = match.group(3), match.group(4)
        code = _SYMBOL_CURRENCY.get(code, code)
    else:
        code = _SYMBOL_CURRENCY[symbol]
    return numbers.money(amount, code, language)


def _unit(match: re.Match[str]) -> str:
    value, unit = match.group(1), match.group(2)
    name = _UNITS_EN[unit]
    if value == "1" and name.endswith("s") and unit not in {"°C", "°F"}:
        name = name.removesuffix("s") if not name.endswith("ours") else name[:-1]
    return f"{value} {name.replace('degrees', 'degree') if value == '1' else name}"


def _url(match: re.Match[str]) -> str:
    """An address read as its host and path: "example dot com slash docs"."""
    address = re.sub(r"^https?://", "", match.group()).rstrip("/")
    host, _, path = address.partition("/")
    said = " dot ".join(host.removeprefix("www.").split("."))
    return said + ("".join(f" slash {p}" for p in path.split("/") if p) if path else "")
