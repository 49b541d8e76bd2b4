"""Settings: WIREWATCH_* variables, flags on top, clear errors, secrets never shown."""

import argparse
from pathlib import Path

import pytest

from stream.errors import ConfigError
from stream.settings import ServeSettings, add_arguments, from_arguments, load_settings, parse_kafka_pairs

ROOT = Path(__file__).resolve().parents[2]


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_environment_then_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WIREWATCH_BUNDLE", "exports/a")
    monkeypatch.setenv("WIREWATCH_BATCH_SIZE", "64")
    monkeypatch.setenv("WIREWATCH_EXPLAIN", "false")
    monkeypatch.setenv("WIREWATCH_KAFKA", '{"security.protocol": "SASL_SSL", "sasl.password": "hunter2"}')
    settings = from_arguments(
        _parse("--batch-size", "8", "--kafka", "sasl.mechanism=PLAIN", "--threads", "1")
    )
    assert settings.bundle == Path("exports/a")
    assert settings.batch_size == 8  # the flag wins
    assert settings.explain is False
    assert settings.intra_op_threads == 1
    assert settings.kafka == {
        "security.protocol": "SASL_SSL",
        "sasl.password": "hunter2",
        "sasl.mechanism": "PLAIN",
    }
    assert settings.redacted_kafka()["sasl.password"] == "***"
    assert "hunter2" not in str(settings.redacted_kafka())


def test_every_setting_has_a_flag_and_a_readme_entry() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    flags = {opt for action in parser._actions for opt in action.option_strings}
    readme = (ROOT / "README.md").read_text()
    for name in ServeSettings.model_fields:
        assert "--" + name.replace("_", "-") in flags
        assert f"WIREWATCH_{name.upper()}" in readme, (
            f"README's configuration table lacks WIREWATCH_{name.upper()}"
        )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"batch_size": 0}, r"invalid setting batch_size \(--batch-size / WIREWATCH_BATCH_SIZE\)"),
        ({"providers": "tpu"}, r"invalid setting providers"),
        ({"scores_topic": "articles"}, r"topics must differ"),
        ({}, r"invalid setting bundle"),
    ],
)
def test_bad_settings_name_what_to_fix(
    overrides: dict[str, object], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WIREWATCH_BUNDLE", raising=False)
    fields = {"bundle": "b", **overrides} if overrides else {}
    with pytest.raises(ConfigError, match=message):
        load_settings(**fields)


def test_kafka_pairs() -> None:
    assert parse_kafka_pairs(["a=1", "b.c=x=y"]) == {"a": "1", "b.c": "x=y"}
    with pytest.raises(ConfigError, match="key=value"):
        parse_kafka_pairs(["novalue"])
