"""Kafka fixtures: bring your own cluster with WIREWATCH_TEST_BOOTSTRAP, else one embedded broker per session."""

import contextlib
import os
import time
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from stream.devtools.broker import EmbeddedBroker, wait_for_kafka
from stream.errors import DependencyError

BOOTSTRAP_ENV = "WIREWATCH_TEST_BOOTSTRAP"


def create_topic(admin: AdminClient, partitions: int = 1, timeout: float = 20.0) -> str:
    """A fresh uuid-named topic, returned once its metadata shows every partition."""
    name = f"test-{uuid.uuid4().hex}"
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    futures[name].result(timeout=timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        topic = admin.list_topics(topic=name, timeout=5).topics.get(name)
        if topic is not None and topic.error is None and len(topic.partitions) == partitions:
            return name
        time.sleep(0.1)
    raise TimeoutError(f"topic {name} did not show {partitions} partitions within {timeout:g} s")


class TopicFactory:
    """new_topic(partitions=1) -> name; topics are deleted after the test, best effort."""

    def __init__(self, bootstrap: str) -> None:
        self.admin = AdminClient({"bootstrap.servers": bootstrap})
        self.created: list[str] = []

    def __call__(self, partitions: int = 1) -> str:
        name = create_topic(self.admin, partitions)
        self.created.append(name)
        return name

    def delete_all(self) -> None:
        if not self.created:
            return
        for future in self.admin.delete_topics(self.created, operation_timeout=10).values():
            with contextlib.suppress(KafkaException, TimeoutError):
                future.result(timeout=15)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """bootstrap.servers of the test cluster; clients should set session.timeout.ms=6000 for Tansu."""
    external = os.environ.get(BOOTSTRAP_ENV)
    if external:
        wait_for_kafka(external, timeout=20)
        yield external
        return
    try:
        broker = EmbeddedBroker().start()
    except DependencyError as exc:
        pytest.fail(f"{exc}; or set {BOOTSTRAP_ENV} to a running Kafka")
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@pytest.fixture
def new_topic(kafka_bootstrap: str) -> Iterator[TopicFactory]:
    factory = TopicFactory(kafka_bootstrap)
    yield factory
    factory.delete_all()
