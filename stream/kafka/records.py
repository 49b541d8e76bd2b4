"""What flows between the stages: an input message and an output to publish, Kafka-free."""

from dataclasses import dataclass
from typing import Literal

from stream.kafka.offsets import Partition

Headers = list[tuple[str, bytes]]
OutputKind = Literal["score", "alert", "dead_letter", "shadow"]


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
    kind: OutputKind = "score"

    @property
    def size(self) -> int:
        """Bytes of key, value and headers: what counts against the producer's message.max.bytes."""
        return len(self.key or b"") + len(self.value) + sum(len(k) + len(v) for k, v in self.headers)
