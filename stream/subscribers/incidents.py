"""Grouping alerts into incidents: embedding similarity within a time window. Kafka-free.

An alert's vector is its embedding beside a bag of the names in it (stream.subscribers.lexical). It joins the
open incident whose centroid (the normalized mean of its reports' vectors) is most similar, when that cosine similarity reaches
``threshold`` and the alert is within ``window`` of the incident's reports; otherwise it opens a
new incident. Time is event time (when the article was published, else when it was scored), and
an incident closes once event time (``Grouper.watermark``) is two windows past its last report,
so replays group as live traffic did. The defaults (threshold, window, the embedding's weight) were
chosen on Wikipedia current-events items of 2015-2016 and measured once on 2017-2018
(`python -m training.bench.incident_quality`, docs/subscribers.md "How well it groups").

The state of an incident that later alerts need (the sum of its embeddings, its representative
report's embedding) travels with its record on the incidents topic, in a header, so the stage
rebuilds every open incident from that compacted topic after a restart.
"""

import base64
import hashlib
import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

from stream.schemas import Alert, Incident, IncidentAlert, IncidentBest

DEFAULT_THRESHOLD = 0.225
DEFAULT_WINDOW_HOURS = 24.0
# The embedding's share of the similarity; the rest is the bag of names (stream.subscribers.lexical).
DEFAULT_EMBEDDING_WEIGHT = 0.2
STATE_HEADER = "wirewatch-incident-state"
MAX_ALERT_IDS = 100
# A published_at this far past the scoring time is wrong, not news from the future.
MAX_CLOCK_SKEW = timedelta(hours=1)

Vector = npt.NDArray[np.float32]


def incident_id(first_alert_id: str) -> str:
    """Derived from the first report, so a replay of the same alerts gives the same ids."""
    return "inc-" + hashlib.blake2b(first_alert_id.encode(), digest_size=8).hexdigest()


def event_time(alert: Alert) -> datetime:
    scored = alert.scored_at if alert.scored_at.tzinfo else alert.scored_at.replace(tzinfo=UTC)
    if alert.published_at:
        try:
            published = datetime.fromisoformat(alert.published_at)
        except ValueError:
            return scored
        published = published if published.tzinfo else published.replace(tzinfo=UTC)
        if published <= scored + MAX_CLOCK_SKEW:
            return published
    return scored


def incident_text(alert: Alert) -> str:
    """What is embedded: the title and the start of the text, which say which event it is."""
    return ". ".join(p for p in (alert.title, alert.snippet) if p)


def _encode(vector: Vector) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()


def _decode(text: str) -> Vector:
    return np.frombuffer(base64.b64decode(text), dtype="<f4").astype(np.float32)


def _unit(vector: Vector) -> Vector:
    norm = float(np.linalg.norm(vector))
    out: Vector = vector / norm if norm > 0 else vector
    return out


def _at_most_unit(vector: Vector) -> Vector:
    """Longer vectors are scaled to unit length; shorter ones stay short.

    A text without names has only the embedding's share of a grouping vector
    (stream.subscribers.lexical.combine), so its similarities are scaled down by that share. Made unit, it
    would be compared by its embedding alone at a threshold chosen for embedding and names
    together, and merge unrelated events (a feed in lower case has no names).
    """
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 1.0 else vector


@dataclass
class Group:
    """An open incident: its public record and the vectors that decide who joins it."""

    record: Incident
    total: Vector
    representative: Vector
    changed: bool = True
    centroid: Vector = field(init=False)

    def __post_init__(self) -> None:
        self.centroid = _unit(self.total)

    def add(self, vector: Vector) -> None:
        self.total = self.total + vector
        self.centroid = _unit(self.total)

    def state_header(self) -> bytes:
        state = {"v": 1, "total": _encode(self.total), "representative": _encode(self.representative)}
        return json.dumps(state).encode()

    @classmethod
    def from_record(cls, value: bytes, header: bytes) -> "Group":
        record = Incident.model_validate_json(value)
        state = json.loads(header)
        if state.get("v") != 1:
            raise ValueError(f"unknown incident state version {state.get('v')!r}")
        return cls(record, _decode(state["total"]), _decode(state["representative"]), changed=False)


@dataclass
class Assignment:
    alert: IncidentAlert
    group: Group
    opened: bool


@dataclass
class Grouper:
    """The open incidents of one scope (the stage's whole alerts topic) and the grouping rule."""

    threshold: float = DEFAULT_THRESHOLD
    window: timedelta = field(default_factory=lambda: timedelta(hours=DEFAULT_WINDOW_HOURS))
    groups: dict[str, Group] = field(default_factory=dict)
    # The newest event time seen per input partition, and the newest of the incidents restored.
    newest: dict[int, datetime] = field(default_factory=dict)
    restored: datetime | None = None

    def watermark(self, reading: Collection[int] = ()) -> datetime | None:
        """How far event time has got: the newest alert, held back by the partitions being read.

        ``reading`` are the input partitions still giving alerts (or just assigned). A backlog is
        not read evenly across partitions: one read ahead would otherwise close incidents whose
        reports are still waiting in another. Until such a partition has given an alert, its
        progress is unknown, and nothing closes.
        """
        if any(p not in self.newest for p in reading):
            return None
        seen = [*self.newest.values(), *([self.restored] if self.restored else [])]
        if not seen:
            return None
        return min([max(seen), *(self.newest[p] for p in reading)])

    def restore(self, group: Group) -> None:
        """An incident read back from the topic; closed ones stay closed."""
        if group.record.status == "open":
            self.groups[group.record.id] = group
            if self.restored is None or group.record.last_seen > self.restored:
                self.restored = group.record.last_seen

    def _advance(self, partition: int, when: datetime) -> None:
        if partition not in self.newest or when > self.newest[partition]:
            self.newest[partition] = when

    def best_match(self, vector: Vector, when: datetime) -> tuple[Group | None, float]:
        candidates = [
            g
            for g in self.groups.values()
            if g.record.first_seen - self.window <= when <= g.record.last_seen + self.window
            and g.centroid.shape == vector.shape  # state from another embedder never matches
        ]
        if not candidates:
            return None, 0.0
        sims = np.stack([g.centroid for g in candidates]) @ vector
        best = int(np.argmax(sims))
        return candidates[best], float(sims[best])

    def assign(
        self, alert: Alert, vector: Vector, now: datetime | None = None, partition: int = 0
    ) -> Assignment:
        """Group one alert; ``partition`` is the input partition it was read from."""
        vector = _at_most_unit(np.asarray(vector, dtype=np.float32))
        when = event_time(alert)
        group, similarity = self.best_match(vector, when)
        stamp = now or datetime.now(UTC)
        if group is None or similarity < self.threshold:
            group = self._open(alert, vector, when, stamp)
            opened, joined_similarity = True, None
        else:
            self._join(group, alert, vector, when, stamp)
            opened, joined_similarity = False, round(similarity, 4)
        self._advance(partition, when)
        grouped = IncidentAlert(
            **alert.model_dump(), incident_id=group.record.id, similarity=joined_similarity
        )
        return Assignment(grouped, group, opened)

    def _open(self, alert: Alert, vector: Vector, when: datetime, now: datetime) -> Group:
        record = Incident(
            id=incident_id(alert.id),
            status="open",
            first_seen=when,
            last_seen=when,
            reports=1,
            outlets=[alert.publisher] if alert.publisher else [],
            title=alert.title or _lead(alert.snippet),
            best=_best(alert),
            alert_ids=[alert.id],
            updated_at=now,
        )
        group = Group(record, vector.copy(), vector.copy())
        self.groups[record.id] = group
        return group

    def _join(self, group: Group, alert: Alert, vector: Vector, when: datetime, now: datetime) -> None:
        r = group.record
        group.add(vector)
        centroid = group.centroid
        if float(vector @ centroid) > float(group.representative @ centroid):
            group.representative = vector.copy()
            r.title = alert.title or _lead(alert.snippet)
        r.first_seen, r.last_seen = min(r.first_seen, when), max(r.last_seen, when)
        r.reports += 1
        if alert.publisher and alert.publisher not in r.outlets:
            r.outlets = sorted([*r.outlets, alert.publisher])
        if alert.score > r.best.score:
            r.best = _best(alert)
        r.alert_ids = [*r.alert_ids, alert.id][-MAX_ALERT_IDS:]
        r.updated_at = now
        group.changed = True

    def expire(self, now: datetime | None = None, reading: Collection[int] = ()) -> list[Group]:
        """Close the incidents no report has joined for two windows, by event time; returns them.

        A report joins only within one window of an incident's reports; the second window is
        for reports that arrive late: the scorer's parallel batches, and backlogs, do not keep
        event time in order, and a closed incident can no longer be joined.
        """
        watermark = self.watermark(reading)
        if watermark is None:
            return []
        horizon = watermark - 2 * self.window
        closed = [g for g in self.groups.values() if g.record.last_seen < horizon]
        for group in closed:
            del self.groups[group.record.id]
            group.record.status = "closed"
            group.record.updated_at = now or datetime.now(UTC)
            group.changed = True
        return closed

    def changed(self) -> list[Group]:
        return [g for g in self.groups.values() if g.changed]

    def settle(self, groups: Iterable[Group]) -> None:
        for group in groups:
            group.changed = False


def _lead(snippet: str) -> str:
    head = snippet.split(". ")[0]
    return head if len(head) <= 160 else head[:157] + "…"


def _best(alert: Alert) -> IncidentBest:
    return IncidentBest(
        alert_id=alert.id,
        score=alert.score,
        title=alert.title,
        publisher=alert.publisher,
        url=alert.url,
        explanation=alert.explanation,
    )
