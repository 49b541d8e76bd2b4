"""The canonical article format and its readers.

One article per JSONL line: ``{"id": str, "title": str | null, "text": str, "label": 0 | 1}``.
``label`` is optional (unlabeled data); extra fields are allowed and kept. CSV files with
``text`` and ``label`` columns (``id`` and ``title`` optional) read into the same shape.
"""

import csv
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from stream.errors import DataError


class Article(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    title: str | None = None
    text: str
    label: Literal[0, 1] | None = None

    def get(self, field: str) -> Any:
        """An extra field (corpus, split, category, ...), or None."""
        return (self.model_extra or {}).get(field)

    @field_validator("label", mode="before")
    @classmethod
    def _label_from_text(cls, value: Any) -> Any:
        # CSV cells and hand-written files carry "1" or 1.0; both mean 1.
        if isinstance(value, str) and value.strip() in {"0", "1"}:
            return int(value)
        if isinstance(value, float) and value in (0.0, 1.0):
            return int(value)
        return value


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "record"
    return f"{where}: {err['msg']}"


def _parse(record: Any, where: str, *, require_label: bool) -> Article:
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    record.setdefault("id", where)
    try:
        article = Article.model_validate(record)
    except ValidationError as exc:
        raise DataError(f"{where}: {_first_error(exc)}") from None
    if require_label and article.label is None:
        raise DataError(f"{where}: missing 'label' (0 or 1)")
    return article


def _jsonl_rows(path: Path) -> Iterator[tuple[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                yield where, json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{where}: malformed JSON ({exc.msg})") from None


def _csv_rows(path: Path) -> Iterator[tuple[str, Any]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or "text" not in reader.fieldnames:
            raise DataError(f"{path}: a CSV file needs a header row with a 'text' column")
        for lineno, row in enumerate(reader, start=2):
            record = {k: v for k, v in row.items() if k is not None and v not in (None, "")}
            record.setdefault("text", "")
            yield f"{path}:{lineno}", record


def iter_articles(path: str | Path, *, require_label: bool = False) -> Iterator[Article]:
    """Yield the articles of a JSONL or CSV file, failing on the first malformed row."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    rows = _csv_rows(path) if path.suffix.lower() == ".csv" else _jsonl_rows(path)
    try:
        for where, record in rows:
            yield _parse(record, where, require_label=require_label)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None


def read_articles(path: str | Path, *, require_label: bool = False) -> list[Article]:
    articles = list(iter_articles(path, require_label=require_label))
    if not articles:
        raise DataError(f"{path}: no articles in the file")
    return articles


def write_articles(path: str | Path, articles: Iterable[Article]) -> int:
    """Write articles as JSONL (atomically: a reader never sees half a file); returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    count = 0
    with tmp.open("w", encoding="utf-8") as handle:
        for article in articles:
            handle.write(json.dumps(article.model_dump(exclude_none=True), ensure_ascii=False))
            handle.write("\n")
            count += 1
    tmp.replace(path)
    return count
