"""Reading the canonical JSONL and CSV formats, and the errors bad files give."""

import json
from pathlib import Path

import pytest

from stream.errors import DataError
from stream.scoring.articles import Article, read_articles, write_articles


def _jsonl(path: Path, *rows: object) -> Path:
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8"
    )
    return path


def test_round_trip_keeps_extra_fields(tmp_path: Path) -> None:
    articles = [
        Article(id="a", title="T", text="x", label=1, corpus="muc"),
        Article(id="b", text="y"),
    ]
    write_articles(tmp_path / "a.jsonl", articles)
    back = read_articles(tmp_path / "a.jsonl")
    assert [a.model_dump(exclude_none=True) for a in back] == [
        {"id": "a", "title": "T", "text": "x", "label": 1, "corpus": "muc"},
        {"id": "b", "text": "y"},
    ]


def test_malformed_json_reports_file_and_line(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "bad.jsonl", {"id": "a", "text": "x"}, "{not json")
    with pytest.raises(DataError, match=r"bad.jsonl:2: malformed JSON"):
        read_articles(path)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"id": "a"}, r":1: text: Field required"),
        ({"id": "a", "text": 5}, r":1: text: Input should be a valid string"),
        ({"id": "a", "text": "x", "label": 2}, r":1: label: "),
        ([1, 2], r":1: expected a JSON object"),
    ],
)
def test_schema_errors_name_the_field(tmp_path: Path, row: object, message: str) -> None:
    with pytest.raises(DataError, match=message):
        read_articles(_jsonl(tmp_path / "f.jsonl", row))


def test_labels_required_when_asked(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "f.jsonl", {"id": "a", "text": "x"})
    assert read_articles(path)[0].label is None
    with pytest.raises(DataError, match=r"f.jsonl:1: missing 'label'"):
        read_articles(path, require_label=True)


def test_csv_with_text_and_label_columns(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text('text,label\n"Bomb kills 3 in Lima",1\nMarkets rose,0\n', encoding="utf-8")
    articles = read_articles(path, require_label=True)
    assert [(a.text, a.label) for a in articles] == [("Bomb kills 3 in Lima", 1), ("Markets rose", 0)]
    assert articles[0].id.endswith("mine.csv:2")


def test_csv_without_text_column(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text("body,label\nx,1\n", encoding="utf-8")
    with pytest.raises(DataError, match="'text' column"):
        read_articles(path)


def test_missing_empty_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        read_articles(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataError, match="no articles"):
        read_articles(tmp_path / "empty.jsonl")
    (tmp_path / "latin.jsonl").write_bytes(b'{"id": "a", "text": "caf\xe9"}\n')
    with pytest.raises(DataError, match="not valid UTF-8"):
        read_articles(tmp_path / "latin.jsonl")
