"""Message contracts: the committed JSON Schema files match the models, and outputs round-trip."""

import json
from datetime import UTC, datetime
from pathlib import Path

from stream.schemas import SCHEMAS, Alert, ArticleIn, Contribution, ModelRef, Score, SourceRef, write_schemas

ROOT = Path(__file__).resolve().parents[3]


def test_committed_schema_files_are_current(tmp_path: Path) -> None:
    for path in write_schemas(tmp_path):
        committed = ROOT / "schemas" / path.name
        assert committed.is_file(), f"{committed} is missing: run `make schemas`"
        assert json.loads(committed.read_text()) == json.loads(path.read_text()), (
            f"{committed} is stale: run `make schemas`"
        )
    assert {p.name for p in (ROOT / "schemas").glob("*.json")} == {f"{n}.schema.json" for n in SCHEMAS}


def test_input_schema_requires_id_and_text() -> None:
    schema = ArticleIn.model_json_schema()
    assert set(schema["required"]) == {"id", "text"}
    assert schema["properties"]["id"]["maxLength"] == 256


def test_alert_round_trips_and_carries_the_score_fields() -> None:
    score = Score(
        id="a",
        score=0.93,
        is_alert=True,
        threshold=0.5,
        model=ModelRef(name="terrorism-v1", version="1.0.0"),
        scored_at=datetime(2026, 11, 29, tzinfo=UTC),
        source=SourceRef(topic="articles", partition=2, offset=41),
    )
    alert = Alert(
        **score.model_dump(),
        title="Bomb in Lima",
        snippet="a bomb exploded",
        publisher="AP",
        url=None,
        published_at=None,
        explanation=[Contribution(sentence="a bomb exploded", contribution=0.8, alone=0.9)],
    )
    data = json.loads(alert.model_dump_json())
    assert set(Score.model_fields) <= set(data)
    assert data["source"] == {"topic": "articles", "partition": 2, "offset": 41}
    assert Alert.model_validate(data) == alert
