"""training.bench.heads: document heads refitted on one scoring of a bundle's validation windows."""

import json
from pathlib import Path

import numpy as np
import pytest

from stream.scoring.articles import Article, write_articles
from stream.scoring.bundle import DocHead, LongText, load_bundle
from stream.scoring.encoding import HEAD_FEATURES
from stream.scoring.scorer import Scorer
from stream.scoring.text import article_text
from tests.unit import toy_bundle
from tests.unit.toy_bundle import text
from training.bench.heads import Variant, Windows, evaluate, main, score_windows, shipped_scores, variants
from training.classifier.doc_head import fit_logistic

pytestmark = pytest.mark.unit


def _windows(seed: int = 0) -> Windows:
    """Two domains that want different heads: "long" reports lead with the attack and its
    negatives recall one further down; "muc" reports carry theirs in any window."""
    rng = np.random.default_rng(seed)
    scores, labels, domains = [], [], []
    for i in range(600):
        domain = "long" if i % 2 else "muc"
        label = int(i % 5 == 0) if domain == "long" else int(i % 4 < 2)
        z = rng.normal(-3.0, 1.0, size=4)
        if label:
            z[0 if domain == "long" else int(rng.integers(0, 4))] = rng.normal(2.5, 1.0)
        elif domain == "long" and i % 3 == 0:
            z[int(rng.integers(1, 4))] = rng.normal(2.5, 1.0)  # last year's bombing, recalled
        scores.append((1.0 / (1.0 + np.exp(-z))).astype(np.float32))
        labels.append(label)
        domains.append(domain)
    return Windows(scores, np.asarray(labels, dtype=np.int64), np.asarray(domains))


def test_a_floor_keeps_a_weight_the_fit_would_drop_and_none_changes_nothing() -> None:
    rng = np.random.default_rng(1)
    lead = rng.normal(0.0, 2.0, size=2000)
    other = rng.normal(0.0, 2.0, size=2000)
    y = (lead + 0.5 * other + rng.normal(0.0, 1.0, size=2000) > 0).astype(np.int64)
    x = np.stack([lead, -other], axis=1)  # unconstrained, the second weight would be negative
    free, free_bias = fit_logistic(x, y)
    assert free[1] == pytest.approx(0.0, abs=1e-8)
    same, same_bias = fit_logistic(x, y, floors=[0.0, 0.0])
    np.testing.assert_allclose(same, free, atol=1e-9)
    assert same_bias == pytest.approx(free_bias, abs=1e-9)
    kept, _ = fit_logistic(x, y, floors=[0.0, 0.3])
    assert kept[1] == pytest.approx(0.3, abs=1e-6)
    with pytest.raises(ValueError, match="one non-negative bound per feature"):
        fit_logistic(x, y, floors=[0.0, -0.1])
    with pytest.raises(ValueError, match="one non-negative bound per feature"):
        fit_logistic(x, y, floors=[0.0])


def test_where_the_weights_are_fitted_decides_which_domain_the_head_serves() -> None:
    windows = _windows()
    guide = evaluate(windows, Variant(4, 0.0, ("long",)), ["long"])
    everything = evaluate(windows, Variant(4, 0.0, ("long", "muc")), ["long"])
    floored = evaluate(windows, Variant(4, 0.5, ("long",)), ["long"])
    # Fitted on the lead-first domain, the head trusts the lead over the best window...
    assert guide["weights"]["lead"] > guide["weights"]["max"]
    assert floored["weights"]["max"] >= 0.5 - 1e-6
    # ...and serves that domain better than a head that must also serve the other.
    assert guide["domains"]["long"]["auprc"] > everything["domains"]["long"]["auprc"]
    assert everything["domains"]["muc"]["auroc"] > guide["domains"]["muc"]["auroc"]
    assert floored["domains"]["muc"]["auroc"] > guide["domains"]["muc"]["auroc"]
    for row in (guide, everything, floored):
        assert set(row["domains"]) == {"long", "muc"}
        assert row["domains"]["long"]["positives"] == int(windows.labels[windows.domains == "long"].sum())
        assert 0.0 < row["mean_auprc_all_domains"] <= 1.0


def test_a_variant_reads_only_its_windows() -> None:
    windows = _windows()
    one = evaluate(windows, Variant(1, 0.0, ("muc",)), ["muc"])
    four = evaluate(windows, Variant(4, 0.0, ("muc",)), ["muc"])
    # MUC's incidents sit in any of four windows: the lead alone misses three in four of them.
    assert four["domains"]["muc"]["auroc"] > one["domains"]["muc"]["auroc"] + 0.1
    assert [v.name for v in variants([2, 3], [0.0], [("a", "b")])] == [
        "windows=2 max>=0 fit=a+b",
        "windows=3 max>=0 fit=a+b",
    ]


def test_the_command_scores_a_bundles_windows_and_prints_every_variant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    head = DocHead(features=list(HEAD_FEATURES[:3]), weights=[1.0, 0.5, 0.0], bias=0.0)
    bundle = toy_bundle.build(
        tmp_path / "b", long_text=LongText(strategy="doc_head", stride=10, max_windows=2, head=head)
    )
    low, high = [5] * 14, [990] * 14
    articles = [
        Article(
            id=f"a{i}",
            title=None,
            text=text(*(high if i % 3 == 0 else low), *low, *low, *low),
            label=int(i % 3 == 0),
            domain=domain,
        )
        for i, domain in enumerate(["long", "muc"] * 12)
    ]
    data = tmp_path / "data"
    data.mkdir()
    write_articles(data / "val.jsonl", articles)

    scored = score_windows(load_bundle(bundle), data / "val.jsonl", max_windows=4)
    assert [len(w) for w in scored.scores] == [4] * len(articles)  # more than the bundle's own 2
    assert scored.scores[0][0] > 0.99 > 0.01 > scored.scores[1][0]  # a report's lead, a calm one's

    out = tmp_path / "heads.json"
    assert (
        main(
            [
                "--bundle",
                str(bundle),
                "--data",
                str(data),
                "--windows",
                "1,3",
                "--max-floors",
                "0,0.2",
                "--fit-on",
                "long,long+muc",
                "--threshold-domains",
                "long",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text())
    assert len(printed["variants"]) == 2 * 2 * 2
    assert printed["shipped"]["windows"] == 2
    assert [row["windows"] for row in printed["best_window"]] == [1, 3]
    assert printed["shipped"]["threshold"] == 0.5
    assert printed["validation_articles"] == len(articles)


def test_a_missing_bundle_is_an_error_message_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--bundle", str(tmp_path / "nothing"), "--data", str(tmp_path)]) == 2
    assert "no such bundle folder" in capsys.readouterr().err


def test_the_shipped_row_scores_as_the_scorer_does_lead_first_included(tmp_path: Path) -> None:
    head = DocHead(features=list(HEAD_FEATURES[:3]), weights=[1.0, 0.5, 0.5], bias=0.0)
    long_text = LongText(strategy="doc_head", stride=10, max_windows=3, head=head, read_more_above=0.3)
    bundle = load_bundle(toy_bundle.build(tmp_path / "b", long_text=long_text))
    low, high = [5] * 14, [990] * 14
    bodies = [(*low, *high, *high), (*high, *low, *low), (*low, *low), tuple(low[:5]), (*high,)]
    articles = [
        Article(id=f"a{i}", title=None, text=text(*body), label=i % 2, domain="long")
        for i, body in enumerate(bodies)
    ]
    write_articles(tmp_path / "val.jsonl", articles)

    scores, by_lead = shipped_scores(bundle, score_windows(bundle, tmp_path / "val.jsonl"))
    scorer = Scorer(bundle, providers="cpu")
    np.testing.assert_allclose(
        scores, scorer.score([article_text(a.title, a.text) for a in articles]).scores, atol=1e-6
    )
    assert by_lead == 2  # the calm leads of more than one window
