"""Offset bookkeeping: only the contiguous acknowledged prefix of each partition is committed."""

from stream.kafka.offsets import OffsetTracker

P0 = ("articles", 0)
P1 = ("articles", 1)


def test_commits_only_up_to_the_first_unfinished_message() -> None:
    tracker = OffsetTracker()
    for offset in range(10, 15):
        tracker.consumed(P0, offset)
    assert tracker.committable() == {P0: 10}  # nothing finished: the position does not move
    tracker.done(P0, 12)
    tracker.done(P0, 13)
    assert tracker.committable() == {P0: 10}
    tracker.done(P0, 10)
    assert tracker.committable() == {P0: 11}
    tracker.done(P0, 11)
    assert tracker.committable() == {P0: 14}
    tracker.done(P0, 14)
    assert tracker.committable() == {P0: 15}
    assert tracker.in_flight() == 0


def test_partitions_are_independent() -> None:
    tracker = OffsetTracker()
    tracker.consumed(P0, 0)
    tracker.consumed(P1, 7)
    tracker.consumed(P1, 8)
    tracker.done(P1, 7)
    assert tracker.committable() == {P0: 0, P1: 8}
    assert tracker.in_flight() == 2


def test_gaps_in_offsets_follow_consumption_order() -> None:
    # Compacted topics and transaction markers leave holes in the offset sequence.
    tracker = OffsetTracker()
    for offset in (3, 7, 9):
        tracker.consumed(P0, offset)
    tracker.done(P0, 3)
    assert tracker.committable() == {P0: 7}
    tracker.done(P0, 9)
    tracker.done(P0, 7)
    assert tracker.committable() == {P0: 10}


def test_committed_positions_are_not_offered_again() -> None:
    tracker = OffsetTracker()
    tracker.consumed(P0, 0)
    tracker.done(P0, 0)
    tracker.mark_committed(tracker.committable())
    assert tracker.committable() == {}
    tracker.consumed(P0, 1)
    assert tracker.committable() == {}  # position 1 is already committed
    tracker.done(P0, 1)
    assert tracker.committable() == {P0: 2}


def test_forget_drops_pending_work_and_ignores_late_acks() -> None:
    tracker = OffsetTracker()
    tracker.consumed(P0, 0)
    tracker.consumed(P0, 1)
    tracker.consumed(P1, 0)
    assert tracker.forget([P0]) == 2
    assert tracker.in_flight() == 1
    tracker.done(P0, 0)  # a delivery report arriving after the revocation
    assert tracker.committable() == {P1: 0}
    assert tracker.in_flight() == 1


def test_duplicate_done_counts_once() -> None:
    tracker = OffsetTracker()
    tracker.consumed(P0, 0)
    tracker.consumed(P0, 1)
    tracker.done(P0, 1)
    tracker.done(P0, 1)
    assert tracker.in_flight() == 1
    assert tracker.committable() == {P0: 0}
