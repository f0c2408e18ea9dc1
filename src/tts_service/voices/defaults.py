"""Per-voice defaults: how a voice speaks when a request does not say.

From a `NAME.defaults.json` file in a voice folder and from the `voice_defaults` setting
(which wins, key by key). Home Assistant cannot send a speed with each request, so this is
how its users slow a voice down or pick a speaker. A broken defaults file makes its voice
unavailable with the reason, rather than silently speaking differently than configured.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError

from tts_service.errors import VoiceUnavailable
from tts_service.voices.stamps import Stamp, file_stamp

log = logging.getLogger(__name__)

DEFAULTS_SUFFIX = ".defaults.json"
MAX_DEFAULTS_BYTES = 64 * 1024


class VoiceDefaults(BaseModel):
    """Each field as a request gives it; unset fields leave the next default in charge."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    length_scale: float | None = Field(default=None, gt=0.05, le=20, description="> 1 is slower.")
    noise_scale: float | None = Field(default=None, ge=0, le=2)
    noise_w_scale: float | None = Field(default=None, ge=0, le=2)
    volume: float | None = Field(default=None, ge=0, le=10)
    sentence_silence: float | None = Field(default=None, ge=0, le=10)
    speaker: StrictStr | int | None = Field(default=None, description="Speaker name or id.")

    def over(self, base: VoiceDefaults) -> VoiceDefaults:
        """These values where set, `base`'s elsewhere."""
        return base.model_copy(update=self.model_dump(exclude_none=True))

    def given(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


NO_DEFAULTS = VoiceDefaults()


def validation_problem(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "the file"
    return f"{where}: {first['msg']}"


def read_defaults(path: Path) -> VoiceDefaults:
    """Parse one defaults file; ValueError says what is wrong with it."""
    with open(path, "rb") as handle:
        data = handle.read(MAX_DEFAULTS_BYTES + 1)
    if len(data) > MAX_DEFAULTS_BYTES:
        raise ValueError(f"is larger than {MAX_DEFAULTS_BYTES} bytes")
    try:
        raw = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"is not valid JSON ({error})") from None
    if not isinstance(raw, dict):
        raise ValueError("is not a JSON object")
    try:
        return VoiceDefaults.model_validate(raw)
    except ValidationError as error:
        raise ValueError(f"has a bad value ({validation_problem(error)})") from None


class DefaultsBook:
    """Every voice's defaults: its file (re-read when it changes) under the setting's."""

    def __init__(self, configured: dict[str, VoiceDefaults]) -> None:
        self._configured = configured
        self._files: dict[str, Path] = {}
        self._read: dict[Path, tuple[Stamp, VoiceDefaults | str]] = {}

    def use_files(self, files: dict[str, Path]) -> None:
        """The defaults files the last scan of the voice folders found, by voice name."""
        self._files = files
        self._read = {path: seen for path, seen in self._read.items() if path in files.values()}

    def for_voice(self, name: str) -> VoiceDefaults:
        """The voice's defaults; VoiceUnavailable when its defaults file is broken."""
        from_file = self._from_file(name)
        if isinstance(from_file, str):
            raise VoiceUnavailable(from_file)
        return self._configured.get(name, NO_DEFAULTS).over(from_file)

    def problem(self, name: str) -> str | None:
        from_file = self._from_file(name)
        return from_file if isinstance(from_file, str) else None

    def _from_file(self, name: str) -> VoiceDefaults | str:
        path = self._files.get(name)
        if path is None:
            return NO_DEFAULTS
        stamp = file_stamp(path)
        cached = self._read.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            found: VoiceDefaults | str = read_defaults(path)
        except (OSError, ValueError) as error:
            reason = (
                f"cannot be read ({error.strerror or type(error).__name__})"
                if isinstance(error, OSError)
                else str(error)
            )
            found = f"voice '{name}' is unavailable: its defaults file {path.name} {reason}"
            log.warning("%s", found)
        self._read[path] = (stamp, found)
        return found
