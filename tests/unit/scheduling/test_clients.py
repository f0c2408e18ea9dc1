"""Least attained service between clients, stepped by hand on a fake clock."""

from __future__ import annotations

import pytest

from tts_service.scheduling import clients as clients_module
from tts_service.scheduling.clients import HALF_LIFE, ClientShares


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def shares(clock: Clock) -> ClientShares:
    return ClientShares(half_life=HALF_LIFE, clock=clock)


def served(shares: ClientShares, client: str, sentences: int) -> None:
    for _ in range(sentences):
        shares.charge(client)


def test_a_newcomer_goes_before_every_active_client_however_many() -> None:
    clock = Clock()
    book = shares(clock)
    active = [f"long{n}" for n in range(32)]
    for n, client in enumerate(active):
        book.joined(client)
        served(book, client, 1 + n % 3)
    book.joined("new")
    assert book.least_served([*active, "new"]) == "new"


def test_attained_service_halves_every_half_life() -> None:
    clock = Clock()
    book = shares(clock)
    served(book, "a", 8)
    assert book.attained("a") == 8
    clock.now += HALF_LIFE
    assert book.attained("a") == pytest.approx(4)
    clock.now += 2 * HALF_LIFE
    assert book.attained("a") == pytest.approx(1)


def test_coming_straight_back_is_no_newcomer_but_a_pause_makes_one() -> None:
    clock = Clock()
    book = shares(clock)
    for client in ("a", "b"):
        book.joined(client)
    served(book, "a", 20)
    served(book, "b", 3)
    book.left("a")
    book.joined("a")  # its next request at once: its history is remembered
    assert book.least_served(["a", "b"]) == "b"
    book.left("a")
    clock.now += 10 * HALF_LIFE  # quiet for a while: it has decayed to nearly nothing
    served(book, "b", 3)
    book.joined("a")
    assert book.least_served(["a", "b"]) == "a"


def test_ties_go_to_the_least_work_left_then_to_fewer_requests() -> None:
    book = shares(Clock())
    for client in ("long", "short", "two"):
        book.joined(client)
    book.joined("two")
    left = {"long": 20.0, "short": 1.0, "two": 1.0}
    assert book.least_served(["long", "short", "two"], left.__getitem__) == "short"
    assert book.least_served(["long", "two"], left.__getitem__) == "two"
    assert book.least_served(["long", "two"]) == "long"  # no work known: fewer requests


def test_two_long_clients_drift_apart_by_a_bounded_amount() -> None:
    """Decay bounds a long-running client's history: a new long client overtakes it for a
    few sentences, not for everything the first one was ever served."""
    clock = Clock()
    book = shares(clock)
    book.joined("old")
    for _ in range(1000):  # 1000 sentences at 10 a second
        book.charge("old")
        clock.now += 0.1
    book.joined("new")
    overtaken = 0
    while book.least_served(["old", "new"]) == "new":
        book.charge("new")
        clock.now += 0.1
        overtaken += 1
    assert 0 < overtaken < 40


def test_remembered_clients_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clients_module, "MAX_REMEMBERED", 50)
    clock = Clock()
    book = shares(clock)
    for n in range(500):  # a flood of addresses, each served and gone at once
        client = f"10.0.0.{n}"
        book.joined(client)
        served(book, client, 5)
        book.left(client)
    assert book.remembered <= 51
    assert len(book) == 0
