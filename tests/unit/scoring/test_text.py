"""Cleaning, on real articles from each corpus and on the edge cases the rules exist for."""

from pathlib import Path

import pytest

from stream.scoring.text import article_text, clean
from training.data import corpora


@pytest.fixture(scope="module")
def by_id(datasets_dir: Path) -> dict[str, corpora.Article]:
    articles = [
        *corpora.load_muc(datasets_dir),
        *corpora.load_ag_news(datasets_dir),
        *corpora.load_bbc(datasets_dir),
        *corpora.load_reuters(datasets_dir),
    ]
    return {a.id: a for a in articles}


def test_muc_dateline_source_tags_and_case_are_removed(by_id: dict[str, corpora.Article]) -> None:
    raw = by_id["muc:DEV-MUC3-0001"].text
    assert raw.startswith("SAN SALVADOR, 3 JAN 90 -- [REPORT] [ARMED FORCES PRESS COMMITTEE,")
    cleaned = clean(raw)
    assert cleaned.startswith("the arce battalion command has reported that about 50 peasants")
    assert "[text]" not in cleaned
    assert "coprefa" not in cleaned
    assert "3 jan 90" not in cleaned
    assert cleaned == cleaned.lower()
    assert "  " not in cleaned
    assert "\n" not in cleaned


def test_muc_quoted_dispatch_loses_both_datelines(by_id: dict[str, corpora.Article]) -> None:
    raw = by_id["muc:DEV-MUC3-0839"].text
    assert raw.startswith("ASUNCION (PARAGUAY), 22 NOV 89 (EL DIARIO) -- [TEXT] LIMA, 21 NOV 89 --")
    assert clean(raw).startswith("newspaper expreso today reported")


def test_muc_transcription_markers_go_acronyms_stay(by_id: dict[str, corpora.Article]) -> None:
    raw = by_id["muc:TST3-MUC4-0001"].text
    assert "[CONTINUED]" in raw
    cleaned = clean(raw)
    assert "[continued]" not in cleaned
    assert "[handal]" in cleaned


def test_reuters_dateline_and_trailer(by_id: dict[str, corpora.Article]) -> None:
    article = by_id["reuters:1"]
    assert article.text.rstrip().endswith("Reuter\n&#3;")
    text = article_text(article.title, article.text)
    assert text.startswith("bahia cocoa review. showers continued throughout the week")
    assert not text.endswith("reuter")
    assert clean("NEW YORK, March 3 - Shares of ACME rose 5 pct.\n Reuter") == "shares of acme rose 5 pct."


def test_ag_news_entities_prefixes_and_agency_suffix(by_id: dict[str, corpora.Article]) -> None:
    article = by_id["ag:2"]
    assert "#36;10 million" in article.text
    assert article.text.startswith("SPACE.com - TORONTO, Canada --")
    assert article.title.endswith("(SPACE.com)")
    text = article_text(article.title, article.text)
    assert text.startswith(
        "the race is on: second private team sets launch date for human spaceflight. a second"
    )
    assert "$10 million" in text
    assert (
        clean("AP - A company founded by a chemistry researcher")
        == "a company founded by a chemistry researcher"
    )
    assert clean("BAGHDAD (Reuters) - A car bomb exploded") == "a car bomb exploded"


def test_bbc_headline_joins_body_and_non_utf8_file_reads(by_id: dict[str, corpora.Article]) -> None:
    article = by_id["bbc:business/001"]
    text = article_text(article.title, article.text)
    assert text.startswith("ad sales boost time warner profit. quarterly profits at us media giant")
    assert "£600m" in text
    bbc = [a for a in by_id.values() if a.id.startswith("bbc:")]
    assert len(bbc) == 2225
    assert all(clean(a.text) for a in bbc)


def test_all_caps_sentences_with_dashes_are_not_taken_for_datelines() -> None:
    assert clean("A CAR BOMB -- WHICH WAS PLANTED BY TERRORISTS -- EXPLODED") == (
        "a car bomb -- which was planted by terrorists -- exploded"
    )


def test_email_phone_and_url_are_masked_but_numbers_stay() -> None:
    text = clean(
        "Call +44 20 7946 0958 or (212) 555-1234, mail tips@example.org, see https://x.org/a. "
        "Between 1989-1990 sales rose 1,750 dlrs to 12.5 mln; 15 killed."
    )
    assert "[phone]" in text
    assert "7946" not in text
    assert "555-1234" not in text
    assert "[email]" in text
    assert "example.org" not in text
    assert "[url]" in text
    assert "1989-1990" in text
    assert "1,750" in text
    assert "12.5" in text
    assert "15 killed" in text


def test_special_characters_and_whitespace() -> None:
    assert clean("Bombs\u00a0exploded\t\t**in** Lima\x07 \u2022 today!!") == "bombs exploded in lima today!!"
    assert clean("Caf\u00e9 &amp; &lt;bar&gt;") == "café & bar"


def test_empty_and_boilerplate_only_texts_clean_to_nothing() -> None:
    assert clean("   ") == ""
    assert clean("[TEXT] [PASSAGE OMITTED]") == ""
    assert article_text(None, "") == ""
    assert article_text("Title only", "") == "title only"
