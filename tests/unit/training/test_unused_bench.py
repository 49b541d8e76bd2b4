"""training.bench.unused: a bundle on the BBC and Reuters articles that no split uses."""

import json
from pathlib import Path

import numpy as np
import pytest

from stream.scoring.articles import Article, write_articles
from tests.unit import toy_bundle
from tests.unit.toy_bundle import text
from training.bench import unused
from training.bench.unused import main, summary, unused_violent, used_ids

pytestmark = pytest.mark.unit

HIGH, LOW = text(*[990] * 14), text(*[5] * 14)


def _prepared(data: Path, ids: list[str]) -> None:
    (data / "terrorism").mkdir(parents=True)
    for i, split in enumerate(unused.SPLITS):
        write_articles(data / split, [Article(id=ids[i % len(ids)], title="t", text=LOW)])


def test_only_articles_outside_every_split_whose_headline_or_lead_names_violence_are_kept(
    tmp_path: Path,
) -> None:
    _prepared(tmp_path, ["bbc:a", "bbc:b", "reuters:c"])
    used = used_ids(tmp_path)
    assert used == {"bbc:a", "bbc:b", "reuters:c"}
    articles = [
        Article(id="bbc:a", title="Bomb in the square", text=LOW),  # used by a split
        Article(id="bbc:d", title="Budget talks resume", text="Ministers met again on the budget today."),
        Article(id="bbc:e", title="Budget talks resume", text="A bomb went off near the ministry today."),
        Article(id="bbc:f", title="Gunmen seize a town hall", text=LOW),
    ]
    assert [a.id for a in unused_violent(articles, used)] == ["bbc:e", "bbc:f"]


def test_the_summary_counts_alerts_at_the_threshold_and_lists_the_highest_first() -> None:
    articles = [Article(id=f"x{i}", title=f"t{i}", text="one two three") for i in range(4)]
    scores = np.asarray([0.2, 0.9, 0.5, 0.49], dtype=np.float32)
    got = summary(articles, scores, threshold=0.5, top=3)
    assert (got["articles"], got["alerts"], got["median_words"]) == (4, 2, 3.0)
    assert [t["id"] for t in got["top"]] == ["x1", "x2", "x3"]


def test_main_scores_each_corpus_through_the_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _prepared(tmp_path / "data", ["bbc:used"])
    bbc = [
        Article(id="bbc:used", title="Bomb kills 3", text=HIGH),
        Article(id="bbc:calm", title="Attack on the budget", text=LOW),
        Article(id="bbc:alarming", title="Blast at a market", text=HIGH),
    ]
    monkeypatch.setattr(unused, "CORPORA", {"bbc": lambda _: bbc, "reuters": lambda _: []})
    bundle = toy_bundle.build(tmp_path / "b")
    argv = ["--bundle", str(bundle), "--data", str(tmp_path / "data"), "--datasets", str(tmp_path)]
    assert main([*argv, "--out", str(tmp_path / "out.json")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result == json.loads((tmp_path / "out.json").read_text())
    assert (result["bbc"]["articles"], result["bbc"]["alerts"]) == (2, 1)
    assert [t["id"] for t in result["bbc"]["top"]] == ["bbc:alarming", "bbc:calm"]
    assert result["reuters"] == {"articles": 0, "median_words": None, "alerts": 0, "top": []}


def test_a_missing_bundle_is_an_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--bundle", str(tmp_path / "nothing"), "--datasets", str(tmp_path)]) == 2
    assert "no such bundle folder" in capsys.readouterr().err
