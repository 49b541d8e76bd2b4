"""Where every Kafka client of wirewatch is built: the user's settings, with the guarantees on top.

A Connection is the bootstrap servers and the librdkafka settings passed through (WIREWATCH_KAFKA,
--kafka-file, --kafka key=value: security, tuning). Each kind of client wirewatch uses has one
method here, and each lays its configuration out in three layers: the client's own defaults (a
tuning the user may change), then the user's settings, then the keys its guarantees rest on
(PROTECTED_KAFKA_KEYS, and what the caller fixes: callbacks), so that nothing passed through can
change what is committed when. stream.kafka.config refuses those keys when the settings are parsed
as well, with a message that says why.
"""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

# Offsets move only when wirewatch says so: after the outputs are delivered, or in a transaction.
COMMIT_WHEN_TOLD = {"enable.auto.commit": False, "enable.auto.offset.store": False}
# Records of aborted (or still open) transactions are never read.
READ_COMMITTED = {"isolation.level": "read_committed"}
# Retries never duplicate or reorder a producer's records within a partition.
IDEMPOTENT = {"enable.idempotence": True, "acks": "all"}
# Consumer settings a producer or admin client would only warn about.
CONSUMER_ONLY_PREFIXES = ("session.",)

Settings = Mapping[str, Any]


@dataclass(frozen=True)
class Connection:
    bootstrap_servers: str
    settings: dict[str, str] = field(default_factory=dict)

    def config(
        self, defaults: Settings | None = None, fixed: Settings | None = None, *, for_consumer: bool = True
    ) -> dict[str, Any]:
        """defaults, then the user's settings, then fixed and the bootstrap servers: the last one wins."""
        user = {
            k: v for k, v in self.settings.items() if for_consumer or not k.startswith(CONSUMER_ONLY_PREFIXES)
        }
        return {**(defaults or {}), **user, **(fixed or {}), "bootstrap.servers": self.bootstrap_servers}

    def consumer_config(
        self, group_id: str, defaults: Settings | None = None, fixed: Settings | None = None
    ) -> dict[str, Any]:
        """Every consumer's: it commits only when told and reads committed records only."""
        required = {**(fixed or {}), **COMMIT_WHEN_TOLD, **READ_COMMITTED, "group.id": group_id}
        return self.config(defaults, required)

    def consumer(
        self, group_id: str, defaults: Settings | None = None, fixed: Settings | None = None
    ) -> Consumer:
        """A member of group_id (subscribe); a partition without a committed offset starts at its earliest."""
        return Consumer(
            self.consumer_config(group_id, {"auto.offset.reset": "earliest", **(defaults or {})}, fixed)
        )

    def reader(self, purpose: str, defaults: Settings | None = None, group_id: str | None = None) -> Consumer:
        """A consumer whose partitions are assigned by hand: it joins no group and commits nothing.

        librdkafka wants a group id all the same: a throwaway ``wirewatch-<purpose>-<hex>``, or
        group_id when the reader looks up that group's committed offsets (it never joins it).
        """
        return Consumer(
            self.consumer_config(group_id or f"wirewatch-{purpose}-{uuid.uuid4().hex[:8]}", defaults)
        )

    def producer_config(
        self,
        defaults: Settings | None = None,
        fixed: Settings | None = None,
        transactional_id: str | None = None,
    ) -> dict[str, Any]:
        required = {**(fixed or {}), **IDEMPOTENT}
        if transactional_id:
            required["transactional.id"] = transactional_id
        return self.config({"linger.ms": 5, **(defaults or {})}, required, for_consumer=False)

    def producer(
        self,
        defaults: Settings | None = None,
        fixed: Settings | None = None,
        transactional_id: str | None = None,
    ) -> Producer:
        """The idempotent producer (acks=all; linger.ms 5 unless set).

        With a transactional id it is transactional: init_transactions fences any earlier holder.
        """
        return Producer(self.producer_config(defaults, fixed, transactional_id))

    def admin(self, defaults: Settings | None = None) -> AdminClient:
        return AdminClient(self.config(defaults, for_consumer=False))
