"""Dead letters: the input's bytes with the reason in headers, and never larger than Kafka takes.

A dead letter that cannot be delivered would stop its partition for good (every restart re-reads
the same offset), so when an output would exceed the producer's limit it is replaced here: a score
or alert too large becomes a dead letter, and a dead letter too large carries only the start of
the input's value, with its original size in a header. Pure and Kafka-free.
"""

from stream.kafka.records import Headers, Incoming, Output
from stream.schemas import (
    DETAIL_HEADER,
    ERROR_HEADER,
    OFFSET_HEADER,
    ORIGINAL_SIZE_HEADER,
    PARTITION_HEADER,
    TOPIC_HEADER,
    DeadLetterReason,
)

# Record framing the broker counts beyond key, value and headers (varints, batch header share).
RECORD_OVERHEAD = 512
MAX_DETAIL_CHARS = 1000
MAX_KEY_BYTES = 1024


def dead_letter(
    message: Incoming, reason: DeadLetterReason, detail: str, topic: str, extra: Headers | None = None
) -> Output:
    """The input's key and value for the dead-letter topic: its own headers, then why and where from."""
    headers: Headers = [
        *message.headers,
        (ERROR_HEADER, reason.encode()),
        (DETAIL_HEADER, detail[:MAX_DETAIL_CHARS].encode()),
        (TOPIC_HEADER, message.topic.encode()),
        (PARTITION_HEADER, str(message.partition).encode()),
        (OFFSET_HEADER, str(message.offset).encode()),
        *(extra or []),
    ]
    return Output(topic, message.key, message.value or b"", headers, message, "dead_letter")


def fits(output: Output, limit: int) -> bool:
    return output.size + RECORD_OVERHEAD <= limit


def fit(output: Output, limit: int, dlq_topic: str) -> Output:
    """The output itself when it fits in limit bytes; else a dead letter for its input that does."""
    if fits(output, limit):
        return output
    if output.kind != "dead_letter":
        output = dead_letter(
            output.origin,
            "output_too_large",
            f"the {output.kind} for this article is {output.size} bytes, over the limit of {limit}",
            dlq_topic,
        )
        if fits(output, limit):
            return output
    return _capped(output, limit)


def reject(output: Output, reason: str, limit: int, dlq_topic: str) -> Output:
    """A dead letter in place of an output the broker refused (e.g. over the topic's size limit)."""
    if output.kind == "dead_letter":
        return _capped(output, limit)
    letter = dead_letter(output.origin, "rejected_by_broker", f"the {output.kind}: {reason}", dlq_topic)
    return letter if fits(letter, limit) else _capped(letter, limit)


def _capped(letter: Output, limit: int) -> Output:
    """The dead letter with the start of the value only (and the input's own headers if room)."""
    own = [(k, v) for k, v in letter.headers if k.startswith("wirewatch-") and k != ORIGINAL_SIZE_HEADER]
    theirs = [(k, v) for k, v in letter.headers if not k.startswith("wirewatch-")]
    original = next(
        (int(v) for k, v in letter.headers if k == ORIGINAL_SIZE_HEADER), len(letter.origin.value or b"")
    )
    own.append((ORIGINAL_SIZE_HEADER, str(original).encode()))
    key = letter.key if letter.key is None or len(letter.key) <= MAX_KEY_BYTES else letter.key[:MAX_KEY_BYTES]
    room = limit - RECORD_OVERHEAD - len(key or b"") - sum(len(k) + len(v) for k, v in own)
    their_size = sum(len(k) + len(v) for k, v in theirs)
    # The input's own headers (trace ids) ride along when they leave room for the value.
    if their_size <= room // 2:
        own, room = own + theirs, room - their_size
    return Output(letter.topic, key, letter.value[: max(0, room)], own, letter.origin, "dead_letter")
