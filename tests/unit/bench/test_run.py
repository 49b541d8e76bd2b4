"""The benchmark's detection figures: per labelled domain, at the bundle's threshold."""

import json

import pytest

from bench.run import detection

pytestmark = pytest.mark.unit


def _feed(*articles: dict[str, object]) -> list[tuple[str, bytes]]:
    return [(str(a["id"]), json.dumps(a).encode()) for a in articles]


def test_detection_per_domain_at_the_threshold() -> None:
    feed = _feed(
        {"id": "m1", "domain": "modern", "label": 1},  # caught
        {"id": "m2", "domain": "modern", "label": 1},  # missed
        {"id": "m3", "domain": "modern", "label": 0},  # false alarm
        {"id": "m4", "domain": "modern", "label": 0},
        {"id": "u1", "domain": "muc", "label": 1},  # caught
        {"id": "u2", "domain": "muc", "label": 0},
        {"id": "o1", "domain": "ordinary", "label": 0},  # false alarm, labelled only
        {"id": "o2", "domain": "ordinary", "label": None},  # unlabelled: not counted
        {"id": "m5", "domain": "modern", "label": 1},  # dead-lettered: no score
        {"id": "l1", "domain": "long", "label": 0},  # a full article below the threshold
    )
    scores = {
        "m1": 0.9,
        "m2": 0.2,
        "m3": 0.6,
        "m4": 0.1,
        "u1": 0.5,
        "u2": 0.49,
        "o1": 0.7,
        "o2": 0.99,
        "l1": 0.3,
    }
    out = detection(feed, scores, 0.5)
    assert out["labelled_unscored"] == 1
    # 95% bootstrap intervals where a domain has both classes; only their bounds are checked here.
    intervals = {
        name: {k: out[name].pop(k) for k in ("precision_95", "recall_95")}
        for name in ("modern", "muc", "labelled")
    }
    for name, figures in intervals.items():
        for figure, (low, high) in figures.items():
            assert 0.0 <= low <= out[name][figure.removesuffix("_95")] <= high <= 1.0
    # One report and one other article: every resample draws the same two, so no doubt is left.
    assert intervals["muc"] == {"precision_95": [1.0, 1.0], "recall_95": [1.0, 1.0]}
    assert out["modern"] == {"n": 4, "positives": 2, "alerts": 2, "precision": 0.5, "recall": 0.5, "f1": 0.5}
    assert out["muc"] == {"n": 2, "positives": 1, "alerts": 1, "precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert out["long"] == {"n": 1, "positives": 0, "alerts": 0, "precision": 0.0, "recall": 0.0, "f1": 0.0}
    # All labelled: tp m1 u1, fp m3 o1, fn m2.
    assert out["labelled"] == {
        "n": 8,
        "positives": 3,
        "alerts": 4,
        "precision": 0.5,
        "recall": round(2 / 3, 4),
        "f1": round(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3), 4),
    }


def test_detection_without_labelled_articles() -> None:
    out = detection(_feed({"id": "a", "domain": "ordinary", "label": None}), {"a": 0.1}, 0.5)
    assert out == {
        "threshold": 0.5,
        "labelled_unscored": 0,
        "modern": None,
        "muc": None,
        "long": None,
        "labelled": None,
    }
