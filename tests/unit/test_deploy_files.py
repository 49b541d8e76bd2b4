"""docker-compose.yml and the Dockerfile, checked against the code: no Docker engine runs here."""

import re
import tomllib
from pathlib import Path

import yaml

from stream.settings import ServeSettings

ROOT = Path(__file__).resolve().parents[2]


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
