"""Helpers to run `wirewatch serve` as a real process against a real broker, and read its outputs."""

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Message, Producer, TopicPartition

from stream.devtools.broker import free_port
from stream.scoring.articles import read_articles
from stream.serve.observability import wait_ready

ROOT = Path(__file__).resolve().parents[2]
# Tansu holds a group's first join for about half of session.timeout.ms.
SESSION_TIMEOUT = {"session.timeout.ms": "6000"}


@dataclass(frozen=True)
class Topics:
    input: str
    scores: str
    alerts: str
    dlq: str

    @classmethod
    def create(cls, new_topic: Callable[[int], str], partitions: int = 3) -> "Topics":
        return cls(new_topic(partitions), new_topic(1), new_topic(1), new_topic(1))


class ServiceProcess:
    def __init__(
        self, bundle: Path, bootstrap: str, topics: Topics, group: str, log_dir: Path, *extra: str
    ) -> None:
        self.port = free_port()
        self.log_path = log_dir / f"serve-{uuid.uuid4().hex[:6]}.log"
        self.args = [
            sys.executable, "-m", "wirewatch", "serve",
            "--bundle", str(bundle),
            "--bootstrap-servers", bootstrap,
            "--input-topic", topics.input,
            "--scores-topic", topics.scores,
            "--alerts-topic", topics.alerts,
            "--dlq-topic", topics.dlq,
            "--group-id", group,
            "--metrics-port", str(self.port),
            "--metrics-host", "127.0.0.1",
            "--log-format", "json",
            "--batch-size", "16",
            "--max-wait-ms", "50",
            "--kafka", "session.timeout.ms=6000",
            *extra,
        ]  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> "ServiceProcess":
        handle = self.log_path.open("ab")
        self.process = subprocess.Popen(self.args, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def wait_ready(self, timeout: float = 60.0) -> None:
        assert self.process is not None
        if not wait_ready(self.port, self.process, timeout):
            raise AssertionError(
                f"service not ready (exit code {self.process.poll()}):\n{self.log()[-3000:]}"
            )

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout: float = 60.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)


def articles_as_messages(path: Path, copies: int = 1) -> list[tuple[str, bytes]]:
    """(id, JSON value) for real articles, repeated under fresh ids when more are needed."""
    base = read_articles(path)
    out = []
    for copy in range(copies):
        for article in base:
            record = {"id": f"{copy}-{article.id}", "title": article.title, "text": article.text}
            out.append((record["id"], json.dumps(record).encode()))
    return out


def produce(
    bootstrap: str, topic: str, messages: Iterable[tuple[bytes | None, bytes, list[tuple[str, bytes]] | None]]
) -> int:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    count = 0
    for key, value, headers in messages:
        producer.produce(topic, value=value, key=key, headers=headers or None)
        count += 1
        producer.poll(0)
    assert producer.flush(30) == 0
    return count


def consume(
    bootstrap: str,
    topic: str,
    done: Callable[[list[Message]], bool],
    timeout: float = 120.0,
    read_committed: bool = True,
    settle: float = 0.0,
) -> list[Message]:
    """Every message of the topic from the start, until done(messages) or the timeout.

    With settle, reading goes on that many seconds after done() first holds, so that anything
    written late (a duplicate) is read too. A read for a fixed time instead would end, on a slow
    machine, before the group join and the fetches had reached the end of the topic.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed" if read_committed else "read_uncommitted",
            **SESSION_TIMEOUT,
        }
    )
    consumer.subscribe([topic])
    messages: list[Message] = []
    deadline = time.monotonic() + timeout
    finished: float | None = None
    try:
        while time.monotonic() < deadline:
            if finished is None and done(messages):
                finished = time.monotonic()
            if finished is not None and time.monotonic() - finished >= settle:
                break
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                messages.append(message)
    finally:
        consumer.close()
    return messages


def covers(expected: set[Any], key: Callable[[dict[str, Any]], Any]) -> Callable[[list[Message]], bool]:
    """done() for consume: key(record) of the records read covers expected (checked incrementally)."""
    seen: set[Any] = set()
    parsed = 0

    def done(messages: list[Message]) -> bool:
        nonlocal parsed
        seen.update(key(json.loads(m.value())) for m in messages[parsed:])
        parsed = len(messages)
        return seen >= expected

    return done


def ids_cover(expected: set[str]) -> Callable[[list[Message]], bool]:
    """done() for consume: every expected id has been read."""
    return covers(expected, lambda record: record["id"])


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        offsets = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=20)
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in offsets}


def until(condition: Callable[[], bool], timeout: float, every: float = 0.5) -> bool:
    """Whether condition() came true within timeout, polled every ``every`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return condition()


def ids_of(messages: list[Message]) -> list[str]:
    return [json.loads(m.value())["id"] for m in messages]


_ZOMBIE = """
import os, sys
from confluent_kafka import Producer
producer = Producer({"bootstrap.servers": sys.argv[1], "transactional.id": sys.argv[3]})
producer.init_transactions(20)
producer.begin_transaction()
producer.produce(sys.argv[2], value=b"zombie")
producer.flush(20)
os._exit(9)  # killed with its transaction open
"""
_zombie_checks: dict[str, bool] = {}


def broker_aborts_zombie_transactions(bootstrap: str, topic: str) -> bool:
    """Does a new producer with a killed one's transactional.id abort the open transaction?

    Kafka does (InitProducerId writes abort markers). The embedded Tansu 0.6.0 does not: the
    killed producer's records become visible to read_committed readers, so a SIGKILL that lands
    inside a transaction shows up as duplicates there, whatever the scorer does.
    """
    if bootstrap not in _zombie_checks:
        txn = f"zombie-check-{uuid.uuid4().hex}"
        subprocess.run([sys.executable, "-c", _ZOMBIE, bootstrap, topic, txn], timeout=60, check=False)
        producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn})
        producer.init_transactions(30)
        producer.begin_transaction()
        producer.produce(topic, value=b"successor")
        producer.commit_transaction(30)
        seen = consume(bootstrap, topic, lambda ms: any(m.value() == b"successor" for m in ms), timeout=30)
        _zombie_checks[bootstrap] = b"zombie" not in [m.value() for m in seen]
    return _zombie_checks[bootstrap]


def exactly_once_duplicates(
    bootstrap: str, probe_topic: str, scores: list[Message], kills: int, batch_size: int = 16
) -> tuple[int, int]:
    """(duplicated scores, how many the broker allows): 0 on Kafka; on a broker that leaves a
    killed producer's open transaction visible, one batch of scores per kill at most."""
    by_id: dict[str, set[tuple[int, int]]] = {}
    for m in scores:
        record = json.loads(m.value())
        by_id.setdefault(record["id"], set()).add((record["source"]["partition"], record["source"]["offset"]))
    # A duplicate is the same input scored twice, never two inputs under one id.
    assert all(len(places) == 1 for places in by_id.values())
    duplicated = len(scores) - len(by_id)
    allowed = 0 if broker_aborts_zombie_transactions(bootstrap, probe_topic) else kills * batch_size
    return duplicated, allowed
