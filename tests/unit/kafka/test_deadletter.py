"""Dead letters never exceed what Kafka takes: capped, with the original size in a header."""

from stream.kafka.deadletter import RECORD_OVERHEAD, dead_letter, fit, reject
from stream.kafka.records import Incoming, Output
from stream.schemas import ERROR_HEADER, ORIGINAL_SIZE_HEADER

LIMIT = 100_000


def _incoming(value: bytes, headers: list[tuple[str, bytes]] | None = None) -> Incoming:
    return Incoming("articles", 2, 41, b"key", value, headers or [("traceparent", b"00-abc")], None)


def _header(output: Output, name: str) -> bytes | None:
    return next((v for k, v in output.headers if k == name), None)


def test_a_dead_letter_that_fits_is_the_input_unchanged() -> None:
    letter = dead_letter(_incoming(b"{broken"), "invalid_json", "Expecting value", "dlq")
    assert fit(letter, LIMIT, "dlq") is letter
    assert letter.value == b"{broken"
    assert _header(letter, "traceparent") == b"00-abc"


def test_every_dead_letter_names_its_reason_and_source_then_the_stage_s_own_headers() -> None:
    """The wire names and values every reader of a dead-letter topic relies on (docs/subscribers.md)."""
    extra = [("wirewatch-webhook", b"https://hooks")]
    letter = dead_letter(_incoming(b"{}"), "webhook_failed", "HTTP 500", "notify-dlq", extra)
    assert letter.headers == [
        ("traceparent", b"00-abc"),
        ("wirewatch-error", b"webhook_failed"),
        ("wirewatch-error-detail", b"HTTP 500"),
        ("wirewatch-source-topic", b"articles"),
        ("wirewatch-source-partition", b"2"),
        ("wirewatch-source-offset", b"41"),
        ("wirewatch-webhook", b"https://hooks"),
    ]
    assert (letter.topic, letter.key, letter.value, letter.kind) == (
        "notify-dlq",
        b"key",
        b"{}",
        "dead_letter",
    )


def test_an_oversized_dead_letter_carries_the_start_of_the_value_and_its_size() -> None:
    value = b"x" * 5_000_000
    letter = fit(dead_letter(_incoming(value), "too_large", "5000000 bytes", "dlq"), LIMIT, "dlq")
    assert letter.size + RECORD_OVERHEAD <= LIMIT
    assert value.startswith(letter.value)
    assert len(letter.value) > LIMIT // 2
    assert _header(letter, ORIGINAL_SIZE_HEADER) == b"5000000"
    assert _header(letter, ERROR_HEADER) == b"too_large"
    assert _header(letter, "traceparent") == b"00-abc"


def test_huge_input_headers_are_dropped_before_the_reason_is() -> None:
    incoming = _incoming(b"{}", [("junk", b"h" * 200_000)])
    letter = fit(dead_letter(incoming, "schema_violation", "id: Field required", "dlq"), LIMIT, "dlq")
    assert letter.size + RECORD_OVERHEAD <= LIMIT
    assert _header(letter, "junk") is None
    assert _header(letter, ERROR_HEADER) == b"schema_violation"


def test_a_score_too_large_becomes_a_dead_letter() -> None:
    incoming = _incoming(b'{"id": "a", "text": "t"}', [("junk", b"h" * 200_000)])
    score = Output("scores", b"a", b"{}", incoming.headers, incoming, "score")
    letter = fit(score, LIMIT, "dlq")
    assert letter.topic == "dlq"
    assert _header(letter, ERROR_HEADER) == b"output_too_large"
    assert letter.size + RECORD_OVERHEAD <= LIMIT


def test_a_refused_output_becomes_a_small_dead_letter_and_keeps_the_first_original_size() -> None:
    incoming = _incoming(b"y" * 50_000)
    alert = Output("alerts", b"a", b"z" * 60_000, [], incoming, "alert")
    letter = reject(alert, "Broker: Message size too large", 16_384, "dlq")
    assert _header(letter, ERROR_HEADER) == b"rejected_by_broker"
    assert letter.size + RECORD_OVERHEAD <= 16_384
    again = reject(letter, "still too large", 4_096, "dlq")
    assert _header(again, ORIGINAL_SIZE_HEADER) == b"50000"
    assert again.size + RECORD_OVERHEAD <= 4_096
