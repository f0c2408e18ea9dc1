"""Realistic English sentences, the same for the same seed: every text the bench speaks."""

from __future__ import annotations

import random

_SUBJECTS = (
    "The committee",
    "Our new neighbour",
    "A young engineer",
    "The old lighthouse keeper",
    "Most of the students",
    "The city council",
    "My grandmother",
    "The delivery driver",
    "A small team of volunteers",
    "The head librarian",
    "Nobody in the village",
    "The visiting professor",
)
_VERBS = (
    "reviewed",
    "painted",
    "described",
    "repaired",
    "announced",
    "carried",
    "discovered",
    "explained",
    "organised",
    "photographed",
    "questioned",
    "delivered",
)
_OBJECTS = (
    "the quarterly budget",
    "a wooden fence behind the school",
    "the results of the survey",
    "an unusual pattern in the weather data",
    "three boxes of fresh vegetables",
    "the schedule for the summer festival",
    "a letter that had been lost for years",
    "the broken bridge near the river",
    "twenty seven pages of handwritten notes",
    "the plan to open a second library",
)
_TAILS = (
    "on Tuesday afternoon",
    "before the storm arrived",
    "with remarkable patience",
    "while everyone else was asleep",
    "after a long and careful discussion",
    "in less than an hour",
    "at the end of a very busy week",
)
_CLAUSES = (
    ", and nobody seemed surprised",
    ", although the instructions were far from clear",
    ", which took most of the morning",
    ", so the meeting ended early",
)
_QUESTIONS = (
    "Do you think it will rain again tomorrow?",
    "Where did you leave the keys to the garden shed?",
    "How many people are coming to dinner on Friday?",
    "Have you ever seen the northern lights?",
)


def make_sentences(count: int, seed: int) -> list[str]:
    """`count` varied, realistic English sentences; the same seed gives the same ones."""
    rng = random.Random(seed)
    sentences = []
    for _ in range(count):
        if rng.random() < 0.12:
            sentences.append(rng.choice(_QUESTIONS))
            continue
        parts = [rng.choice(_SUBJECTS), rng.choice(_VERBS), rng.choice(_OBJECTS)]
        if rng.random() < 0.5:
            parts.append(rng.choice(_TAILS))
        clause = rng.choice(_CLAUSES) if rng.random() < 0.15 else ""
        sentences.append(" ".join(parts) + clause + ".")
    return sentences


def make_text(sentences: int, seed: int) -> str:
    return " ".join(make_sentences(sentences, seed))
