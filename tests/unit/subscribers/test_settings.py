"""Secrets of `incidents`, `web` and `notify` come from the environment or files, and are never logged."""

from pathlib import Path

import pytest

from stream.errors import ConfigError
from stream.kafka.config import read_properties, redact_kafka
from stream.subscribers.cli import _kafka_of, _subscriber_settings
from stream.subscribers.settings import load_subscriber_settings
from wirewatch.cli import build_parser

PROPERTIES = """\
# SASL for the subscriber tools
security.protocol = SASL_SSL
! a Java-style comment
sasl.mechanism=PLAIN
sasl.password=hunter2=with=equals

sasl.oauthbearer.config=clientId=x clientSecret=oauth-secret
"""


def test_every_subscriber_command_takes_kafka_settings_from_the_environment_and_a_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "client.properties").write_text(PROPERTIES)
    monkeypatch.setenv("WIREWATCH_KAFKA", '{"session.timeout.ms": "6000", "sasl.mechanism": "SCRAM-SHA-512"}')
    parser = build_parser(["web"])
    extra = {"notify": ["--webhook-file", "unused"], "incidents": [], "web": []}
    for command in ("incidents", "web", "notify"):
        args = parser.parse_args(
            [
                command,
                "--kafka-file",
                str(tmp_path / "client.properties"),
                "--kafka",
                "client.id=me",
                *extra[command],
            ]
        )
        assert _kafka_of(args) == {
            "session.timeout.ms": "6000",
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "PLAIN",  # the file over the environment
            "sasl.password": "hunter2=with=equals",
            "sasl.oauthbearer.config": "clientId=x clientSecret=oauth-secret",
            "client.id": "me",  # the flag on top
        }, command
    monkeypatch.delenv("WIREWATCH_KAFKA")
    monkeypatch.setenv("WIREWATCH_KAFKA_FILE", str(tmp_path / "client.properties"))
    assert _kafka_of(parser.parse_args(["web"]))["sasl.password"] == "hunter2=with=equals"


def test_keys_the_commands_set_themselves_are_refused_wherever_they_come_from(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "p").write_text("isolation.level=read_uncommitted\n")
    with pytest.raises(ConfigError, match=r"'isolation\.level' cannot be passed through"):
        load_subscriber_settings(kafka_file=tmp_path / "p").kafka_config([])
    with pytest.raises(ConfigError, match=r"'group\.id' cannot be passed through"):
        load_subscriber_settings().kafka_config(["group.id=theirs"])
    monkeypatch.setenv("WIREWATCH_KAFKA", '{"enable.auto.commit": "true"}')
    with pytest.raises(ConfigError, match="WIREWATCH_KAFKA"):
        load_subscriber_settings()


def test_a_bad_properties_line_is_named_by_its_number_not_its_content(tmp_path: Path) -> None:
    (tmp_path / "p").write_text("sasl.username=me\nhunter2-pasted-alone\n")
    with pytest.raises(ConfigError, match="line 2: expected key=value") as raised:
        read_properties(tmp_path / "p")
    assert "hunter2" not in str(raised.value)
    with pytest.raises(ConfigError, match="cannot read it"):
        read_properties(tmp_path / "missing")


@pytest.mark.parametrize(
    "key",
    [
        "sasl.password",
        "sasl.oauthbearer.config",
        "sasl.oauthbearer.client.secret",
        "ssl.key.password",
        "ssl.keystore.password",
        "ssl.key.pem",
        "sasl.kerberos.keytab",
        "client.credentials",
        "SASL.PASSWORD",
        "sasl.oauthbearer.token.endpoint.url",
    ],
)
def test_secret_looking_keys_are_redacted(key: str) -> None:
    redacted = redact_kafka({key: "s3cr3t", "bootstrap.servers": "b:9092", "sasl.username": "me"})
    assert redacted == {key: "***", "bootstrap.servers": "b:9092", "sasl.username": "me"}


def test_the_webhook_and_the_page_token_come_from_their_variable_or_their_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    parser = build_parser(["notify"])
    assert _subscriber_settings(parser.parse_args(["notify"])).webhook_url() is None
    monkeypatch.setenv("WIREWATCH_WEBHOOK", " https://hooks.example/services/T/B/X\n")
    assert (
        _subscriber_settings(parser.parse_args(["notify"])).webhook_url()
        == "https://hooks.example/services/T/B/X"
    )
    (tmp_path / "hook").write_text("https://hooks.example/from-file\n")
    with pytest.raises(ConfigError, match="both WIREWATCH_WEBHOOK and --webhook-file are set"):
        _subscriber_settings(
            parser.parse_args(["notify", "--webhook-file", str(tmp_path / "hook")])
        ).webhook_url()
    monkeypatch.delenv("WIREWATCH_WEBHOOK")
    args = parser.parse_args(["notify", "--webhook-file", str(tmp_path / "hook")])
    assert _subscriber_settings(args).webhook_url() == "https://hooks.example/from-file"
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="the file is empty"):
        load_subscriber_settings(web_token_file=tmp_path / "empty").token()
    monkeypatch.setenv("WIREWATCH_WEB_TOKEN", "t0ken-from-the-environment")
    assert load_subscriber_settings().token() == "t0ken-from-the-environment"
    assert "t0ken" not in repr(load_subscriber_settings())
