"""docker-compose.yml and the Dockerfile, checked against the code: no Docker engine runs here."""

import re
import tomllib
from pathlib import Path

import yaml

from stream.serve.settings import ServeSettings
from wirewatch.cli import build_parser

ROOT = Path(__file__).resolve().parents[3]


def _compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_kafka_is_the_official_image_in_kraft_mode() -> None:
    kafka = _compose()["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "zookeeper" not in str(kafka).lower()
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == 1  # exactly-once works on one node


def test_the_topics_service_creates_the_scorers_default_topics() -> None:
    services = _compose()["services"]
    script = services["topics"]["command"][0]
    created = set(re.search(r"for topic in ([^;]+);", script).group(1).split())  # type: ignore[union-attr]
    fields = ServeSettings.model_fields
    defaults = {fields[f].default for f in ("input_topic", "scores_topic", "alerts_topic", "dlq_topic")}
    assert created == defaults
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_scorer_settings_are_real_settings_and_the_bundle_is_mounted() -> None:
    scorer = _compose()["services"]["scorer"]
    assert scorer["build"] == "."
    assert scorer["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    for key in scorer["environment"]:
        assert key.startswith("WIREWATCH_")
        assert key.removeprefix("WIREWATCH_").lower() in ServeSettings.model_fields, key
    mount_host, mount_container, _ = scorer["volumes"][0].split(":")
    assert mount_host == "./exports"
    assert scorer["environment"]["WIREWATCH_BUNDLE"].startswith(mount_container + "/")
    bootstrap = scorer["environment"]["WIREWATCH_BOOTSTRAP_SERVERS"]
    assert bootstrap in _compose()["services"]["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]


def test_image_holds_the_serving_install_only() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"pip install \.(\s|&)", dockerfile), "the image installs the base package, no extras"
    assert "torch" not in dockerfile.replace("no torch", "")
    assert 'ENTRYPOINT ["wirewatch", "serve"]' in dockerfile
    base = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not [d for d in base if re.match(r"(torch|transformers|scikit-learn|rich)\b", d)]
    copied = re.findall(r"^COPY (\S+)", dockerfile, re.MULTILINE)
    assert "training" not in copied  # the console script lives in wirewatch/, not training/
    assert {"wirewatch", "stream"} <= set(copied)


def _created_topics(script: str) -> dict[str, str]:
    """Topic -> its --config flags, from the topics service's shell script."""
    created: dict[str, str] = {}
    for loop, _ in re.findall(r"for topic in ([^;]+);(.*?)done", script, re.DOTALL):
        created.update(dict.fromkeys(loop.split(), ""))
    for topic, config in re.findall(
        r"--topic (article-[\w-]+) [^\n]*?((?:--config \S+ ?)*)$", script, re.MULTILINE
    ):
        created[topic] = config.strip()
    return created


def test_subscriber_services_run_real_commands_on_topics_the_compose_file_creates() -> None:
    services = _compose()["services"]
    created = _created_topics(services["topics"]["command"][0])
    assert created["article-incidents"] == "--config cleanup.policy=compact"  # state, keyed by incident id
    parser = build_parser(["incidents"])
    for name in ("incidents", "web", "notify"):
        service = services[name]
        assert service["build"] == "."
        assert service["entrypoint"] == ["wirewatch", name]
        args = parser.parse_args([name, *service["command"]])
        assert service["environment"]["WIREWATCH_BOOTSTRAP_SERVERS"] == "kafka:29092"
        for topic in (
            "alerts_topic",
            "incidents_topic",
            "incident_alerts_topic",
            "input_topic",
            "scores_topic",
        ):
            if hasattr(args, topic):
                assert getattr(args, topic) in created, (name, topic)
        for path in (getattr(args, "embedder", None), getattr(args, "bundle", None)):
            if path is not None:
                assert str(path).startswith("/exports/")
                assert "./exports:/exports:ro" in service["volumes"]
    assert created.keys() >= {"article-incident-alerts", "article-notify-dlq"}
    assert services["notify"]["profiles"] == ["notify"]  # it needs a webhook; off unless asked for
    assert services["web"]["ports"] == ["127.0.0.1:8080:8080"]


def test_secrets_stay_off_command_lines_and_unauthenticated_ports_stay_on_loopback() -> None:
    services = _compose()["services"]
    assert services["notify"]["environment"]["WIREWATCH_WEBHOOK"] == "${WIREWATCH_WEBHOOK:-}"
    assert services["web"]["environment"]["WIREWATCH_WEB_TOKEN"] == "${WIREWATCH_WEB_TOKEN:-}"
    for name, service in services.items():
        assert "WEBHOOK" not in str(service.get("command", "")), name
        if name in ("kafka", "web"):
            assert all(str(p).startswith("127.0.0.1:") for p in service["ports"]), name
