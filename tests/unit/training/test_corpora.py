"""Importers, run on small extracts that each test builds from the real archives in ../shared."""

import io
import json
import tarfile
from pathlib import Path

import pytest

from stream.errors import DataError
from training.data import corpora


def _copy_members(src: Path, dst: Path, keep: list[str]) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(src, "r:gz") as tin, tarfile.open(dst, "w:gz") as tout:
        for member in tin:
            if any(member.name.endswith(k) for k in keep):
                handle = tin.extractfile(member)
                assert handle is not None
                tout.addfile(member, io.BytesIO(handle.read()))


def test_muc_extract_labels_come_from_the_answer_keys(datasets_dir: Path, tmp_path: Path) -> None:
    _copy_members(
        datasets_dir / corpora.MUC_ARCHIVE,
        tmp_path / corpora.MUC_ARCHIVE,
        [
            "dev/dev-muc3-0001-0100",
            "dev/key-dev-0001.muc4",
            "tst3/tst3-muc4",
            "tst3/key-tst3.v2",
            "._tst3-muc4",
        ],
    )
    articles = corpora.load_muc(tmp_path)
    assert len(articles) == 200
    assert {a.split for a in articles} == {"dev", "tst3"}
    by_id = {a.id: a for a in articles}
    assert by_id["muc:DEV-MUC3-0001"].label == 1  # two templates: kidnapping and attack
    assert by_id["muc:DEV-MUC3-0002"].label == 0  # template "*"
    assert by_id["muc:DEV-MUC3-0001"].text.startswith("SAN SALVADOR, 3 JAN 90 --")
    assert not by_id["muc:DEV-MUC3-0001"].text.rstrip().endswith("DEV-MUC3-0002")


def test_muc_optional_templates_count_as_relevant() -> None:
    key = (
        "0.  MESSAGE: ID                     DEV-MUC3-0005 (NCCOSC)\n"
        "1.  MESSAGE: TEMPLATE               1 (OPTIONAL)\n"
        "4.  INCIDENT: TYPE                  ATTACK\n\n"
        "0.  MESSAGE: ID                     DEV-MUC3-0006 (NCCOSC)\n"
        "1.  MESSAGE: TEMPLATE               *\n"
    )
    assert corpora.muc_relevance(key) == {"DEV-MUC3-0005": True, "DEV-MUC3-0006": False}


def test_muc_full_archive_matches_the_published_label_file(datasets_dir: Path) -> None:
    articles = corpora.load_muc(datasets_dir)
    reference = {}
    with (datasets_dir / "muc34-terrorism" / "muc34_doc_labels.jsonl").open() as handle:
        for line in handle:
            row = json.loads(line)
            reference[f"muc:{row['doc_id']}"] = (row["split"], row["relevant"])
    assert {a.id: (a.split, a.label) for a in articles} == reference
    assert sum(a.label for a in articles) == 942


def test_ag_news_extract(datasets_dir: Path, tmp_path: Path) -> None:
    lines = (datasets_dir / corpora.AG_NEWS_CSV).read_text(encoding="utf-8").splitlines(keepends=True)
    target = tmp_path / corpora.AG_NEWS_CSV
    target.parent.mkdir(parents=True)
    target.write_text("".join(lines[:40]), encoding="utf-8")
    articles = corpora.load_ag_news(tmp_path)
    assert len(articles) == 40
    assert articles[0].title == "Fears for T N pension after talks"
    assert articles[0].category == "business"
    assert all(a.label is None for a in articles)  # task labels are prepare's business
    assert {a.category for a in articles} <= set(corpora.AG_CLASSES.values())
    assert all("\\" not in a.text for a in articles)


def test_ag_news_malformed_row_names_file_and_line(tmp_path: Path) -> None:
    target = tmp_path / corpora.AG_NEWS_CSV
    target.parent.mkdir(parents=True)
    target.write_text('"3","ok","fine"\n"9","bad class","x"\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"test.csv:2: expected class,title,description"):
        corpora.load_ag_news(tmp_path)


def test_bbc_extract_with_the_one_non_utf8_file(datasets_dir: Path, tmp_path: Path) -> None:
    archive = datasets_dir / corpora.BBC_ARCHIVE
    with tarfile.open(archive, "r:gz") as tar:
        non_utf8 = []
        for member in tar:
            handle = tar.extractfile(member) if member.isfile() else None
            if handle is not None:
                try:
                    handle.read().decode("utf-8")
                except UnicodeDecodeError:
                    non_utf8.append(member.name)
    assert len(non_utf8) == 1
    _copy_members(
        archive,
        tmp_path / corpora.BBC_ARCHIVE,
        ["business/001.txt", "sport/002.txt", "README.TXT", non_utf8[0]],
    )
    articles = corpora.load_bbc(tmp_path)
    assert len(articles) == 3
    assert {a.category for a in articles} >= {"business", "sport"}
    business = next(a for a in articles if a.id == "bbc:business/001")
    assert business.title == "Ad sales boost Time Warner profit"
    assert business.text.startswith("Quarterly profits at US media giant TimeWarner")


def test_reuters_extract_keeps_modapte_documents_only(datasets_dir: Path, tmp_path: Path) -> None:
    sgml = (datasets_dir / corpora.REUTERS_DIR / "reut2-000.sgm").read_text(encoding="latin-1")
    docs = sgml.split("</REUTERS>")[:30]
    folder = tmp_path / corpora.REUTERS_DIR
    folder.mkdir()
    (folder / "reut2-000.sgm").write_text("</REUTERS>".join(docs) + "</REUTERS>", encoding="latin-1")
    articles = corpora.load_reuters(tmp_path)
    modapte = [
        d for d in docs if 'TOPICS="YES"' in d and ('LEWISSPLIT="TRAIN"' in d or 'LEWISSPLIT="TEST"' in d)
    ]
    assert 0 < len(articles) == len(modapte) < 30
    first = articles[0]
    assert first.id == "reuters:1"
    assert first.title == "BAHIA COCOA REVIEW"
    assert first.category == "cocoa"
    assert first.split == "train"


def test_reuters_full_corpus_has_the_published_modapte_counts(datasets_dir: Path) -> None:
    articles = corpora.load_reuters(datasets_dir)
    assert sum(a.split == "train" for a in articles) == 9603
    assert sum(a.split == "test" for a in articles) == 3299


def test_missing_archive_says_where_to_point(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="--data-dir"):
        corpora.load_muc(tmp_path)


def test_current_events_items_sections_headers_and_outlets(datasets_dir: Path, tmp_path: Path) -> None:
    _copy_members(
        datasets_dir / corpora.CURRENT_EVENTS_ARCHIVE,
        tmp_path / corpora.CURRENT_EVENTS_ARCHIVE,
        ["2014-03-03.yaml", "2017-03-10.yaml"],
    )
    articles = corpora.load_current_events(tmp_path)
    by_text = {a.text: a for a in articles}
    assert {a.get("date") for a in articles} == {"2014-03-03", "2017-03-10"}
    assert {a.split for a in articles} == {"2014", "2017"}
    gunmen = next(a for a in articles if a.text.startswith("Young men with guns open fire at a local court"))
    assert gunmen.get("section") == "Armed conflicts and attacks"
    assert gunmen.get("outlets") == ["Associated Press of Pakistan"]
    assert not gunmen.text.endswith(")")
    # Later years list a topic header before its items, in the same list.
    airstrike = next(a for a in articles if a.text.startswith("A Saudi-led coalition airstrike on a market"))
    assert airstrike.get("header") == "Yemeni Civil War (2015–present)"
    assert airstrike.get("outlets") == ["AFP via Daily Mail"]
    assert "Yemeni Civil War (2015–present)" not in by_text  # a header is not an item
    ids = [a.id for a in articles]
    assert len(ids) == len(set(ids))
    assert all(a.label is None for a in articles)  # labels come from the rules, in data prepare


def test_split_outlets_and_topic_headers() -> None:
    text, outlets = corpora.split_outlets("A bomb explodes in Kabul. (BBC) (Reuters via Yahoo!)")
    assert (text, outlets) == ("A bomb explodes in Kabul.", ["BBC", "Reuters via Yahoo!"])
    assert corpora.is_topic_header("2015 Kuwait mosque bombing")
    assert corpora.is_topic_header("Yemeni Civil War (2015–present)")
    assert not corpora.is_topic_header("A bomb explodes in Kabul. (BBC)")
