"""Alerts and unit vectors for the subscribers' tests."""

from datetime import UTC, datetime

import numpy as np

from stream.schemas import Alert, Contribution, ModelRef, SourceRef

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def alert(
    id: str, *, at: datetime = T0, score: float = 0.9, publisher: str | None = "AP", title: str | None = None
) -> Alert:
    return Alert(
        id=id,
        score=score,
        is_alert=True,
        threshold=0.5,
        model=ModelRef(name="m", version="1"),
        scored_at=at,
        source=SourceRef(topic="articles", partition=0, offset=1),
        title=title or f"title {id}",
        snippet="a bomb exploded in the market",
        publisher=publisher,
        url=None,
        published_at=None,
        explanation=[Contribution(sentence=f"sentence of {id}", contribution=0.5, alone=0.8)],
    )


def unit(*values: float) -> np.ndarray:
    v = np.asarray(values, dtype=np.float32)
    return v / np.linalg.norm(v)
