"""The demo's live view is drawn while its reader thread records the scorer's outputs."""

import json
import threading
import time

from stream.devtools.demo import Tally, _take, _view, summarize

TOPICS = {"scores": "s", "alerts": "a", "dlq": "d"}


class FakeMessage:
    def __init__(self, topic: str, record: dict[str, object]) -> None:
        self._topic, self._value = topic, json.dumps(record).encode()

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self._topic

    def value(self) -> bytes:
        return self._value


def test_the_view_and_summary_are_drawn_while_outputs_arrive() -> None:
    n = 20_000
    feed: list[dict[str, object]] = [{"id": str(i), "label": i % 2, "domain": "modern"} for i in range(n)]
    tally = Tally(labels={str(r["id"]): r["label"] for r in feed}, threshold=0.5)  # type: ignore[misc]
    tally.domains = {str(r["id"]): "modern" for r in feed}
    done = threading.Event()

    def reader() -> None:
        for start in range(0, n, 50):
            with tally.lock:
                for i in range(start, start + 50):
                    tally.sent_at[str(i)] = time.perf_counter()
                    _take(tally, FakeMessage("s", {"id": str(i), "score": (i % 10) / 10}), TOPICS)
                    if i % 10 == 9:
                        _take(tally, FakeMessage("a", {"id": str(i), "score": 0.9, "title": "t"}), TOPICS)
        done.set()

    thread = threading.Thread(target=reader)
    thread.start()
    deadline = time.monotonic() + 60
    while not done.is_set() and time.monotonic() < deadline:
        with tally.lock:
            _view(tally, n)
            summarize(tally, feed, 50.0)
    thread.join(timeout=60)
    assert len(tally.scores) == n
    assert tally.alert_count == n // 10
