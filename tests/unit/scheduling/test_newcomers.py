"""The newcomer rule and the express lane (issue 18), stepped with a gated fake voice: no
clock, the order of calls and the state of jobs while a worker is held are asserted."""

from __future__ import annotations

import asyncio
import os
import struct
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

from tts_service.engine.voice import SentenceAudio, SynthesisOptions
from tts_service.scheduling.batching import BatchRule
from tts_service.scheduling.jobs import JobState, Priority
from tts_service.scheduling.scheduler import Scheduler
from tts_service.scheduling.workers import ExpressRule, lower_priority

OPTIONS = SynthesisOptions()
T = TypeVar("T")
Call = tuple[int, int]


def sentences(tag: int, count: int, length: int = 2) -> list[list[int]]:
    """Fake phoneme ids that carry their identity, [tag, index], padded to `length`."""
    return [[tag, index] + [0] * (length - 2) for index in range(count)]


class GatedVoice:
    """Records calls; holds every sentence of the tags in `hold` until `release(tag)`, and
    call number `hold_call` (0 is the first) until `release()`."""

    sample_rate = 1000

    def __init__(
        self, hold: tuple[int, ...] = (), hold_call: int | None = None, solo: bool = False
    ) -> None:
        self.has_solo_session = solo
        self.solo_calls: list[Call] = []
        """The calls asked to run on the all-cores session."""
        self.hold_call = hold_call
        self.call_held = threading.Event()
        self._call_gate = threading.Event()
        self.calls: list[Call] = []
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()
        self._gates = {tag: threading.Event() for tag in hold}
        self.holding = {tag: threading.Event() for tag in hold}

    def synthesize(
        self, phoneme_ids: list[int], options: SynthesisOptions, solo: bool = False
    ) -> SentenceAudio:
        tag, index = phoneme_ids[:2]
        with self._lock:
            number = len(self.calls)
            self.calls.append((tag, index))
            if solo:
                self.solo_calls.append((tag, index))
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            if number == self.hold_call:
                self.call_held.set()
                self._call_gate.wait(timeout=10)
            if tag in self._gates:
                self.holding[tag].set()
                self._gates[tag].wait(timeout=10)
            return SentenceAudio(struct.pack("<hh", tag, index) * 4)
        finally:
            with self._lock:
                self.active -= 1

    def release(self, tag: int | None = None) -> None:
        if tag is None:
            self._call_gate.set()
        for key, gate in self._gates.items():
            if tag is None or key == tag:
                gate.set()

    async def held(self, tag: int) -> None:
        assert await asyncio.to_thread(self.holding[tag].wait, 5), f"{tag} never ran"


@pytest.fixture
def schedulers() -> Iterator[list[tuple[Scheduler, GatedVoice]]]:
    made: list[tuple[Scheduler, GatedVoice]] = []
    yield made
    for scheduler, voice in made:
        voice.release()
        scheduler.stop()


def start(made: list[tuple[Scheduler, GatedVoice]], voice: GatedVoice, **kwargs: Any) -> Scheduler:
    kwargs.setdefault("workers", 1)
    scheduler = Scheduler(**kwargs)
    scheduler.start()
    made.append((scheduler, voice))
    return scheduler


async def bounded(work: Awaitable[T]) -> T:
    return await asyncio.wait_for(work, 10)


async def until(condition: Callable[[], bool]) -> None:
    """Poll a condition another thread makes true (a bug fails, never hangs)."""
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached in time")


LONG, SHORT, OTHER = 1, 2, 3


@pytest.mark.parametrize("clients", [1, 4, 12, 32])
async def test_a_newcomer_is_next_whatever_the_number_of_clients(
    schedulers: list[tuple[Scheduler, GatedVoice]], clients: int
) -> None:
    """Every long client has been served a sentence and the worker is held in the next;
    a one-sentence request from a new client is the very next sentence it runs."""
    voice = GatedVoice(hold_call=clients)
    scheduler = start(schedulers, voice, max_sentences_ahead=100)
    longs = [
        scheduler.submit(voice, sentences(100 + n, 6), OPTIONS, client=f"long{n}")
        for n in range(clients)
    ]
    assert await asyncio.to_thread(voice.call_held.wait, 5)
    assert {tag for tag, _ in voice.calls[:clients]} == {100 + n for n in range(clients)}
    short = scheduler.submit(voice, sentences(SHORT, 1), OPTIONS, client="newcomer")
    voice.release()
    await bounded(asyncio.gather(*(scheduler.collect(j) for j in (*longs, short))))
    assert voice.calls[clients + 1] == (SHORT, 0)


async def test_between_newcomers_the_one_with_least_to_say_goes_first(
    schedulers: list[tuple[Scheduler, GatedVoice]],
) -> None:
    voice = GatedVoice(hold=(LONG,))
    scheduler = start(schedulers, voice)
    holder = scheduler.submit(voice, sentences(LONG, 1), OPTIONS, client="holder")
    await voice.held(LONG)
    long = scheduler.submit(voice, sentences(OTHER, 20), OPTIONS, client="new-long")
    short = scheduler.submit(voice, sentences(SHORT, 1), OPTIONS, client="new-short")
    voice.release()
    await bounded(asyncio.gather(*(scheduler.collect(j) for j in (holder, long, short))))
    assert voice.calls[1] == (SHORT, 0)


async def test_a_client_flooding_requests_gets_one_clients_share(
    schedulers: list[tuple[Scheduler, GatedVoice]],
) -> None:
    """One client with 40 three-sentence requests against another client's one: the other
    client is served every other sentence, as if the flood were one request."""
    voice = GatedVoice(hold=(LONG,))
    scheduler = start(schedulers, voice, max_sentences_ahead=100)
    holder = scheduler.submit(voice, sentences(LONG, 1), OPTIONS, client="flood")
    await voice.held(LONG)
    flood = [
        scheduler.submit(voice, sentences(100 + n, 3), OPTIONS, client="flood") for n in range(40)
    ]
    single = scheduler.submit(voice, sentences(OTHER, 3), OPTIONS, client="single")
    voice.release()
    await bounded(asyncio.gather(*(scheduler.collect(j) for j in (holder, *flood, single))))
    positions = [n for n, (tag, _) in enumerate(voice.calls) if tag == OTHER]
    assert positions[-1] <= 1 + 2 * 3  # its three sentences among the first seven


async def test_the_express_lane_starts_a_short_first_sentence_while_every_worker_is_busy(
    schedulers: list[tuple[Scheduler, GatedVoice]],
) -> None:
    voice = GatedVoice(hold=(LONG,))
    scheduler = start(schedulers, voice, express=ExpressRule(True, max_ids=4))
    long = scheduler.submit(voice, sentences(LONG, 3), OPTIONS, client="long")
    await voice.held(LONG)
    too_long = scheduler.submit(voice, sentences(OTHER, 1, length=5), OPTIONS, client="big")
    short = scheduler.submit(voice, sentences(SHORT, 1), OPTIONS, client="short")
    # Done while the only worker is still held in the long sentence.
    assert len(await bounded(scheduler.collect(short))) > 0
    assert voice.holding[LONG].is_set() and long.state is JobState.RUNNING
    assert too_long.state is JobState.QUEUED  # past max_ids: it waits for the worker
    assert scheduler.stats()["express_sentences"] == 1
    voice.release()
    await bounded(asyncio.gather(scheduler.collect(long), scheduler.collect(too_long)))
    assert voice.max_active == 2  # one worker and the lane, never more


@pytest.mark.parametrize("solo_first", [True, False])
async def test_the_express_lane_runs_on_one_thread(
    schedulers: list[tuple[Scheduler, GatedVoice]], solo_first: bool
) -> None:
    """Never on the all-cores session, whose second thread would take a core from the
    workers it runs beside; a first sentence on an idle machine still runs solo."""
    voice = GatedVoice(hold_call=1, solo=True)  # the worker is held in LONG's second
    scheduler = start(schedulers, voice, express=ExpressRule(True), solo_first=solo_first)
    long = scheduler.submit(voice, sentences(LONG, 2), OPTIONS, client="long")
    assert await asyncio.to_thread(voice.call_held.wait, 5)
    short = scheduler.submit(voice, sentences(SHORT, 1), OPTIONS, client="short")
    assert len(await bounded(scheduler.collect(short))) > 0
    assert scheduler.stats()["express_sentences"] == 1
    voice.release()
    await bounded(scheduler.collect(long))
    assert (SHORT, 0) not in voice.solo_calls
    assert ((LONG, 0) in voice.solo_calls) is solo_first  # it had the machine to itself
    assert (LONG, 1) not in voice.solo_calls


async def test_the_express_lane_starts_a_newcomer_beside_a_solo_sentence(
    schedulers: list[tuple[Scheduler, GatedVoice]],
) -> None:
    """A long request's first sentence has the machine (the other worker waits for it);
    a newcomer does not wait for it to end, and takes one thread, not the solo session."""
    voice = GatedVoice(hold=(LONG,), solo=True)
    scheduler = start(schedulers, voice, workers=2, express=ExpressRule(True), solo_first=True)
    long = scheduler.submit(voice, sentences(LONG, 2), OPTIONS, client="long")
    await voice.held(LONG)
    assert voice.solo_calls == [(LONG, 0)]
    short = scheduler.submit(voice, sentences(SHORT, 1), OPTIONS, client="short")
    assert len(await bounded(scheduler.collect(short))) > 0  # LONG's first still held
    assert voice.holding[LONG].is_set() and (LONG, 1) not in voice.calls
    assert (SHORT, 0) not in voice.solo_calls
    assert scheduler.stats()["express_sentences"] == 1
    voice.release()
    await bounded(scheduler.collect(long))


async def test_the_express_lane_runs_one_sentence_at_a_time(
    schedulers: list[tuple[Scheduler, GatedVoice]],
) -> None:
    voice = GatedVoice(hold=(LONG, SHORT))
    scheduler = start(schedulers, voice, express=ExpressRule(True))
    long = scheduler.submit(voice, sentences(LONG, 1), OPTIONS, client="long")
    await voice.held(LONG)
    first = scheduler.submit(voice, sentences(SHORT, 1), OPTIONS, client="first")
    await voice.held(SHORT)  # in the lane
    second = scheduler.submit(voice, sentences(OTHER, 1), OPTIONS, client="second")
    await asyncio.sleep(0.05)
    assert second.state is JobState.QUEUED  # worker and lane both busy
    voice.release(SHORT)
    assert len(await bounded(scheduler.collect(second))) > 0  # the lane's next
    assert long.state is JobState.RUNNING
    voice.release()
    await bounded(asyncio.gather(scheduler.collect(long), scheduler.collect(first)))
    assert voice.max_active == 2


async def test_a_later_sentence_never_takes_the_lane(
    schedulers: list[tuple[Scheduler, GatedVoice]],
) -> None:
    voice = GatedVoice(hold=(LONG,))
    scheduler = start(
        schedulers, voice, workers=1, express=ExpressRule(True), max_sentences_ahead=100
    )
    long = scheduler.submit(voice, sentences(LONG, 1), OPTIONS, client="long")
    await voice.held(LONG)
    two = scheduler.submit(voice, sentences(SHORT, 2), OPTIONS, client="two")
    await until(lambda: (SHORT, 0) in voice.calls)  # the lane took its first sentence
    await asyncio.sleep(0.05)
    assert (SHORT, 1) not in voice.calls  # its second waits for the worker
    voice.release()
    await bounded(asyncio.gather(scheduler.collect(long), scheduler.collect(two)))
    assert scheduler.stats()["express_sentences"] == 1


@pytest.mark.parametrize(
    ("policy", "batch"),
    [("round_robin", None), ("fifo", None), ("fair", BatchRule(4, 0.001))],
)
def test_no_express_lane_for_other_policies_or_with_batching(
    policy: str, batch: BatchRule | None
) -> None:
    scheduler = Scheduler(workers=1, policy=policy, batch=batch, express=ExpressRule(True))
    assert scheduler.stats()["express_lane"] is False
    assert Scheduler(workers=1, express=ExpressRule(True)).stats()["express_lane"] is True


def test_a_worker_thread_lowers_its_own_priority_only() -> None:
    seen: list[int] = []

    def worker() -> None:
        lower_priority(7)
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [min(19, before + 7)]  # Linux: nice is per thread
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before


async def test_the_express_lane_never_jumps_a_higher_priority_class(
    schedulers: list[tuple[Scheduler, GatedVoice]],
) -> None:
    """It runs only what the policy would run next: with high-priority work waiting, a
    normal newcomer waits for the worker too."""
    voice = GatedVoice(hold=(LONG,))
    scheduler = start(schedulers, voice, express=ExpressRule(True, max_ids=4))
    long = scheduler.submit(voice, sentences(LONG, 1), OPTIONS, client="long")
    await voice.held(LONG)
    urgent = scheduler.submit(
        voice, sentences(OTHER, 2, length=5), OPTIONS, client="urgent", priority=Priority.HIGH
    )
    short = scheduler.submit(voice, sentences(SHORT, 1), OPTIONS, client="short")
    await asyncio.sleep(0.05)
    assert short.state is JobState.QUEUED and urgent.state is JobState.QUEUED
    voice.release()
    await bounded(asyncio.gather(*(scheduler.collect(j) for j in (long, urgent, short))))
    assert voice.calls.index((OTHER, 0)) < voice.calls.index((SHORT, 0))
