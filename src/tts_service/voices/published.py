"""The published Piper voice list: every voice that can be downloaded by name.

The package ships a trimmed copy (`data/piper-voices.json`): name, language, quality,
speakers, dataset, files with their sizes and MD5 digests, aliases. It was made from the
piper-voices repository's `voices.json` (176 voices, as carried by the wyoming-piper 2.5.2
wheel on PyPI). `tts-service voices refresh-catalog` fetches a newer `voices.json`, checks
it as strictly as the packaged one and writes a trimmed copy to the download folder, which
then takes precedence.

Files sit in the repository as `{family}/{family}_{REGION}/{dataset}/{quality}/NAME.onnx`
(and `.onnx.json`, and an optional `MODEL_CARD`).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tts_service.voices.stamps import Stamp, file_stamp

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://huggingface.co/rhasspy/piper-voices/resolve/main"
"""The piper-voices repository; a mirror with the same layout works as well."""
PACKAGED_CATALOG = Path(__file__).parent.parent / "data" / "piper-voices.json"
CATALOG_FILE_NAME = "piper-voices.json"
"""The refreshed copy's name in the download folder."""

QUALITIES = ("x_low", "low", "medium", "high")
"""Worst to best: the order a language-only request ranks voices by."""

MODEL_CARD = "MODEL_CARD"
_MD5 = re.compile(r"^[0-9a-f]{32}$")
# What a voice name may be (as voices.py checks requests): a file name in a voice folder.
_NAME = re.compile(r"^[^\W_][\w.+-]{0,127}\Z")
# A file path inside the repository: plain segments, never `..` or an absolute path.
_SEGMENT = re.compile(r"^[^/\\\x00-\x1f]+$")


class CatalogError(ValueError):
    """A voice list that does not have the published shape; the message names the entry."""


@dataclass(frozen=True)
class CatalogFile:
    path: str
    """Relative to the repository root, e.g. `en/en_US/joe/medium/en_US-joe-medium.onnx`."""
    size_bytes: int
    md5_digest: str

    @property
    def file_name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Language:
    code: str
    family: str
    region: str
    name_english: str
    name_native: str
    country_english: str

    @property
    def description(self) -> str:
        """`English (United States)`."""
        if self.country_english:
            return f"{self.name_english} ({self.country_english})"
        return self.name_english


@dataclass(frozen=True)
class CatalogVoice:
    name: str
    language: Language
    quality: str
    num_speakers: int
    dataset: str
    files: tuple[CatalogFile, ...]
    aliases: tuple[str, ...] = ()

    def file(self, suffix: str) -> CatalogFile | None:
        """The file whose name is `suffix` (MODEL_CARD) or ends with `NAME` + suffix."""
        wanted = suffix if suffix == MODEL_CARD else self.name + suffix
        return next((f for f in self.files if f.file_name == wanted), None)

    @property
    def model(self) -> CatalogFile:
        found = self.file(".onnx")
        assert found is not None  # parse_voice checked it
        return found

    @property
    def config(self) -> CatalogFile:
        found = self.file(".onnx.json")
        assert found is not None  # parse_voice checked it
        return found

    @property
    def download_bytes(self) -> int:
        return self.model.size_bytes + self.config.size_bytes

    @property
    def description(self) -> str:
        """`Joe, English (United States), medium`."""
        speakers = f", {self.num_speakers} speakers" if self.num_speakers > 1 else ""
        title = self.dataset.replace("_", " ").title()
        return f"{title}, {self.language.description}, {self.quality}{speakers}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "language": self.language.code,
            "language_name": self.language.description,
            "quality": self.quality,
            "num_speakers": self.num_speakers,
            "dataset": self.dataset,
            "size_bytes": self.download_bytes,
            "aliases": list(self.aliases),
        }


@dataclass(frozen=True)
class PiperCatalog:
    voices: dict[str, CatalogVoice]
    aliases: dict[str, str] = field(default_factory=dict)
    """Alias -> voice name."""

    def get(self, name: str) -> CatalogVoice | None:
        """The voice named `name` or aliased so."""
        canonical = self.aliases.get(name, name)
        return self.voices.get(canonical)

    def __iter__(self) -> Iterator[CatalogVoice]:
        return iter(self.voices[name] for name in sorted(self.voices))

    def __len__(self) -> int:
        return len(self.voices)


# ------------------------------------------------------------------------- parsing


def _text(raw: dict[str, Any], key: str, where: str, required: bool = True) -> str:
    value = raw.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise CatalogError(f"{where}: '{key}' must be a non-empty string")
    return value


def _object(raw: object, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise CatalogError(f"{where}: must be a JSON object")
    return raw


def _parse_language(raw: object, where: str) -> Language:
    data = _object(raw, f"{where} language")
    return Language(
        code=_text(data, "code", where),
        family=_text(data, "family", where),
        region=_text(data, "region", where, required=False),
        name_english=_text(data, "name_english", where, required=False),
        name_native=_text(data, "name_native", where, required=False),
        country_english=_text(data, "country_english", where, required=False),
    )


def _parse_file(path: object, raw: object, where: str) -> CatalogFile:
    if not isinstance(path, str) or not all(_SEGMENT.match(p) for p in path.split("/")):
        raise CatalogError(f"{where}: file path {path!r} is not a relative path")
    if any(segment in (".", "..") for segment in path.split("/")):
        raise CatalogError(f"{where}: file path {path!r} leaves the repository")
    data = _object(raw, f"{where} file {path}")
    size, digest = data.get("size_bytes"), data.get("md5_digest")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise CatalogError(f"{where}: {path} needs a size_bytes >= 0")
    if not isinstance(digest, str) or not _MD5.match(digest):
        raise CatalogError(f"{where}: {path} needs an md5_digest of 32 hex digits")
    return CatalogFile(path, size, digest)


def parse_voice(name: str, raw: object) -> CatalogVoice:
    """One entry; CatalogError says which and what is wrong with it."""
    where = f"voice {name!r}"
    if not _NAME.match(name) or ".." in name:
        raise CatalogError(f"{where}: not a plain voice name")
    data = _object(raw, where)
    key = data.get("key", name)
    if key != name:
        raise CatalogError(f"{where}: its key {key!r} differs from its name")
    quality = _text(data, "quality", where)
    if quality not in QUALITIES:
        raise CatalogError(f"{where}: quality {quality!r} is not one of {', '.join(QUALITIES)}")
    speakers = data.get("num_speakers", 1)
    if not isinstance(speakers, int) or isinstance(speakers, bool) or speakers < 1:
        raise CatalogError(f"{where}: num_speakers must be an integer >= 1")
    files = _object(data.get("files"), f"{where} files")
    aliases = data.get("aliases") or []
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a for a in aliases):
        raise CatalogError(f"{where}: aliases must be a list of names")
    voice = CatalogVoice(
        name=name,
        language=_parse_language(data.get("language"), where),
        quality=quality,
        num_speakers=speakers,
        dataset=_text(data, "dataset", where, required=False) or _text(data, "name", where),
        files=tuple(_parse_file(path, info, where) for path, info in files.items()),
        aliases=tuple(aliases),
    )
    for suffix in (".onnx", ".onnx.json"):
        if voice.file(suffix) is None:
            raise CatalogError(f"{where}: lists no {name}{suffix} file")
    return voice


def parse_catalog(raw: object) -> PiperCatalog:
    """The whole list: every entry parses, names are unique, an alias names one voice and
    is no voice's own name."""
    entries = _object(raw, "the voice list")
    if not entries:
        raise CatalogError("the voice list is empty")
    voices = {name: parse_voice(name, entry) for name, entry in entries.items()}
    aliases: dict[str, str] = {}
    for voice in voices.values():
        for alias in voice.aliases:
            if alias in voices or aliases.get(alias, voice.name) != voice.name:
                raise CatalogError(f"alias {alias!r} of {voice.name!r} names another voice too")
            aliases[alias] = voice.name
    return PiperCatalog(voices, aliases)


def trimmed(catalog: PiperCatalog) -> dict[str, Any]:
    """What the package keeps of each entry (no speaker maps: the config has them)."""
    return {
        voice.name: {
            "language": {
                "code": voice.language.code,
                "family": voice.language.family,
                "region": voice.language.region,
                "name_native": voice.language.name_native,
                "name_english": voice.language.name_english,
                "country_english": voice.language.country_english,
            },
            "quality": voice.quality,
            "num_speakers": voice.num_speakers,
            "dataset": voice.dataset,
            "files": {
                f.path: {"size_bytes": f.size_bytes, "md5_digest": f.md5_digest}
                for f in voice.files
            },
            "aliases": list(voice.aliases),
        }
        for voice in catalog
    }


def dump_catalog(catalog: PiperCatalog) -> str:
    """The trimmed list as JSON, one voice per line (small diffs when it is refreshed)."""
    lines = [
        f"{json.dumps(name, ensure_ascii=False)}: {json.dumps(entry, ensure_ascii=False)}"
        for name, entry in trimmed(catalog).items()
    ]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def load_catalog(path: Path) -> PiperCatalog:
    with open(path, encoding="utf-8") as handle:
        try:
            raw = json.load(handle)
        except json.JSONDecodeError as error:
            raise CatalogError(f"{path.name} is not valid JSON ({error.msg})") from None
    return parse_catalog(raw)


# ------------------------------------------------------------------------- the one in use


class CatalogSource:
    """The voice list in use: `path` when given, else a refreshed copy in the download
    folder when there is one, else the packaged list. Read again when its file changes,
    so a refresh needs no restart; a broken file is reported and the packaged list used."""

    def __init__(self, path: Path | None, download_dir: Path) -> None:
        self._explicit = path
        self._refreshed = download_dir / CATALOG_FILE_NAME
        self._cached: tuple[tuple[Path, Stamp], PiperCatalog] | None = None

    @property
    def path(self) -> Path:
        if self._explicit is not None:
            return self._explicit
        return self._refreshed if self._refreshed.is_file() else PACKAGED_CATALOG

    def current(self) -> PiperCatalog:
        path = self.path
        stamp = (path, file_stamp(path))
        if self._cached is not None and self._cached[0] == stamp:
            return self._cached[1]
        try:
            catalog = load_catalog(path)
        except (OSError, CatalogError) as error:
            if path == PACKAGED_CATALOG:
                raise
            log.warning("voice list %s is unusable (%s): using the packaged one", path, error)
            catalog = load_catalog(PACKAGED_CATALOG)
        self._cached = (stamp, catalog)
        return catalog
