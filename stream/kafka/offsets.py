"""Offset bookkeeping for at-least-once delivery.

A consumed message is pending until every output for it (score, alert or dead letter) has been
acknowledged by the broker. The committable position of a partition is its first pending offset
in consumption order (or one past the last consumed when none is pending): the contiguous
acknowledged prefix. Nothing after a message whose outputs are still in flight is ever committed,
so a crash at any point loses nothing; a restart re-scores at most the uncommitted tail.
"""

from collections import OrderedDict

Partition = tuple[str, int]


class OffsetTracker:
    def __init__(self) -> None:
        # Per partition, offsets in consumption order -> still pending?
        self._offsets: dict[Partition, OrderedDict[int, bool]] = {}
        self._committed: dict[Partition, int] = {}
        self._next: dict[Partition, int] = {}
        self._pending = 0

    def consumed(self, tp: Partition, offset: int) -> None:
        self._offsets.setdefault(tp, OrderedDict())[offset] = True
        self._next[tp] = offset + 1
        self._pending += 1

    def done(self, tp: Partition, offset: int) -> None:
        """All outputs of this message are delivered. Unknown offsets (forgotten partitions) are ignored."""
        offsets = self._offsets.get(tp)
        if offsets is None or not offsets.get(offset, False):
            return
        offsets[offset] = False
        self._pending -= 1
        while offsets and not next(iter(offsets.values())):
            offsets.popitem(last=False)

    def in_flight(self) -> int:
        return self._pending

    def committable(self) -> dict[Partition, int]:
        """Positions (next offset to read) that are safe to commit and not yet committed."""
        positions = {}
        for tp, offsets in self._offsets.items():
            position = next(iter(offsets)) if offsets else self._next[tp]
            if position > self._committed.get(tp, -1):
                positions[tp] = position
        return positions

    def mark_committed(self, positions: dict[Partition, int]) -> None:
        for tp, position in positions.items():
            self._committed[tp] = max(position, self._committed.get(tp, -1))

    def forget(self, partitions: list[Partition]) -> int:
        """Drop the state of partitions given up; returns how many pending messages went with them."""
        lost = 0
        for tp in partitions:
            lost += sum(self._offsets.pop(tp, {}).values())
            self._committed.pop(tp, None)
            self._next.pop(tp, None)
        self._pending -= lost
        return lost
