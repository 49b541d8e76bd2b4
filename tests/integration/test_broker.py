"""The embedded broker end to end: topics, produce, a consumer group with commits, and `wirewatch broker`."""

import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from stream.devtools.broker import EmbeddedBroker, free_port
from tests.integration.broker_fixtures import create_topic

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = 100


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _produce(bootstrap: str, topic: str, count: int) -> None:
    errors: list[KafkaError] = []

    def delivered(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            errors.append(error)

    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(count):
        producer.produce(topic, key=str(i).encode(), value=f"message {i}".encode(), on_delivery=delivered)
    assert producer.flush(timeout=30) == 0
    assert errors == []


def _consumer(bootstrap: str) -> Consumer:
    # Tansu holds the first join for half the session timeout: 3 s here instead of 23 s.
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex}",
            "session.timeout.ms": 6000,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )


def _consume(consumer: Consumer, topic: str, count: int, timeout: float = 60.0) -> list[Message]:
    consumer.subscribe([topic])
    received: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(received) < count and time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is None:
            continue
        assert message.error() is None, message.error()
        received.append(message)
    assert len(received) == count, f"got {len(received)} of {count} messages in {timeout:g} s"
    return received


def test_topics_produce_consume_and_commit() -> None:
    with EmbeddedBroker(port=free_port()) as broker:
        pid = broker.pid
        assert pid is not None
        bootstrap = broker.bootstrap_servers
        topic = create_topic(AdminClient({"bootstrap.servers": bootstrap}), partitions=3)
        _produce(bootstrap, topic, MESSAGES)
        consumer = _consumer(bootstrap)
        try:
            received = _consume(consumer, topic, MESSAGES)
            consumer.commit(asynchronous=False)
            partitions = [TopicPartition(topic, p) for p in range(3)]
            committed = consumer.committed(partitions, timeout=10)
        finally:
            consumer.close()
    assert sorted(m.value() for m in received) == sorted(f"message {i}".encode() for i in range(MESSAGES))
    assert len({m.partition() for m in received}) > 1
    # From the messages, not get_watermark_offsets: Tansu's ListOffsets(latest) is off (see stream.devtools.broker).
    ends = [1 + max((m.offset() for m in received if m.partition() == p), default=-1) for p in range(3)]
    assert [tp.offset for tp in committed] == ends
    assert sum(ends) == MESSAGES
    assert _gone(pid)


def _broker_children(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children if Path(f"/proc/{c}/comm").read_text().strip() == "tansu"]


def _read_lines(stream: "subprocess.IO[str]", lines: "queue.Queue[str]") -> None:
    for line in stream:
        lines.put(line)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds the broker's PID through /proc")
def test_cli_broker_serves_until_sigterm() -> None:
    port = free_port()
    command = [sys.executable, "-m", "wirewatch", "broker", "--port", str(port)]
    cli = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_read_lines, args=(cli.stdout, lines), daemon=True).start()
    try:
        output = ""
        deadline = time.monotonic() + 60
        while f"127.0.0.1:{port}" not in output and time.monotonic() < deadline and cli.poll() is None:
            try:
                output += lines.get(timeout=1)
            except queue.Empty:
                continue
        assert f"bootstrap servers: 127.0.0.1:{port}" in output, output
        brokers = _broker_children(cli.pid)
        assert len(brokers) == 1
        bootstrap = f"127.0.0.1:{port}"
        topic = create_topic(AdminClient({"bootstrap.servers": bootstrap}))
        _produce(bootstrap, topic, 1)
        consumer = _consumer(bootstrap)
        try:
            assert _consume(consumer, topic, 1)[0].value() == b"message 0"
        finally:
            consumer.close()
        cli.send_signal(signal.SIGTERM)
        assert cli.wait(timeout=10) == 0
        assert _gone(brokers[0])
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()


def test_a_busy_port_is_refused_with_a_clear_error() -> None:
    from stream.errors import BrokerError

    with EmbeddedBroker() as first, pytest.raises(BrokerError, match="already in use"):
        EmbeddedBroker(port=first.port).start()
