"""Settings: WIREWATCH_* variables, flags on top, clear errors, secrets never shown."""

import argparse
import re
from pathlib import Path

import pytest

from stream.arguments import DEFAULT_DATA_DIR
from stream.errors import ConfigError
from stream.kafka.config import parse_kafka_pairs
from stream.serve.settings import (
    TABLE_END,
    TABLE_START,
    ServeSettings,
    add_arguments,
    from_arguments,
    load_settings,
    settings_table,
)

ROOT = Path(__file__).resolve().parents[3]


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
    readme = (ROOT / "docs" / "operating.md").read_text()
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


def test_the_readme_table_is_the_settings_table_values_included() -> None:
    """One source of defaults: the README's table is generated from the fields, values and all."""
    readme = (ROOT / "docs" / "operating.md").read_text()
    table = readme.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0].strip("\n") + "\n"
    assert table == settings_table(), "run `make settings-table` to regenerate the README's table"
    rows = {r.split("|")[1].strip(" `"): r.split("|")[3].strip(" `") for r in table.splitlines()[2:]}
    assert rows["WIREWATCH_MAX_WAIT_MS"] == "50" == str(ServeSettings.model_fields["max_wait_ms"].default)
    for name, field in ServeSettings.model_fields.items():
        if not field.is_required() and field.default is not None and name != "kafka":
            shown = rows[f"WIREWATCH_{name.upper()}"]
            assert shown == (
                str(field.default).lower() if isinstance(field.default, bool) else str(field.default)
            )


def test_other_defaults_written_outside_the_settings_agree() -> None:
    readme = (ROOT / "docs" / "operating.md").read_text()
    data_row = next(line for line in readme.splitlines() if line.startswith("| `WIREWATCH_DATA_DIR`"))
    assert f"`{DEFAULT_DATA_DIR}`" in data_row
    makefile = (ROOT / "Makefile").read_text()
    assert f"$(WIREWATCH_DATA_DIR),{DEFAULT_DATA_DIR})" in makefile
    bootstrap_row = next(line for line in readme.splitlines() if "(replay, tail)" in line)
    assert f"`{ServeSettings.model_fields['bootstrap_servers'].default}`" in bootstrap_row
    dockerfile = (ROOT / "Dockerfile").read_text()
    port = ServeSettings.model_fields["metrics_port"].default
    assert f"EXPOSE {port}" in dockerfile
    assert f"127.0.0.1:{port}/healthz" in dockerfile


@pytest.mark.parametrize(
    "key",
    ["enable.auto.commit", "isolation.level", "enable.idempotence", "transactional.id", "Enable.Auto.Commit"],
)
def test_semantics_critical_kafka_keys_are_refused(key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"{key!r} cannot be passed through")):
        load_settings(bundle="b", kafka_extra={key: "x"})
    monkeypatch.setenv("WIREWATCH_KAFKA", f'{{"{key}": "x"}}')
    with pytest.raises(ConfigError, match="invalid setting kafka"):
        load_settings(bundle="b")


def test_tuning_keys_still_pass_through() -> None:
    settings = load_settings(bundle="b", kafka_extra={"fetch.max.bytes": "1000", "security.protocol": "SSL"})
    assert settings.kafka == {"fetch.max.bytes": "1000", "security.protocol": "SSL"}


def test_the_shadow_topic_must_differ_from_the_others() -> None:
    with pytest.raises(ConfigError, match="topics must differ"):
        load_settings(bundle="b", shadow_bundle="s", shadow_topic="article-scores")
    assert load_settings(bundle="b", shadow_topic="article-scores").shadow_bundle is None  # unused: no clash
