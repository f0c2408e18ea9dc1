"""Admission by predicted wait: what runs before a new request, how fast, and the verdict."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from tts_service.scheduling.admission import (
    SpeedEstimate,
    fits_deadline,
    ids_ahead,
    predicted_wait,
    retry_after,
)
from tts_service.scheduling.policies import Fair, Fifo, RoundRobin


@dataclass
class Work:
    """A job as admission sees it."""

    sentences: list[list[int]]
    priority: int = 1
    next_dispatch: int = 0
    in_flight: int = 0
    extra: list[int] = field(default_factory=list)
    closed: bool = True

    def pending_sentences(self) -> int:
        return len(self.sentences) - self.next_dispatch


def ids(*lengths: int) -> list[list[int]]:
    return [[0] * length for length in lengths]


def test_fair_counts_the_next_sentence_of_unstarted_requests_only() -> None:
    jobs = [
        Work(ids(10, 20, 30), next_dispatch=1, in_flight=1),  # running its first: 10 counts
        Work(ids(5, 50)),  # unstarted: its first sentence goes before the newcomer
        Work(ids(7, 70), next_dispatch=1),  # started: the newcomer goes first
    ]
    assert ids_ahead(jobs, priority=1, policy=Fair()) == 10 + 5


def test_round_robin_counts_one_sentence_of_every_request() -> None:
    jobs = [Work(ids(5, 50)), Work(ids(7, 70), next_dispatch=1)]
    assert ids_ahead(jobs, priority=1, policy=RoundRobin()) == 5 + 70


def test_fifo_counts_everything_before() -> None:
    jobs = [Work(ids(5, 50)), Work(ids(7, 70), next_dispatch=1)]
    assert ids_ahead(jobs, priority=1, policy=Fifo()) == 55 + 70


def test_fair_counts_only_unstarted_requests_with_no_more_work_than_the_newcomer() -> None:
    jobs = [
        Work(ids(10, 20), next_dispatch=1, in_flight=1),  # running: its 10 count
        Work(ids(5)),  # one sentence, like the newcomer: earlier, so first
        Work(ids(7, 7, 7)),  # more work left than a one-sentence newcomer: after it
        Work(ids(9), closed=False),  # open: its length is unknown, so after it
    ]
    assert ids_ahead(jobs, priority=1, policy=Fair(), sentences=1) == 10 + 5
    assert ids_ahead(jobs, priority=1, policy=Fair(), sentences=3) == 10 + 5 + 7
    assert ids_ahead(jobs, priority=1, policy=Fair()) == 10 + 5 + 7 + 9  # size unknown


def test_higher_priorities_count_in_full_and_lower_not_at_all() -> None:
    jobs = [Work(ids(5, 50), priority=0), Work(ids(7, 70), priority=2)]
    assert ids_ahead(jobs, priority=1, policy=Fair()) == 55
    assert ids_ahead(jobs, priority=0, policy=Fair()) == 5


def test_the_wait_is_shared_by_the_workers() -> None:
    speed = SpeedEstimate(mean=0.01)
    jobs = [Work(ids(100)), Work(ids(100))]
    assert predicted_wait(jobs, 1, Fair(), 1, lambda job: speed) == pytest.approx(2.0)
    assert predicted_wait(jobs, 1, Fair(), 2, lambda job: speed) == pytest.approx(1.0)


def test_each_request_counts_at_its_own_voice_speed() -> None:
    slow, quick = SpeedEstimate(mean=0.02), SpeedEstimate(mean=0.001)
    large, small = Work(ids(100)), Work(ids(100))
    wait = predicted_wait([large, small], 1, Fair(), 1, lambda job: slow if job is large else quick)
    assert wait == pytest.approx(100 * 0.02 + 100 * 0.001)


def test_a_steady_speed_plans_near_its_mean_a_noisy_one_pessimistically() -> None:
    steady, noisy = SpeedEstimate(), SpeedEstimate()
    for n in range(200):
        steady.learn(100, 0.5)
        noisy.learn(100, 0.2 if n % 2 else 0.8)  # the same mean, half the time 4x slower
    assert steady.seconds_per_id == pytest.approx(0.005, rel=0.05)
    assert noisy.mean == pytest.approx(0.005, rel=0.1)
    assert noisy.seconds_per_id > 2 * steady.seconds_per_id


def test_the_verdict_keeps_a_margin_and_retry_after_is_bounded() -> None:
    assert fits_deadline(0.59, 1.0) and not fits_deadline(0.61, 1.0)
    assert retry_after(0.0) == 1 and retry_after(2.1) == 3 and retry_after(1e9) == 60
