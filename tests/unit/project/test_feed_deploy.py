"""The compose `feed` service and the image's feed stage, checked against the code (no Docker here)."""

import re
from pathlib import Path

import yaml

from stream.feed.settings import FeedSettings
from stream.feed.sources import read_feed_file
from wirewatch.cli import build_parser

ROOT = Path(__file__).resolve().parents[3]


def test_the_feed_service_runs_the_feed_command_on_a_mounted_list() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    feed = services["feed"]
    assert feed["build"] == {"context": ".", "target": "feed"}
    args = build_parser(["feed"]).parse_args(["feed", *feed["command"]])
    mounted = {v.rsplit(":", 2)[1] for v in feed["volumes"]}  # HOST:CONTAINER:ro, HOST may hold ${...:-...}
    assert [str(p) for p in args.feeds] == ["/feeds/feeds.txt"]
    assert "/feeds/feeds.txt" in mounted
    for key in feed["environment"]:
        name = key.removeprefix("WIREWATCH_FEED_").removeprefix("WIREWATCH_").lower()
        assert name in FeedSettings.model_fields, key
    assert feed["environment"]["WIREWATCH_BOOTSTRAP_SERVERS"] == "kafka:29092"
    assert read_feed_file(ROOT / "feeds.example.txt")  # the example the comments point to is a valid list


def test_the_image_has_a_feed_stage_with_the_extra_and_the_scorer_stays_last() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM \S+ AS (\S+)", dockerfile, re.MULTILINE)
    assert stages[-1] == "scorer"  # `docker build .` still builds the scorer, without the feed extra
    feed = dockerfile.split("AS feed", 1)[1].split("FROM ", 1)[0]
    assert "pip install '.[feed]'" in feed
    assert 'ENTRYPOINT ["wirewatch", "feed"]' in feed
