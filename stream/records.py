"""What flows between the stages: an input message and an output to publish, Kafka-free."""

from dataclasses import dataclass

from stream.offsets import Partition

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True)
class Incoming:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    timestamp_ms: int | None

    @property
    def tp(self) -> Partition:
        return (self.topic, self.partition)


@dataclass(frozen=True)
class Output:
    """One message to publish, and the input message it answers."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Headers
    origin: Incoming
