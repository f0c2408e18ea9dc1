"""Phoneme and viseme timings from a sentence's ids and the samples each took."""

from __future__ import annotations

from tts_service.engine.phonemes import symbols_of, timings, viseme

ID_MAP = {"_": [0], "^": [1], "$": [2], " ": [3], "h": [20], "a": [14], "ɪ": [74], "ˈ": [120]}


def test_spoken_phonemes_are_timed_and_padding_start_end_and_stress_are_not() -> None:
    # ^ _ h _ ˈ _ a _ ɪ _ $   (the ids Piper gives "hˈaɪ")
    ids = [1, 0, 20, 0, 120, 0, 14, 0, 74, 0, 2]
    samples = [0, 256, 512, 256, 0, 0, 1024, 256, 768, 256, 256]
    found = timings(ids, samples, offset=22050, rate=22050, symbols=symbols_of(ID_MAP), pad=0)
    assert [(p.phoneme, p.viseme) for p in found] == [("h", "DD"), ("a", "aa"), ("ɪ", "I")]
    starts = [round(p.start * 22050) - 22050 for p in found]
    ends = [round(p.end * 22050) - 22050 for p in found]
    assert starts == [256, 1024, 2304] and ends == [1024, 2304, 3328]


def test_visemes_of_common_symbols() -> None:
    expected = "PP FF TH DD kk CH SS nn RR aa E I O U sil sil".split()
    assert [viseme(s) for s in "pfθtkʃsnɚaeiou ,"] == expected
