"""Importers for the original corpus archives (see ../shared/datasets/README.md).

Each importer reads the archive as distributed, never an extracted copy, and returns Articles
with the raw text (cleaning happens later, the same way for training and scoring) and extra
fields: ``corpus``, ``split`` (the corpus' own split) and ``category`` where the corpus has one.
"""

import csv
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path

from stream.scoring.articles import Article
from stream.errors import DataError

MUC_ARCHIVE = "muc34-terrorism/muc34.tar.gz"
AG_NEWS_CSV = "ag_news/test.csv"
BBC_ARCHIVE = "bbc-news/bbc-fulltext.tar.gz"
REUTERS_DIR = "reuters21578"

AG_CLASSES = {1: "world", 2: "sports", 3: "business", 4: "scitech"}

# MUC text files and answer keys per split. tst4's upper-case copy is used, like every other split.
_MUC_TEXTS = re.compile(r"TASK/CORPORA/(dev|tst[1-4])/(?:dev-muc3-\d{4}-\d{4}|tst[1-4]-muc[34])$")
_MUC_KEYS = re.compile(r"TASK/CORPORA/(dev|tst[1-4])/key-(?:dev-\d{4}\.muc4|tst[1-4]\.v\d+)$")
_MUC_DOC_START = re.compile(r"^((?:DEV-MUC3|TST[1-4]-MUC[34])-\d{4})\b.*$", re.MULTILINE)
_MUC_KEY_ID = re.compile(r"^0\.\s+MESSAGE: ID\s+(\S+)", re.MULTILINE)
_MUC_KEY_TEMPLATE = re.compile(r"^1\.\s+MESSAGE: TEMPLATE\s+(\S+)", re.MULTILINE)


def _require(path: Path) -> Path:
    if not path.exists():
        raise DataError(f"{path}: not found; point --data-dir at the datasets folder (../shared/datasets)")
    return path


def _open_tar(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(_require(path), "r:gz")
    except (tarfile.TarError, OSError) as exc:
        raise DataError(f"{path}: cannot read the archive ({exc})") from None


def _members(tar: tarfile.TarFile) -> Iterator[tuple[str, bytes]]:
    for member in tar:
        name = member.name
        if not member.isfile() or Path(name).name.startswith("._"):
            continue  # macOS AppleDouble files in the re-tarred MUC archive
        handle = tar.extractfile(member)
        if handle is not None:
            yield name, handle.read()


def muc_relevance(key_text: str) -> dict[str, bool]:
    """Document id -> relevant, from one answer-key file.

    A document is relevant when its key has at least one incident template, that is a
    ``MESSAGE: TEMPLATE`` that is not ``*`` (optional templates count).
    """
    relevant: dict[str, bool] = {}
    blocks = re.split(r"\n(?=0\.\s+MESSAGE: ID)", key_text)
    for block in blocks:
        doc = _MUC_KEY_ID.search(block)
        template = _MUC_KEY_TEMPLATE.search(block)
        if doc is None or template is None:
            continue
        relevant[doc.group(1)] = relevant.get(doc.group(1), False) or template.group(1) != "*"
    return relevant


def split_muc_texts(corpus_text: str) -> Iterator[tuple[str, str]]:
    """(doc id, text) for each document of a MUC text file."""
    starts = list(_MUC_DOC_START.finditer(corpus_text))
    for start, end in zip(starts, [*starts[1:], None], strict=True):
        body = corpus_text[start.end() : end.start() if end else len(corpus_text)]
        yield start.group(1), body.strip()


def load_muc(data_dir: Path) -> list[Article]:
    texts: dict[str, tuple[str, str]] = {}
    relevance: dict[str, bool] = {}
    with _open_tar(data_dir / MUC_ARCHIVE) as tar:
        for name, payload in _members(tar):
            if match := _MUC_TEXTS.search(name):
                for doc_id, text in split_muc_texts(payload.decode("latin-1")):
                    texts[doc_id] = (match.group(1), text)
            elif _MUC_KEYS.search(name):
                relevance.update(muc_relevance(payload.decode("latin-1")))
    if not texts:
        raise DataError(f"{data_dir / MUC_ARCHIVE}: no MUC texts found in the archive")
    missing = sorted(set(texts) - set(relevance))
    if missing:
        raise DataError(
            f"{data_dir / MUC_ARCHIVE}: no answer key for {len(missing)} documents, e.g. {missing[0]}"
        )
    return [
        Article(
            id=f"muc:{doc_id}",
            title=None,
            text=text,
            label=1 if relevance[doc_id] else 0,
            corpus="muc",
            split=split,
        )
        for doc_id, (split, text) in sorted(texts.items())
    ]


def load_ag_news(data_dir: Path) -> list[Article]:
    path = _require(data_dir / AG_NEWS_CSV)
    articles = []
    with path.open(encoding="utf-8", newline="") as handle:
        for row_no, row in enumerate(csv.reader(handle), start=1):
            if len(row) != 3 or not row[0].isdigit() or int(row[0]) not in AG_CLASSES:
                raise DataError(f"{path}:{row_no}: expected class,title,description")
            # The CSV marks line breaks with a backslash.
            title, text = (field.replace("\\", " ") for field in row[1:])
            articles.append(
                Article(
                    id=f"ag:{row_no}",
                    title=title,
                    text=text,
                    corpus="ag_news",
                    split="test",
                    category=AG_CLASSES[int(row[0])],
                )
            )
    return articles


def _decode(payload: bytes) -> str:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:  # one BBC file is latin-1
        return payload.decode("latin-1")


def load_bbc(data_dir: Path) -> list[Article]:
    articles = []
    with _open_tar(data_dir / BBC_ARCHIVE) as tar:
        for name, payload in _members(tar):
            parts = Path(name).parts
            if len(parts) != 3 or not parts[2].endswith(".txt"):
                continue  # README.TXT
            title, _, body = _decode(payload).strip().partition("\n")
            articles.append(
                Article(
                    id=f"bbc:{parts[1]}/{parts[2].removesuffix('.txt')}",
                    title=title.strip(),
                    text=body.strip(),
                    corpus="bbc",
                    split="all",
                    category=parts[1],
                )
            )
    return sorted(articles, key=lambda a: a.id)


_REUTERS_DOC = re.compile(r"<REUTERS ([^>]*)>(.*?)</REUTERS>", re.DOTALL)
_REUTERS_ATTR = re.compile(r'(\w+)="([^"]*)"')
_REUTERS_TITLE = re.compile(r"<TITLE>(.*?)</TITLE>", re.DOTALL)
_REUTERS_BODY = re.compile(r"<BODY>(.*?)</BODY>", re.DOTALL)
_REUTERS_TOPICS = re.compile(r"<TOPICS>(.*?)</TOPICS>", re.DOTALL)
_REUTERS_D = re.compile(r"<D>(.*?)</D>")


def parse_reuters_sgml(sgml: str) -> Iterator[Article]:
    """Documents of one SGML file in the ModApte split (TOPICS="YES", LEWISSPLIT TRAIN or TEST)."""
    for doc in _REUTERS_DOC.finditer(sgml):
        attrs = dict(_REUTERS_ATTR.findall(doc.group(1)))
        if attrs.get("TOPICS") != "YES" or attrs.get("LEWISSPLIT") not in ("TRAIN", "TEST"):
            continue
        inner = doc.group(2)
        title = _REUTERS_TITLE.search(inner)
        body = _REUTERS_BODY.search(inner)
        topics = _REUTERS_TOPICS.search(inner)
        yield Article(
            id=f"reuters:{attrs['NEWID']}",
            title=title.group(1).strip() if title else None,
            text=body.group(1).strip() if body else "",
            corpus="reuters",
            split=attrs["LEWISSPLIT"].lower(),
            category=",".join(_REUTERS_D.findall(topics.group(1))) if topics else "",
        )


def load_reuters(data_dir: Path) -> list[Article]:
    folder = _require(data_dir / REUTERS_DIR)
    files = sorted(folder.glob("reut2-*.sgm"))
    if not files:
        raise DataError(f"{folder}: no reut2-*.sgm files")
    articles: list[Article] = []
    for path in files:
        articles.extend(parse_reuters_sgml(path.read_text(encoding="latin-1")))
    return articles


CURRENT_EVENTS_ARCHIVE = "wikipedia-current-events/current-events-2010-2018.tar.gz"
# An item ends with its cited outlets in parentheses: "... in Kuwait City. (Al Jazeera), (Reuters)".
_OUTLETS = re.compile(r"(?:[\s,;]*\(([^()]*)\))+[\s,;]*$")
_OUTLET = re.compile(r"\(([^()]*)\)")
_SENTENCE_END = re.compile(r"[.!?\"'”’)\]]$")


def split_outlets(line: str) -> tuple[str, list[str]]:
    """(item text, cited outlets) of one portal line."""
    found = _OUTLETS.search(line)
    if found is None:
        return line.strip(), []
    return line[: found.start()].strip(), [o.strip() for o in _OUTLET.findall(found.group(0)) if o.strip()]


def is_topic_header(line: str) -> bool:
    """A short line that is not a sentence (a Wikipedia article title) groups the items after it."""
    text, outlets = split_outlets(line)
    return len(text) < 120 and not _SENTENCE_END.search(text) and not (outlets and len(text) > 60)


def parse_current_events_day(document: dict[str, object], where: str) -> Iterator[Article]:
    """The news items of one day's YAML document, with section and topic header."""
    date = str(document.get("Date", ""))
    payload = document.get("Intelligence_Payload")
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", date) or not isinstance(payload, dict):
        raise DataError(f"{where}: expected Date (YYYY-MM-DD) and Intelligence_Payload")
    number = 0
    for section, lines in payload.items():
        header: str | None = None
        for line in lines if isinstance(lines, list) else []:
            if not isinstance(line, str) or not line.strip():
                continue
            if is_topic_header(line):
                header = line.strip()
                continue
            text, outlets = split_outlets(line)
            number += 1
            yield Article(
                id=f"wce:{date}:{number:03d}",
                title=None,
                text=text,
                corpus="wikinews",
                split=date[:4],
                date=date,
                section=str(section),
                header=header,
                outlets=outlets,
            )


def load_current_events(data_dir: Path) -> list[Article]:
    """Wikipedia Portal:Current events 2010-2018, one Article per news item, in date order."""
    import yaml  # the training extras carry it; the serving install does not need it

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    articles: list[Article] = []
    with _open_tar(data_dir / CURRENT_EVENTS_ARCHIVE) as tar:
        for name, payload in _members(tar):
            if not name.endswith(".yaml"):
                continue
            try:
                document = yaml.load(payload.decode("utf-8"), Loader=loader)
            except yaml.YAMLError as exc:
                raise DataError(f"{name}: not valid YAML ({exc})") from None
            articles.extend(parse_current_events_day(document, name))
    if not articles:
        raise DataError(f"{data_dir / CURRENT_EVENTS_ARCHIVE}: no news items found in the archive")
    return sorted(articles, key=lambda a: a.id)


ALLSIDES_ARCHIVE = "allsides-2016-2018/allsides-2016-2018.jsonl.gz"


def load_allsides(data_dir: Path) -> list[Article]:
    """Full-length US and international articles of 2016-2018 (AllSides), unlabelled, in date order."""
    import gzip
    import json

    path = _require(data_dir / ALLSIDES_ARCHIVE)
    articles = []
    try:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, start=1):
                try:
                    row = json.loads(line)
                    date = str(row["date"])
                    articles.append(
                        Article(
                            id=str(row["id"]),
                            title=row.get("title"),
                            text=str(row["text"]),
                            url=row.get("url"),
                            corpus="allsides",
                            split=date[:4],
                            date=date,
                            outlet=row.get("source"),
                            tag=row.get("topic"),  # AllSides' topic tag (`category` is AG News's)
                        )
                    )
                except (json.JSONDecodeError, KeyError, TypeError) as exc:
                    raise DataError(
                        f"{path}:{line_no}: expected a JSON object with id, date, text ({exc})"
                    ) from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read the archive ({exc})") from None
    if not articles:
        raise DataError(f"{path}: no articles")
    return sorted(articles, key=lambda a: (str(a.get("date")), a.id))
