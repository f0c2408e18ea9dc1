"""Pure synthesis on top of Piper: one sentence of phoneme ids (or a batch of them) to
its audio and the samples each id took; the voice's sessions. Phonemizing is phonemizer.py.

No asyncio and no HTTP here; the scheduler decides when and on which thread this runs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from piper import PiperVoice, SynthesisConfig
from piper.config import PhonemeType, PiperConfig

from tts_service.engine import calibration, words
from tts_service.engine.alignment import aligned
from tts_service.engine.batch import BatchError as BatchError
from tts_service.engine.batch import batch_inputs, has_batch_axis, split_batch
from tts_service.engine.chunked import ChunkedDecoder, ChunkedSentence, ChunkPlan, RawSentence
from tts_service.engine.devices import CPU, Device
from tts_service.engine.loudness import LoudnessTarget, leveled
from tts_service.engine.options import SynthesisOptions as SynthesisOptions
from tts_service.engine.phonemizer import Phonemizer
from tts_service.engine.pieces import SentencePieces, leveled_pieces, to_pcm
from tts_service.engine.sessions import make_session as make_session
from tts_service.engine.split import ChunkSetup, chunk_support
from tts_service.engine.splitcache import voice_key
from tts_service.engine.weights import SharedWeights

CHUNK_MIN_IDS = 60
"""The shortest sentence decoded in pieces, in phoneme ids (~5 words): a shorter one is
done sooner whole than its front end and first chunk take (measured: bench/chunking.py)."""
# The all-cores session's first run (its one-time costs), when it is added.
FIRST_RUN_TEXT = "Ready."


@dataclass(frozen=True)
class VoiceInfo:
    """What a client may know about a voice."""

    name: str
    language: str
    sample_rate: int
    quality: str | None
    speakers: dict[str, int]
    num_speakers: int
    dataset: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "language": self.language,
            "sample_rate": self.sample_rate,
            "quality": self.quality,
            "num_speakers": self.num_speakers,
            "speakers": self.speakers,
            "dataset": self.dataset,
        }


def read_voice_info(name: str, config_path: Path) -> VoiceInfo:
    """Describe a voice from its `.onnx.json` alone, without loading the model."""
    with open(config_path, encoding="utf-8") as handle:
        raw = json.load(handle)
    language = raw.get("language", {}).get("code") or raw.get("espeak", {}).get("voice", "")
    return VoiceInfo(
        name=name,
        language=str(language),
        sample_rate=int(raw["audio"]["sample_rate"]),
        quality=raw.get("audio", {}).get("quality"),
        speakers={str(k): int(v) for k, v in (raw.get("speaker_id_map") or {}).items()},
        num_speakers=int(raw.get("num_speakers", 1)),
        dataset=raw.get("dataset"),
    )


@dataclass(frozen=True)
class SentenceAudio:
    """One synthesized sentence (as piper's `AudioChunk` is one)."""

    pcm: bytes
    """16-bit mono PCM at the voice's sample rate, the request's silence after it included."""
    samples_per_id: tuple[int, ...] | None = None
    """Samples each phoneme id took, when the model reports durations (for word timings);
    they sum to the speech, the silence after it not counted."""
    earlier: bytes = b""
    """What its reader already has of it: pieces sent while it was decoded (pieces.py);
    `pcm` is the rest."""

    @property
    def streamed(self) -> int:
        """Samples its reader already has."""
        return len(self.earlier) // 2

    def whole(self) -> SentenceAudio:
        """All of the sentence (what the audio cache keeps)."""
        if not self.earlier:
            return self
        return SentenceAudio(self.earlier + self.pcm, self.samples_per_id)


def piper_config(options: SynthesisOptions) -> SynthesisConfig:
    return SynthesisConfig(
        speaker_id=options.speaker_id,
        length_scale=options.length_scale,
        noise_scale=options.noise_scale,
        noise_w_scale=options.noise_w_scale,
    )


def resolved_scales(config: PiperConfig, options: SynthesisOptions) -> tuple[float, float, float]:
    """(noise, length, noise width) as Piper resolves them: the voice's own default for
    what the request leaves out."""
    return (
        float(config.noise_scale if options.noise_scale is None else options.noise_scale),
        float(config.length_scale if options.length_scale is None else options.length_scale),
        float(config.noise_w_scale if options.noise_w_scale is None else options.noise_w_scale),
    )


def speaker_of(config: PiperConfig, options: SynthesisOptions) -> int | None:
    """The speaker id Piper would feed the model (None: a single-speaker voice)."""
    if config.num_speakers <= 1:
        return None
    return config.default_speaker_id if options.speaker_id is None else options.speaker_id


class Voice:
    """A loaded Piper voice: phonemizer + one ONNX session shared by all workers.

    Optionally a second session using every core, for a sentence that has the machine to
    itself (the first sentence of a request on an idle server): one sentence runs ~1.5x
    faster on 2 threads than on 1, which is what a lone caller's first audio waits for.
    Both sessions use one copy of the model's weights (`weights`).
    """

    def __init__(
        self,
        info: VoiceInfo,
        piper_voice: PiperVoice,
        solo_voice: PiperVoice | None = None,
        durations: bool = False,
        weights: SharedWeights | None = None,
    ) -> None:
        self.info = info
        self._piper = piper_voice
        self.phonemizer = Phonemizer(piper_voice)
        self._solo = solo_voice
        self._durations = durations
        """The model reports each phoneme id's frames (see alignment.py)."""
        self.weights = weights
        """Kept alive with the voice: its sessions use this memory in place."""
        self._batch_axis = has_batch_axis(piper_voice.session)
        self.least_seconds_per_id: float | None = None
        """The least speech per phoneme id, per unit of length scale, this voice has made
        (a lower bound for the audio cap's estimate); None until it has spoken."""
        self.memory_bytes = 0
        """What loading it added to the process (measured by the catalog when it loads)."""
        self.memory_measured = True
        """False when the server was busy as it loaded: `memory_bytes` is an estimate."""
        self._chunker: ChunkedDecoder | None = None
        self.chunking_problem = "not asked for"
        """Why it decodes whole sentences only ("" when it can decode in chunks)."""
        self.raw_lufs: float | None = None
        """Its raw output's loudness (calibration.py), when it decodes in chunks."""

    @classmethod
    def load(
        cls,
        name: str,
        model_path: Path,
        config_path: Path,
        threads: int,
        spin: bool = True,
        solo_threads: int | None = None,
        alignments: bool = True,
        device: Device = CPU,
        chunking: ChunkPlan | None = None,
        split_cache: Path | None = None,
    ) -> Voice:
        """`alignments`: load the model patched to report phoneme durations (for word
        timestamps) when it can be; its audio is the same either way. On a GPU there is
        no solo session: every run has the device, not a share of the cores.

        `chunking`: also build the front-end and decoder sessions when the graph splits
        (CPU, shared weights; the split kept in `split_cache`), see `start_chunked`."""
        with open(config_path, encoding="utf-8") as handle:
            config = PiperConfig.from_dict(json.load(handle))
        # On a GPU each session copies the weights to the device: a host copy to share
        # would only cost memory (and there is no all-cores session to share it with).
        weights = SharedWeights(model_path) if device.active == "cpu" else None
        model: Path | bytes = model_path
        durations = False
        if alignments:  # the patch adds an output: the sessions still share the tensors
            patched = aligned(weights.graph() if weights else model_path.read_bytes(), name)
            durations = patched.durations
            if weights is not None:
                weights.use_graph(patched.source)
            else:
                model = patched.source
        session = make_session(model, threads, spin, weights, arena=False, device=device)
        piper_voice = PiperVoice(session=session, config=config)
        solo_voice = None
        if solo_threads is not None and solo_threads > threads and weights is not None:
            solo_session = make_session(model_path, solo_threads, weights=weights, arena=False)
            solo_voice = PiperVoice(session=solo_session, config=config)
        info = read_voice_info(name, config_path)
        voice = cls(info, piper_voice, solo_voice, durations, weights)
        # Once now, as part of the load: onnxruntime's first-run allocations are then in
        # the memory the load is measured to add, and no request pays their time.
        voice._run_once(piper_voice)
        if chunking is not None:
            setup = ChunkSetup(chunking, split_cache, threads, spin)
            voice._chunker, voice.chunking_problem, voice.raw_lufs = _chunking(voice, setup)
        return voice

    def decodes_in_pieces(self, phoneme_ids: list[int], options: SynthesisOptions) -> bool:
        """`in_pieces` would hand this sentence out in pieces."""
        can = self._chunker is not None and self.raw_lufs is not None
        return can and options.normalization != "peak" and len(phoneme_ids) >= CHUNK_MIN_IDS

    def in_pieces(
        self, phoneme_ids: list[int], options: SynthesisOptions, solo: bool = False
    ) -> SentencePieces | None:
        """The sentence's PCM piece by piece as it is decoded (pieces.py), or None when it
        is decoded whole: no split, Piper's peak normalisation (which needs the whole
        sentence's peak), or shorter than CHUNK_MIN_IDS."""
        if self.raw_lufs is None or not self.decodes_in_pieces(phoneme_ids, options):
            return None
        sentence = self.start_chunked(phoneme_ids, options)
        return leveled_pieces(sentence, self.raw_lufs, options, self.sample_rate)

    @property
    def can_chunk(self) -> bool:
        """It decodes a sentence in chunks (`start_chunked`)."""
        return self._chunker is not None

    @property
    def chunk_plan(self) -> ChunkPlan | None:
        """Its margins and chunk sizes (frames of `hop_length` samples), if it chunks."""
        return None if self._chunker is None else self._chunker.plan

    def start_chunked(self, phoneme_ids: list[int], options: SynthesisOptions) -> ChunkedSentence:
        """Run the front end of one sentence: its timings and length now, its raw audio
        chunk by chunk (each decoded as the iterator is advanced). Joined, the chunks are
        `raw_audio`'s within the margins' error (README: "Chunked decoding")."""
        if self._chunker is None:
            raise ValueError(f"voice {self.info.name} cannot decode in chunks")
        sentence = self._chunker.start(self._inputs(phoneme_ids, options), len(phoneme_ids))
        self._learn_pace(len(phoneme_ids), sentence.total_samples, options.length_scale)
        return sentence

    def raw_audio(
        self, phoneme_ids: list[int], options: SynthesisOptions, solo: bool = False
    ) -> RawSentence:
        """One sentence's raw float32 audio from the whole-sentence session (before peak
        normalisation, gain or volume), as `synthesize` starts from it."""
        piper_voice = self._solo if solo and self._solo is not None else self._piper
        result = piper_voice.phoneme_ids_to_audio(
            phoneme_ids, piper_config(options), include_alignments=self._durations
        )
        audio, samples_per_id = result if isinstance(result, tuple) else (result, None)
        raw = RawSentence.of(audio, samples_per_id, len(phoneme_ids))
        self._learn_pace(len(phoneme_ids), raw.audio.size, options.length_scale)
        return raw

    def _inputs(self, phoneme_ids: list[int], options: SynthesisOptions) -> dict[str, np.ndarray]:
        return batch_inputs(
            [phoneme_ids],
            resolved_scales(self._piper.config, options),
            [speaker_of(self._piper.config, options)],
        )

    @property
    def sessions(self) -> int:
        return 1 if self._solo is None else 2

    def add_solo_session(self, threads: int) -> None:
        """Add the all-cores session (on the same weights and graph) and run it once, so
        that its first solo sentence does not pay onnxruntime's first-run cost."""
        if self._solo is not None:
            return
        solo = PiperVoice(
            session=make_session(self._model_path(), threads, weights=self.weights, arena=False),
            config=self._piper.config,
        )
        self._run_once(solo)
        self._solo = solo

    def _run_once(self, piper_voice: PiperVoice) -> None:
        """A short sentence through the session, its audio thrown away."""
        quiet = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
        for ids in self.phonemize(FIRST_RUN_TEXT):
            piper_voice.phoneme_ids_to_audio(ids, quiet, include_alignments=self._durations)

    def _model_path(self) -> Path:
        if self.weights is None:
            raise RuntimeError(f"voice {self.info.name} has no shared weights (a CPU voice has)")
        return self.weights.path

    def _learn_pace(self, ids: int, samples: int, length_scale: float | None) -> None:
        scale = length_scale or self.default_length_scale
        if ids <= 0 or samples <= 0 or scale <= 0:
            return
        pace = samples / self.sample_rate / ids / scale
        least = self.least_seconds_per_id
        if least is None or pace < least:  # a benign race between workers: both are true
            self.least_seconds_per_id = pace

    @property
    def word_timestamps(self) -> bool:
        """It can time words: its model reports durations and espeak phonemizes it."""
        return self._durations and self._piper.config.phoneme_type == PhonemeType.ESPEAK

    @property
    def provider(self) -> str:
        """The onnxruntime provider its session runs on (CUDAExecutionProvider, ...)."""
        return str(self._piper.session.get_providers()[0])

    @property
    def has_solo_session(self) -> bool:
        return self._solo is not None

    @property
    def sample_rate(self) -> int:
        return self.info.sample_rate

    @property
    def default_length_scale(self) -> float:
        """The voice's own pace (its config's length_scale); a speed factor scales this."""
        return float(self._piper.config.length_scale)

    def phonemize(self, text: str) -> list[list[int]]:
        """Text to one list of phoneme ids per sentence (see `Phonemizer.phonemize`)."""
        return self.phonemizer.phonemize(text)

    def phonemize_words(self, text: str) -> tuple[list[list[int]], list[list[words.PlannedWord]]]:
        """`phonemize(text)` and each sentence's words (see `Phonemizer.phonemize_words`)."""
        return self.phonemizer.phonemize_words(text)

    def phonemize_piece_words(
        self, text: str, offset: int, piece: str
    ) -> tuple[list[list[int]], list[list[words.PlannedWord]]]:
        """`phonemize_words` for one piece (see `Phonemizer.phonemize_piece_words`)."""
        return self.phonemizer.phonemize_piece_words(text, offset, piece)

    def synthesize(
        self, phoneme_ids: list[int], options: SynthesisOptions, solo: bool = False
    ) -> SentenceAudio:
        """One sentence to its audio, exactly as `PiperVoice.synthesize()` makes it.

        `solo=True` runs it on the all-cores session when the voice has one.
        """
        piper_voice = self._solo if solo and self._solo is not None else self._piper
        result = piper_voice.phoneme_ids_to_audio(
            phoneme_ids, piper_config(options), include_alignments=self._durations
        )
        audio, samples_per_id = result if isinstance(result, tuple) else (result, None)
        assert isinstance(audio, np.ndarray)
        return self._spoken(audio, samples_per_id, phoneme_ids, options)

    @property
    def can_batch(self) -> bool:
        """Several sentences can run as one batch: the model takes a batch axis, and it
        reports durations, without which each sentence's true length in the padded output
        is unknown."""
        return self._durations and self._batch_axis

    def batch_key(self, options: SynthesisOptions) -> tuple[float, float, float] | None:
        """What sentences must share to run in one batch (None: this voice never batches).

        The model takes one `scales` tensor (noise, length, noise width) per run, not per
        sentence; the speaker and the per-sentence options (volume, silence) are free."""
        return resolved_scales(self._piper.config, options) if self.can_batch else None

    def synthesize_batch(
        self, items: Sequence[tuple[list[int], SynthesisOptions]]
    ) -> list[SentenceAudio]:
        """Several sentences in one run of the model, each as `synthesize` makes it alone
        (up to the last bits: see `split_batch`). All must have the same `batch_key`."""
        if len(items) == 1:
            return [self.synthesize(*items[0])]
        keys = {self.batch_key(options) for _, options in items}
        if None in keys:
            raise ValueError("this voice cannot run sentences in batches")
        if len(keys) != 1:
            raise ValueError("sentences in one batch must share noise and length scales")
        scales = resolved_scales(self._piper.config, items[0][1])
        ids = [phoneme_ids for phoneme_ids, _ in items]
        speakers = [speaker_of(self._piper.config, options) for _, options in items]
        inputs = batch_inputs(ids, scales, speakers)
        outputs = self._piper.session.run(None, inputs)
        hop = int(self._piper.config.hop_length)
        parts = split_batch(outputs, [len(one) for one in ids], hop)
        return [
            self._spoken(audio, samples_per_id, phoneme_ids, options)
            for (audio, samples_per_id), (phoneme_ids, options) in zip(parts, items, strict=True)
        ]

    def _spoken(
        self,
        audio: np.ndarray,
        samples_per_id: np.ndarray | None,
        phoneme_ids: list[int],
        options: SynthesisOptions,
    ) -> SentenceAudio:
        """The model's raw audio for one sentence to its PCM: at the target loudness, or
        as Piper finishes it (peak normalised); then volume, and the request's silence
        after it; one sentence alone or one of a batch alike."""
        if options.normalization == "peak":
            peak = np.max(np.abs(audio)) if audio.size else 0.0
            audio = np.zeros_like(audio) if peak < 1e-8 else audio / peak
        else:
            target = LoudnessTarget(lufs=options.loudness_target)
            audio = leveled(audio, self.sample_rate, target)
        data = to_pcm(audio, options.volume)
        self._learn_pace(len(phoneme_ids), len(data) // 2, options.length_scale)
        if options.sentence_silence > 0:
            data += bytes(2 * int(self.sample_rate * options.sentence_silence))
        if samples_per_id is None or len(samples_per_id) != len(phoneme_ids):
            return SentenceAudio(data)
        return SentenceAudio(data, tuple(int(n) for n in samples_per_id))


def _chunking(voice: Voice, setup: ChunkSetup) -> tuple[ChunkedDecoder | None, str, float | None]:
    """The voice's front-end and decoder sessions when its graph splits (or why not), and
    the gain a sentence in pieces gets: its raw loudness, kept beside the split."""
    quiet = SynthesisOptions(noise_scale=0, noise_w_scale=0)
    probe = voice._inputs(voice.phonemize(FIRST_RUN_TEXT)[0], quiet)
    hop = int(voice._piper.config.hop_length)
    support = chunk_support(voice.weights, voice._durations, hop, setup, probe)
    if support.decoder is None or voice.weights is None:
        return None, support.reason, None
    key, decoder = voice_key(voice.weights.path, "loudness"), support.decoder

    def measure() -> float:
        # Decoded in chunks, as the sentences this gain is for: the same audio (within the
        # margins' error) in a chunk's memory, not a whole sentence's (~35 MB a second).
        sentences = [voice.phonemize(text)[0] for text in calibration.SENTENCES]
        started = (decoder.start(voice._inputs(ids, quiet), len(ids)) for ids in sentences)
        raw = (np.concatenate(list(sentence.chunks)) for sentence in started)
        return calibration.measured(raw, voice.sample_rate)

    return decoder, support.reason, calibration.raw_loudness(setup.cache_dir, key, measure)
