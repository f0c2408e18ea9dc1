"""What word timestamps cost, for `tts-service bench`: the same sentences spoken by the
voice loaded as it is and by the voice loaded to report durations, in turns, plus the work
of mapping words (phonemizing each word alone, aligning, timing), against synthesis.

Two parts, both per sentence and relative to plain synthesis: the model's extra output
(the difference between the two voices' synthesis times, which is noise-sized and may
come out below zero) and the word mapping (measured directly). Times are this process's
CPU seconds (onnxruntime's threads included), which other processes on a shared machine
disturb less than wall time does."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

from tts_service.engine.voice import SynthesisOptions, Voice
from tts_service.engine.words import WordClock
from tts_service.voices.loaded import VoiceFiles

QUIET = SynthesisOptions(noise_scale=0.0, noise_w_scale=0.0)


@dataclass(frozen=True)
class WordCost:
    sentences: int
    """Sentences synthesized per pass (the text's words are mapped for all of them)."""
    synth_s: float
    """CPU seconds per sentence: the voice as it is (median of the passes' means)."""
    synth_timed_s: float
    """CPU seconds per sentence: the voice that reports durations."""
    words_s: float
    """CPU seconds per sentence of mapping words: phonemizing with words minus phonemizing
    alone, plus the clock."""

    @property
    def model_ratio(self) -> float:
        return self.synth_timed_s / self.synth_s - 1

    @property
    def words_ratio(self) -> float:
        return self.words_s / self.synth_s

    @property
    def ratio(self) -> float:
        """Everything timestamps add, relative to synthesis."""
        return self.model_ratio + self.words_ratio

    def to_dict(self) -> dict[str, Any]:
        return {
            "sentences": self.sentences,
            "synthesis_s_per_sentence": self.synth_s,
            "synthesis_with_durations_s_per_sentence": self.synth_timed_s,
            "word_mapping_s_per_sentence": self.words_s,
            "model_ratio": self.model_ratio,
            "word_mapping_ratio": self.words_ratio,
            "ratio_to_synthesis": self.ratio,
        }


def _timed(work: Any, *args: Any) -> tuple[Any, float]:
    started = time.process_time()
    result = work(*args)
    return result, time.process_time() - started


def _mapping_seconds(plain: Voice, timed: Voice, text: str) -> tuple[float, int]:
    """Extra seconds to phonemize `text` with its words and time them, and its sentences."""
    _, alone = _timed(plain.phonemize, text)
    (sentences, plans), with_words = _timed(timed.phonemize_words, text)
    clock = WordClock(text, plans, timed.sample_rate)
    started = time.process_time()
    for index, ids in enumerate(sentences):  # durations as a 1-frame-per-id stand-in
        clock.sentence(index, 256 * len(ids), [256] * len(ids), len(ids))
    timing = time.process_time() - started
    return with_words - alone + timing, len(sentences)


def measure_word_cost(
    files: VoiceFiles, text: str, sentences: int, repeats: int, threads: int
) -> WordCost:
    """Both voices take turns on each sentence (who goes first alternates), so outside
    load hits both alike; per-sentence means of each pass, medians over `repeats` passes."""
    plain = Voice.load(files.name, files.model, files.config, threads, alignments=False)
    timed = Voice.load(files.name, files.model, files.config, threads)
    ids = plain.phonemize(text)[:sentences]
    for voice in (plain, timed):  # a session's first runs allocate: not measured
        voice.synthesize(ids[0], QUIET)
    passes: list[tuple[float, float, float]] = []
    for repeat in range(repeats):
        spent = {plain: 0.0, timed: 0.0}
        order = (plain, timed) if repeat % 2 == 0 else (timed, plain)
        for sentence in ids:
            for voice in order:
                spent[voice] += _timed(voice.synthesize, sentence, QUIET)[1]
        extra, count = _mapping_seconds(plain, timed, text)
        passes.append((spent[plain] / len(ids), spent[timed] / len(ids), extra / count))
    return WordCost(
        sentences=len(ids),
        synth_s=statistics.median(p[0] for p in passes),
        synth_timed_s=statistics.median(p[1] for p in passes),
        words_s=statistics.median(p[2] for p in passes),
    )
