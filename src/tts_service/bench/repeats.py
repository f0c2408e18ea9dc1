"""The repeated-phrase workload (issue 21): assistant-style replies drawn again and again,
many sharing sentences ("Sorry, I didn't catch that.", "Okay.", menu prompts), and what a
cache keyed per sentence or per whole request would answer from memory."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

PHRASES = (
    "Sorry, I didn't catch that.",
    "Sorry, I didn't catch that. Please try again.",
    "Sorry, I didn't catch that. Could you say it another way?",
    "Turning on the kitchen lights.",
    "Okay. Turning on the kitchen lights.",
    "Turning off the kitchen lights.",
    "Okay. Turning off the kitchen lights.",
    "The front door is locked.",
    "Good night. The front door is locked.",
    "It is 21 degrees inside. The heating is on.",
    "It is 18 degrees inside. The heating is on.",
    "Your timer is done.",
    "Your timer is done. Shall I start it again?",
    "Welcome to Acme. For sales, press one. For support, press two.",
    "For sales, press one. For support, press two. To hear these options again, press nine.",
    "Please hold. Your call is important to us.",
    "Please hold. An agent will be with you shortly.",
    "Playing your morning playlist.",
    "Okay. Playing your morning playlist.",
    "Good morning. Here is the weather. It will be sunny, with a high of 24 degrees.",
)
ALONE = (
    "Reminder: the dentist at three.",
    "The washing machine has finished.",
    "Someone is at the front door.",
    "The battery of the smoke alarm is low. Please replace it soon.",
    "Your package was delivered to the porch.",
)
"""Said alone, each first and then again, on an otherwise idle server: a hit against a
miss without other work in the way (none of them is in PHRASES)."""
SEED = 21
_SENTENCE_END = re.compile(r"(?<=[.?!])\s+")


@dataclass(frozen=True)
class RepeatPlan:
    clients: list[list[str]]
    """Each client's texts, sent one after another; the clients at once."""

    @property
    def texts(self) -> list[str]:
        """Every request, in the order a round-robin over the clients would send them."""
        longest = max(len(texts) for texts in self.clients)
        return [texts[i] for i in range(longest) for texts in self.clients if i < len(texts)]


def repeat_plan(requests: int, clients: int, seed: int = SEED) -> RepeatPlan:
    """`requests` texts drawn from PHRASES with Zipf weights (the first phrases are the
    most common, as a few replies are in an assistant's traffic), dealt to `clients`."""
    draw = random.Random(seed)
    weights = [1 / (rank + 1) for rank in range(len(PHRASES))]
    texts = draw.choices(PHRASES, weights=weights, k=requests)
    return RepeatPlan([texts[n::clients] for n in range(clients)])


def sentences_of(text: str) -> list[str]:
    return [part for part in _SENTENCE_END.split(text.strip()) if part]


def would_hit(texts: list[str]) -> dict[str, float]:
    """With a cache large enough for all of them: the share of sentences a per-sentence
    cache answers, of requests answered whole by either, and of requests a per-request
    cache answers (the same requests: a request seen whole has each sentence seen)."""
    seen_texts: set[str] = set()
    seen_sentences: set[str] = set()
    sentences = sentence_hits = whole_by_sentence = whole_by_request = request_sentences = 0
    for text in texts:
        parts = sentences_of(text)
        found = [part in seen_sentences for part in parts]
        sentences += len(parts)
        sentence_hits += sum(found)
        whole_by_sentence += all(found)
        whole_by_request += text in seen_texts
        request_sentences += len(parts) if text in seen_texts else 0
        seen_texts.add(text)
        seen_sentences.update(parts)
    return {
        "sentence_cache_sentence_hits": sentence_hits / sentences,
        "sentence_cache_whole_requests": whole_by_sentence / len(texts),
        "request_cache_sentence_hits": request_sentences / sentences,
        "request_cache_hits": whole_by_request / len(texts),
    }
