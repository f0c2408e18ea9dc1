"""One typed Settings object, read from `TTS_*` environment variables; CLI flags override."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tts_service.cores import available_cores as available_cores
from tts_service.cores import cgroup_cpu_limit as cgroup_cpu_limit
from tts_service.engine.splitcache import default_cache_dir
from tts_service.scheduling.batching import MAX_BATCH_SIZE, MAX_BATCH_WAIT, BatchRule
from tts_service.scheduling.policies import policy_class
from tts_service.voices.defaults import VoiceDefaults
from tts_service.voices.published import DEFAULT_BASE_URL

Policy = Literal["fair", "round_robin", "fifo"]

OPENAI_VOICE_NAMES = (
    "alloy",
    "ash",
    "ballad",
    "coral",
    "echo",
    "fable",
    "nova",
    "onyx",
    "sage",
    "shimmer",
    "verse",
    "marin",
    "cedar",
)


def default_download_dir() -> Path:
    """Where downloaded voices go unless told: the user's data folder (XDG)."""
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "tts-service" / "voices"


ZEROCONF_DEFAULT_NAME = "tts-service"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def parse_size(value: object) -> int:
    """Bytes from `1500000`, `512M`, `1.5G`, `800MB` or `2GiB` (units of 1024)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.match(str(value)) if isinstance(value, str | float) else None
    if match is None:
        raise ValueError(f"{value!r} is not a size: use bytes or a size such as 512M or 1.5G")
    return int(float(match[1]) * _SIZE_UNITS[match[2].lower()])


def _split_list(value: object, separators: str = ",") -> object:
    """Accept "a,b" from the environment as a list (paths may also use os.pathsep)."""
    if isinstance(value, str):
        for separator in separators[1:]:
            value = value.replace(separator, separators[0])
        parts = value.split(separators[0])
        return [part.strip() for part in parts if part.strip()]
    return value


def _size(value: object) -> object:
    return parse_size(value) if isinstance(value, str) else value


def _optional_size(value: object) -> object:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return None
    return parse_size(value)


_Size = Annotated[int, BeforeValidator(_size)]
"""Bytes, from the environment as `512M` or `1.5G` too."""
_OptionalSize = Annotated[int | None, BeforeValidator(_optional_size)]


# Chunked decoding's frames, from the environment as "48,40" (see the README).
_Margins = Annotated[
    list[Annotated[int, Field(ge=0, le=4096)]],
    NoDecode,
    BeforeValidator(_split_list),
    Field(min_length=2, max_length=2),
]
_ChunkSizes = Annotated[
    list[Annotated[int, Field(ge=1, le=65536)]],
    NoDecode,
    BeforeValidator(_split_list),
    Field(min_length=1),
]


class Settings(BaseSettings):
    """Everything the service can be told. Built once and passed explicitly."""

    model_config = SettingsConfigDict(env_prefix="TTS_", extra="forbid", validate_default=True)

    # --- network
    host: str = "127.0.0.1"
    port: int = Field(3002, ge=0, le=65535)

    # --- voices
    voices_dir: Annotated[list[Path], NoDecode] = Field(
        default_factory=list, description="Folders holding NAME.onnx + NAME.onnx.json voices."
    )
    default_voice: str = "en_US-joe-medium"
    preload_voices: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_loaded_voices: int = Field(4, ge=1, le=64)
    download_dir: Path = Field(
        default_factory=default_download_dir,
        description="Where downloaded voices go; also a voice folder (the others win).",
    )
    catalog: Path | None = Field(
        None,
        description="The published voice list to use (default: a refreshed copy in the "
        "download folder, else the one in the package).",
    )
    voices_url: str = Field(
        DEFAULT_BASE_URL, description="Base URL of the voice repository (or a mirror)."
    )
    download_missing: bool = Field(
        False, description="Download a catalog voice a request names that is not installed."
    )
    voice_downloads: bool | None = Field(
        None,
        description="POST /voices/{name}/download; default: on when an API key is set.",
    )
    rescan_interval: float = Field(
        2.0,
        ge=0,
        le=86_400,
        description="Least seconds between scans of the voice folders (0: only at start).",
    )
    voice_defaults: dict[str, VoiceDefaults] = Field(
        default_factory=dict,
        description="Voice name -> how it speaks when a request does not say.",
    )
    memory_budget: _OptionalSize = Field(
        None,
        ge=16 * 2**20,
        description="Most memory the loaded voices may take together, in bytes or with a "
        "unit (512M, 1.5G); the least recently used idle voice is unloaded to make room. "
        "None: only max_loaded_voices limits them.",
    )
    warm_heap: _Size = Field(
        128 * 2**20,
        ge=0,
        description="Freed memory an idle server keeps for the next request, in bytes or with "
        "a unit (128M): after work, only what it holds beyond this above its last settled "
        "size goes back to the system. 0: all of it (the next request faults it back in).",
    )

    cache: bool = Field(
        True, description="Answer a sentence said again (same voice, options, text) from memory."
    )
    cache_budget: _Size = Field(
        32 * 2**20, ge=0, description="Most memory for the audio cache (32M); LRU entries go first."
    )

    # --- inference
    cores: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="CPUs this server may use; default: detected (affinity, cgroup quota). "
        "A Ray Serve replica sets it to the CPUs Ray gives the replica.",
    )
    workers: int | None = Field(
        None, ge=1, le=64, description="Inference threads; default cores // threads_per_worker."
    )
    threads_per_worker: int = Field(1, ge=1, le=64)
    solo_first_sentence: bool | None = Field(
        None,
        description="Run a request's first sentence on all cores when the server is idle "
        "(faster first audio; a second ONNX session per voice). Default: on when "
        "threads_per_worker < cores.",
    )
    noise_scale: float | None = Field(None, ge=0.0, le=2.0)
    noise_w_scale: float | None = Field(None, ge=0.0, le=2.0)
    normalization: Literal["loudness", "peak"] = Field(
        "loudness",
        description="loudness: every sentence at loudness_target LUFS (ITU-R BS.1770), "
        "peaks limited under -1 dBTP; peak: Piper's own, each sentence's peak at full scale. "
        "A request may ask for the other.",
    )
    loudness_target: float = Field(
        -18.0, ge=-40.0, le=-10.0, description="Integrated loudness of speech, LUFS."
    )
    device: Literal["cpu", "cuda", "auto"] = Field(
        "cpu",
        description="Where voices run: cpu, cuda (onnxruntime-gpu; the server does not "
        "start if CUDA cannot be used) or auto (cuda when it works, else cpu).",
    )
    word_timestamps: bool = Field(
        True,
        description="Load voices so that they report phoneme durations (word timestamps "
        "and captions); the audio is the same either way.",
    )
    chunked_decoding: bool = Field(True, description="Decode sentences in chunks (README).")
    chunk_margins: _Margins = Field([48, 40], description="Context frames left, right.")
    chunk_frames: _ChunkSizes = Field([16, 32, 64, 128, 256], description="Chunks in turn.")
    split_cache_dir: Path = Field(default_factory=default_cache_dir, description="Split graphs.")

    # --- scheduling
    policy: Policy = "fair"
    express_lane: bool = Field(
        True,
        description="When every worker is busy, a new request's short first sentence runs at "
        "once on one more thread instead of waiting for a running sentence (fair policy, CPU, "
        "no batching).",
    )
    express_max_ids: int = Field(
        240,
        ge=1,
        le=10_000,
        description="Phoneme ids of the longest first sentence the express lane takes.",
    )
    worker_nice: int = Field(
        5,
        ge=0,
        le=19,
        description="How much lower the synthesis workers' CPU priority is than the event "
        "loop's, the phonemizer's and the express lane's (0: the same).",
    )
    batch_size: int = Field(
        1,
        ge=1,
        le=MAX_BATCH_SIZE,
        description="Most sentences (of one voice, same scales, similar length, from any "
        "requests) run as one batch of the model. For GPUs; 1 (off) on CPUs, where a batch "
        "is slower than its sentences one by one.",
    )
    batch_wait_ms: float = Field(
        5.0,
        ge=0,
        le=MAX_BATCH_WAIT * 1000,
        description="Most milliseconds a batch waits for more sentences, and only while "
        "other sentences are running (an idle server never waits).",
    )
    max_queued_requests: int = Field(
        1024,
        ge=0,
        le=100_000,
        description="Requests admitted beyond one per worker: the memory backstop. Admission "
        "itself is by predicted wait (a request that cannot start before its deadline is "
        "refused at once).",
    )
    max_queued_sentences: int = Field(4096, ge=1, le=10_000_000)
    max_sentences_ahead: int = Field(
        8, ge=1, le=1000, description="Sentences synthesized ahead of a slow reader."
    )
    request_timeout: float = Field(
        60.0, gt=0, le=3600, description="Longest a request may wait before synthesis starts."
    )
    drain_seconds: float = Field(30.0, ge=0, le=3600)

    # --- limits: every admitted request holds bounded memory for a bounded time
    max_text_chars: int = Field(20_000, ge=1, le=10_000_000)
    max_body_bytes: int = Field(1_000_000, ge=1024, le=1_000_000_000)
    max_audio_seconds: float = Field(
        600.0, gt=0, le=86_400, description="Most audio one request may produce (seconds)."
    )
    max_client_requests: int = Field(
        512,
        ge=1,
        le=100_000,
        description="Requests one client may hold at once (HTTP: remote address; "
        "WebSocket and Wyoming: connection).",
    )
    idle_timeout: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="A WebSocket or Wyoming connection that sends no text for this long "
        "while nothing is being spoken for it is closed.",
    )
    stall_timeout: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="A reader that takes no audio for this long while audio waits is cut off.",
    )

    # --- security and operation
    api_key: Annotated[list[str], NoDecode] = Field(default_factory=list, repr=False)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host names accepted besides the bind address and loopback names "
        "(DNS-rebinding guard); '*' accepts any. Bound to a wildcard address with none "
        "configured, any host is accepted.",
    )
    log_level: Literal["critical", "error", "warning", "info", "debug", "trace"] = "info"
    log_json: bool = False
    ui: bool = True
    wyoming_uri: str | None = None
    zeroconf: str | None = Field(
        None, description="Announce the Wyoming server on the local network under this name."
    )
    openai_voice_map: dict[str, str] = Field(
        default_factory=dict, description="OpenAI voice name -> Piper voice name."
    )

    @field_validator("voices_dir", mode="before")
    @classmethod
    def _paths_from_strings(cls, value: object) -> object:
        return _split_list(value, "," + os.pathsep)

    # Commas only: origins ("https://a.example") and keys may contain os.pathsep (":").
    @field_validator("preload_voices", "api_key", "cors_origins", "allowed_hosts", mode="before")
    @classmethod
    def _lists_from_strings(cls, value: object) -> object:
        return _split_list(value)

    @field_validator("zeroconf", mode="before")
    @classmethod
    def _zeroconf_name(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in _TRUE:
            return ZEROCONF_DEFAULT_NAME
        if isinstance(value, str) and value.strip().lower() in _FALSE:
            return None
        return value.strip() if isinstance(value, str) else value

    @field_validator("voices_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("voices_url must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _zeroconf_needs_tcp(self) -> Settings:
        if self.zeroconf is not None and not (self.wyoming_uri or "").startswith("tcp://"):
            raise ValueError("zeroconf announces the Wyoming server: it needs wyoming_uri tcp://")
        return self

    @model_validator(mode="after")
    def _default_workers(self) -> Settings:
        if self.workers is None:
            # Through __dict__: `model_fields_set` keeps telling a chosen count from this one.
            self.__dict__["workers"] = max(1, self.core_count // self.threads_per_worker)
        return self

    @property
    def core_count(self) -> int:
        """The CPUs this server plans for: `cores` if given, else what the process may use."""
        return self.cores if self.cores is not None else available_cores()

    @property
    def solo_threads(self) -> int | None:
        """Threads of the all-cores session, or None when solo first sentences are off."""
        cores = self.core_count
        enabled = self.solo_first_sentence
        if enabled is None:
            enabled = self.threads_per_worker < cores and policy_class(self.policy).solo_first
        return cores if enabled and cores > self.threads_per_worker else None

    @property
    def voice_folders(self) -> list[Path]:
        """Every folder voices are found in: the download folder first (a voice of the
        same name in a voices_dir wins), then voices_dir in order."""
        return list(dict.fromkeys([self.download_dir, *self.voices_dir]))

    @property
    def downloads_route(self) -> bool:
        """Whether POST /voices/{name}/download works (explicitly, or behind an API key)."""
        return self.voice_downloads if self.voice_downloads is not None else bool(self.api_key)

    @property
    def batch_rule(self) -> BatchRule:
        return BatchRule(self.batch_size, self.batch_wait_ms / 1000)

    @property
    def worker_count(self) -> int:
        assert self.workers is not None  # set by the validator
        return self.workers

    def openai_voice(self, name: str) -> str:
        """Map an OpenAI voice name to a Piper voice; other names pass through."""
        if name in self.openai_voice_map:
            return self.openai_voice_map[name]
        if name in OPENAI_VOICE_NAMES:
            return self.default_voice
        return name


class RaySettings(BaseSettings):
    """How `tts-service serve --ray` runs the service on Ray Serve (env `TTS_RAY_*`).

    Each replica is today's whole service; these settings size the replicas and tell Serve
    how to route, queue, scale and stop them (`tts_service.rayserve.plan` derives Serve's
    options from them and from the replica's own `Settings`)."""

    model_config = SettingsConfigDict(env_prefix="TTS_RAY_", extra="forbid")

    address: str | None = Field(
        None,
        description="Ray cluster to join ('auto', 'HOST:PORT' or 'ray://HOST:10001'); "
        "none: RAY_ADDRESS if set, else start a new local Ray on this machine.",
    )
    num_cpus: int | None = Field(
        None, ge=1, le=4096, description="CPUs of the local Ray this command starts (default: all)."
    )
    cpus_per_replica: int = Field(
        1, ge=1, le=256, description="CPUs Ray reserves for each replica; its workers follow."
    )
    min_replicas: int = Field(1, ge=1, le=10_000)
    max_replicas: int | None = Field(
        None, ge=1, le=10_000, description="Default: the cluster's CPUs ÷ cpus_per_replica."
    )
    initial_replicas: int | None = Field(None, ge=1, le=10_000)
    target_ongoing_per_worker: float = Field(
        2.0,
        gt=0,
        le=1000,
        description="Autoscaling target: ongoing requests per worker of a replica.",
    )
    queued_per_worker: int = Field(
        3,
        ge=0,
        le=1000,
        description="Requests a replica admits beyond one per worker, per worker (unless "
        "TTS_MAX_QUEUED_REQUESTS is set); its admission capacity is Serve's "
        "max_ongoing_requests.",
    )
    max_queued_requests: int = Field(
        64,
        ge=1,
        le=100_000,
        description="Requests waiting at Serve's proxy for a replica with room; past it 503.",
    )
    retry_after: float = Field(
        2.0, ge=0, le=3600, description="Retry-After (seconds) of the proxy's 503 when full."
    )
    upscale_delay: float = Field(30.0, ge=0, le=3600)
    downscale_delay: float = Field(600.0, ge=0, le=86_400)
    health_check_period: float = Field(5.0, gt=0, le=3600)
    health_check_timeout: float = Field(30.0, gt=0, le=3600)
    app_name: str = Field("tts-service", min_length=1, max_length=100)
