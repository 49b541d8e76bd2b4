"""The micro-batcher, driven by a hand-moved clock."""

import pytest

from stream.serve.batcher import Batcher


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_closes_at_max_size_before_max_wait() -> None:
    clock = Clock()
    batcher: Batcher[int] = Batcher(3, 1.0, clock)
    for i in range(2):
        batcher.add(i)
    assert not batcher.ready()
    batcher.add(2)
    assert batcher.ready()
    assert batcher.take() == [0, 1, 2]
    assert len(batcher) == 0
    assert batcher.time_left() is None


def test_closes_at_max_wait_after_the_first_item() -> None:
    clock = Clock()
    batcher: Batcher[str] = Batcher(10, 0.5, clock)
    assert not batcher.ready()
    batcher.add("a")
    clock.now += 0.3
    batcher.add("b")  # a later item does not restart the clock
    assert batcher.time_left() == pytest.approx(0.2)
    assert not batcher.ready()
    clock.now += 0.2
    assert batcher.ready()
    assert batcher.take() == ["a", "b"]


def test_overflow_starts_a_new_batch_aged_from_the_take() -> None:
    clock = Clock()
    batcher: Batcher[int] = Batcher(2, 1.0, clock)
    for i in range(5):
        batcher.add(i)
    clock.now += 5
    assert batcher.take() == [0, 1]
    assert batcher.time_left() == pytest.approx(1.0)
    assert batcher.ready()  # still full
    assert batcher.take() == [2, 3]
    assert not batcher.ready()
    clock.now += 1.0
    assert batcher.take() == [4]


def test_zero_wait_closes_at_once() -> None:
    batcher: Batcher[int] = Batcher(100, 0.0, Clock())
    batcher.add(1)
    assert batcher.ready()


def test_drop_removes_matching_items() -> None:
    batcher: Batcher[tuple[int, int]] = Batcher(10, 1.0, Clock())
    for item in [(0, 1), (1, 1), (0, 2)]:
        batcher.add(item)
    assert batcher.drop(lambda m: m[0] == 0) == [(0, 1), (0, 2)]
    assert batcher.take() == [(1, 1)]


def test_rejects_bad_limits() -> None:
    with pytest.raises(ValueError, match="max_size"):
        Batcher(0, 1.0)
    with pytest.raises(ValueError, match="max_wait"):
        Batcher(1, -1.0)
