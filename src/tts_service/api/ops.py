"""Operational routes: liveness, readiness with queue figures, the voice list."""

from __future__ import annotations

import os
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from tts_service.api.connection import get_service
from tts_service.api.voice_catalog import voice_extras

router = APIRouter(tags=["operations"])


class MemoryReport(BaseModel):
    resident_bytes: int = Field(description="The process's resident memory now (RSS).")
    peak_resident_bytes: int = Field(description="The most it has had resident.")
    voices_bytes: int = Field(description="What the loaded voices take, measured as each loaded.")
    budget_bytes: int | None = Field(description="--memory-budget for loaded voices, or null.")
    idle_trims: int = Field(description="Times freed memory went back to the system when idle.")
    idle_settles: int = Field(
        description="Times the server went idle after work and settled its memory: freed "
        "memory beyond a warm working set went back to the system, or there was none."
    )


class CacheReport(BaseModel):
    enabled: bool = Field(description="The server keeps sentences (--cache, TTS_CACHE).")
    bytes: int = Field(description="What the cached sentences take now.")
    budget_bytes: int = Field(description="--cache-budget: the most they may take.")
    entries: int = Field(description="Sentences cached.")
    hits: int = Field(description="Sentences answered from the cache.")
    misses: int = Field(description="Sentences looked up and not found (then synthesized).")
    evictions: int = Field(description="Sentences dropped to keep the budget.")
    stored: int = Field(description="Sentences put in the cache.")


class HealthReport(BaseModel):
    """Readiness and the scheduler's figures (queue depth, totals; more fields may come)."""

    status: Literal["ok", "starting", "draining"]
    default_voice: str
    loaded_voices: list[str]
    ready_seconds: float | None = Field(
        description="From the process's start to ready (default voice loaded and warm)."
    )
    memory: MemoryReport
    cache: CacheReport
    pid: int = Field(description="The process that answered (several processes or replicas).")
    device: dict[str, str] = Field(
        description="Where voices run: `requested` (cpu, cuda, auto), `active` (cpu or "
        "cuda) and the `reason` for it."
    )


class LexiconFile(BaseModel):
    file: str = Field(description="e.g. en_US.lexicon.json, in a voice folder.")
    error: str | None = Field(None, description="Why it is not used (the voice still speaks).")


class VoiceDescription(BaseModel):
    name: str
    language: str
    sample_rate: int
    quality: str | None
    num_speakers: int
    speakers: dict[str, int] = Field(description="Speaker name -> id, for multi-speaker voices.")
    dataset: str | None
    loaded: bool = Field(description="In memory now (the first request to others loads them).")
    provider: str | None = Field(
        None, description="The onnxruntime provider it runs on; null until loaded."
    )
    word_timestamps: bool | None = Field(
        None, description="Whether it can time words (timestamps, captions); null until loaded."
    )
    chunked_decoding: bool | None = Field(
        None,
        description="Whether it can decode a sentence in chunks (its graph splits; see the "
        "README's Chunked decoding); null until loaded.",
    )
    available: bool = Field(description="False: its files are broken (see `error`).")
    error: str | None = Field(None, description="Why it cannot speak, when it cannot.")
    aliases: list[str] = Field([], description="Published aliases that also name it.")
    language_name: str | None = Field(None, description="e.g. English (United States).")
    defaults: dict[str, float | int | str] = Field(
        {}, description="How it speaks when a request does not say (per-voice defaults)."
    )
    memory_bytes: int | None = Field(
        None, description="What the loaded voice takes, measured when it loaded; null if not."
    )
    memory_measured: bool | None = Field(
        None, description="False if the server was busy as it loaded: memory_bytes estimated."
    )
    sessions: int | None = Field(
        None,
        description="ONNX sessions of the loaded voice for whole sentences: 2 with its "
        "all-cores session (a voice with chunked_decoding has its front end and decoder "
        "besides, on the same weights; memory_bytes counts them).",
    )
    lexicons: list[LexiconFile] = Field(
        [], description="The pronunciation lexicon files its language reads (README)."
    )


class VoicesMemory(BaseModel):
    voices_bytes: int = Field(description="What the loaded voices take together.")
    budget_bytes: int | None = Field(description="--memory-budget, or null.")


class VoiceList(BaseModel):
    default: str
    voices: list[VoiceDescription]
    memory: VoicesMemory


@router.get("/ping")
async def ping() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get(
    "/health",
    response_class=JSONResponse,
    responses={
        200: {"model": HealthReport, "description": "Ready."},
        503: {"model": HealthReport, "description": "Starting or draining: send no traffic."},
    },
)
async def health(request: Request) -> JSONResponse:
    """Readiness: the default voice is loaded and the server is not draining; 503 otherwise."""
    service = get_service(request)
    stats = service.stats()
    if service.draining:
        status = "draining"
    elif not service.ready:
        status = "starting"
    else:
        status = "ok"
    body: dict[str, Any] = {
        "status": status,
        "default_voice": service.settings.default_voice,
        "loaded_voices": service.voices.loaded_names(),
        "ready_seconds": service.ready_seconds,
        "memory": service.memory_report(),
        "cache": service.cache_report(),
        "pid": os.getpid(),
        "device": service.device.to_dict(),
        **stats,
    }
    return JSONResponse(body, status_code=200 if status == "ok" else 503)


@router.get("/voices", response_model=None, responses={200: {"model": VoiceList}})
async def voices(request: Request) -> dict[str, Any]:
    """Every installed voice: name, language, sample rate, quality, speakers, aliases,
    per-voice defaults. The voice folders are scanned again first (at most once per
    rescan_interval), so a voice copied in or removed shows at once.

    A voice whose files are broken is listed too, with `available: false` and the `error`
    a request for it would get, so one bad file never hides the others."""
    service = get_service(request)
    listing = await service.voices.listing()  # a voice just copied in is listed
    infos = {info.name: info for info in listing.infos}
    problems = listing.problems
    listed: list[dict[str, Any]] = []
    for name in listing.names:
        if name in infos:
            voice = service.voices.loaded_voice(name)
            listed.append(
                {
                    **infos[name].to_dict(),
                    "loaded": voice is not None,
                    "available": True,
                    "provider": None if voice is None else voice.provider,
                    "word_timestamps": None if voice is None else voice.word_timestamps,
                    "chunked_decoding": None if voice is None else voice.can_chunk,
                    **voice_extras(service, name),
                    "memory_bytes": voice.memory_bytes if voice is not None else None,
                    "memory_measured": voice.memory_measured if voice is not None else None,
                    "sessions": voice.sessions if voice is not None else None,
                    "lexicons": [
                        {"file": file, "error": error}
                        for file, error in service.voices.lexicons.files(infos[name].language)
                    ],
                }
            )
        elif name in problems:
            listed.append(
                {"name": name, "loaded": False, "available": False, "error": problems[name]}
            )
    memory = {
        "voices_bytes": service.voices.memory_bytes,
        "budget_bytes": service.voices.budget_bytes,
    }
    return {"default": service.settings.default_voice, "voices": listed, "memory": memory}
