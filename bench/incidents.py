"""The subscriber pipeline end to end on a year of current events: `make bench-incidents` (JSON).

A script, not a test. It starts the embedded broker, `wirewatch serve` on the bundle and
`wirewatch incidents` on the embedder (processes, on fresh topics of --partitions partitions),
replays the Wikipedia current-events items of one year (default 2018, a test year of
`make incident-quality`) in date order, each with ``published_at`` = its date, as fast as the
scorer takes them, and reads back the alerts with their incidents. It reports:

- articles, alerts, incidents, alerts per incident, and the largest incidents;
- pairwise precision and recall of "same incident" on the alerts, with the truth of
  `training.bench.incident_quality` (event headers; items at most two days apart), on every alert and
  on the alerts of the "Armed conflicts and attacks" section;
- the same alerts grouped offline, one by one in date order, by the same Grouper: what the live
  stage, which reads a backlog unevenly across partitions, should match.

It prints the JSON and saves it to bench/results/incidents-<timestamp>.json.
"""

import argparse
import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer

from stream.arguments import add_data_dir
from stream.devtools.broker import EmbeddedBroker, free_port
from stream.kafka.connection import Connection
from stream.kafka.topics import TopicSpec, ensure_topics
from stream.schemas import Alert
from stream.scoring.embedder import Embedder
from stream.serve.observability import wait_ready
from stream.subscribers.incidents import (
    DEFAULT_EMBEDDING_WEIGHT,
    DEFAULT_THRESHOLD,
    DEFAULT_WINDOW_HOURS,
    incident_text,
)
from stream.subscribers.lexical import combine, name_vectors
from training.bench.incident_quality import ATTACKS, EVENT_HEADERS, Dataset, event_headers_of, group
from training.data.corpora import load_current_events

# The repository root: the defaults' base and the services' working folder.
ROOT = Path(__file__).resolve().parents[1]

SESSION = {"session.timeout.ms": "6000"}


def read_all(
    bootstrap: str, topic: str, expected: int | None, timeout: float, quiet_s: float = 5.0
) -> list[Any]:
    """Every record of the topic: until ``expected`` arrived, or none came for quiet_s."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-read-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            **SESSION,
        }
    )
    consumer.subscribe([topic])
    records: list[Any] = []
    deadline, last = time.monotonic() + timeout, time.monotonic()
    try:
        while time.monotonic() < deadline:
            if expected is not None and len(records) >= expected:
                break
            if expected is None and records and time.monotonic() - last > quiet_s:
                break
            for message in consumer.consume(num_messages=1000, timeout=0.5):
                if message.error() is None:
                    records.append(json.loads(message.value()))
                    last = time.monotonic()
    finally:
        consumer.close()
    if expected is not None and len(records) < expected:
        raise RuntimeError(f"only {len(records)} of {expected} records on {topic} within {timeout:g} s")
    return records


def pairs(dataset: Dataset, groupings: dict[str, dict[str, str]]) -> dict[str, Any]:
    """Per grouping (alert id -> incident id): pairwise scores on the dataset's alerts."""
    out: dict[str, Any] = {"alerts": len(dataset.articles)}
    for name, incident_of in groupings.items():
        out[name] = dataset.score([incident_of[a.id] for a in dataset.articles])[EVENT_HEADERS].__dict__
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.incidents", description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=ROOT / "exports" / "terrorism-v1")
    parser.add_argument("--embedder", type=Path, default=ROOT / "exports" / "embedder")
    add_data_dir(parser)
    parser.add_argument("--year", default="2018", help="the portal's year to replay (default 2018)")
    parser.add_argument("--partitions", type=int, default=3, help="partitions of every topic (default 3)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for the outputs")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    for path, how in ((args.bundle, "make train"), (args.embedder, "make embedder")):
        if not (path / "manifest.json").is_file():
            parser.error(f"{path} is not a bundle or embedder folder: run `{how}` first")

    items = [a for a in load_current_events(args.data_dir) if a.get("split") == args.year]
    items.sort(key=lambda a: a.id)  # wce:<date>:<number>: date, then the portal's order
    by_id = {a.id: a for a in items}
    tag = uuid.uuid4().hex[:8]
    topics = {
        n: f"bench-{tag}-{n}" for n in ("in", "scores", "alerts", "dlq", "incidents", "grouped", "idlq")
    }
    started = time.monotonic()
    with EmbeddedBroker() as broker:
        bootstrap = broker.bootstrap_servers
        ensure_topics(
            Connection(bootstrap),
            [TopicSpec(t, args.partitions, compacted=(n == "incidents")) for n, t in topics.items()],
            True,
            30.0,
        )
        port = free_port()
        common = ["--bootstrap-servers", bootstrap, "--kafka", "session.timeout.ms=6000"]
        serve = subprocess.Popen(
            [
                sys.executable, "-m", "wirewatch", "serve", "--bundle", str(args.bundle),
                "--group-id", f"bench-{tag}", "--input-topic", topics["in"], "--scores-topic", topics["scores"],
                "--alerts-topic", topics["alerts"], "--dlq-topic", topics["dlq"],
                "--metrics-port", str(port), "--metrics-host", "127.0.0.1", "--log-level", "warning", *common,
            ],
            cwd=ROOT, stderr=subprocess.PIPE,
        )  # fmt: skip
        incidents = subprocess.Popen(
            [
                sys.executable, "-m", "wirewatch", "incidents", "--embedder", str(args.embedder),
                "--group-id", f"bench-{tag}-incidents", "--alerts-topic", topics["alerts"],
                "--incidents-topic", topics["incidents"], "--incident-alerts-topic", topics["grouped"],
                "--dlq-topic", topics["idlq"], "--log-format", "json", *common,
            ],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            if not wait_ready(port, serve, 120.0):
                stderr = serve.stderr.read().decode() if serve.stderr else ""
                raise RuntimeError(f"the scorer did not become ready: {stderr[-2000:]}")
            producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
            replay_started = time.monotonic()
            for a in items:
                body = {"id": a.id, "text": a.text, "source": (a.get("outlets") or [None])[0]}
                body["published_at"] = f"{a.get('date')}T12:00:00+00:00"
                producer.produce(topics["in"], key=a.id.encode(), value=json.dumps(body).encode())
                producer.poll(0)
            producer.flush(30)
            read_all(bootstrap, topics["scores"], len(items), args.timeout)
            scored_s = time.monotonic() - replay_started
            alerts = read_all(bootstrap, topics["alerts"], None, 60.0)
            grouped = read_all(bootstrap, topics["grouped"], len(alerts), args.timeout)
            grouped_s = time.monotonic() - replay_started
        finally:
            for process in (serve, incidents):
                process.terminate()
            for process in (serve, incidents):
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()

    live = {g["id"]: g["incident_id"] for g in grouped}
    # The same alerts, one by one in date order, grouped offline by the same code and defaults.
    ordered = sorted(
        (
            Alert.model_validate({k: v for k, v in g.items() if k not in ("incident_id", "similarity")})
            for g in grouped
        ),
        key=lambda a: a.id,
    )
    texts = [incident_text(a) for a in ordered]
    vectors = combine(Embedder(args.embedder).embed(texts), name_vectors(texts), DEFAULT_EMBEDDING_WEIGHT)
    in_order = group(ordered, vectors, DEFAULT_THRESHOLD, DEFAULT_WINDOW_HOURS)
    offline = {a.id: incident for a, incident in zip(ordered, in_order, strict=True)}

    events = event_headers_of(items)
    scopes = {
        "all alerts": list(live),
        "attacks section": [i for i in live if by_id[i].get("section") == ATTACKS],
    }
    sizes = Counter(live.values())
    titles = {g["incident_id"]: g["snippet"][:100] for g in grouped if g["similarity"] is None}
    result = {
        "data": f"Wikipedia current events {args.year}, every section, in date order, published_at = the item's date",
        "bundle": str(args.bundle),
        "embedder": str(args.embedder),
        "partitions": args.partitions,
        "articles": len(items),
        "alerts": len(grouped),
        "incidents_live": len(sizes),
        "incidents_offline_in_order": len(set(offline.values())),
        "alerts_per_incident": round(len(grouped) / max(1, len(sizes)), 3),
        "incidents_with_two_or_more_reports": sum(1 for n in sizes.values() if n > 1),
        "largest": [{"reports": n, "first_report": titles.get(i, "")} for i, n in sizes.most_common(5)],
        "same_incident_pairs": {
            scope: pairs(
                Dataset.of([by_id[i] for i in ids], events), {"live": live, "offline_in_order": offline}
            )
            for scope, ids in scopes.items()
        },
        "truth": f"{EVENT_HEADERS}, as in training.bench.incident_quality",
        "seconds": {
            "scored": round(scored_s, 1),
            "grouped": round(grouped_s, 1),
            "total": round(time.monotonic() - started, 1),
        },
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    text = json.dumps(result, indent=2)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (args.out / f"incidents-{stamp}.json").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
