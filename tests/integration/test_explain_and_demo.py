"""Explained alerts and the one-command demo, with a real tiny bundle and the embedded broker."""

import json
import os
import re
from pathlib import Path

import pytest

from stream.scoring.articles import read_articles
from stream.scoring.bundle import load_bundle
from stream.scoring.explain import Explainer
from stream.scoring.scorer import Scorer
from stream.scoring.text import article_text, clean
from tests.cli_run import run_cli


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def test_explanations_are_sentences_of_the_article_and_add_up(tiny_bundle: Path, sample_data: Path) -> None:
    scorer = Scorer(load_bundle(tiny_bundle))
    explain = Explainer(scorer)
    long_reports = [a for a in read_articles(sample_data / "test.jsonl") if a.get("corpus") == "muc"][:4]
    assert long_reports
    for article in long_reports:
        cleaned = article_text(article.title, article.text)
        parts = explain(article.title, article.text, cleaned)
        assert 1 <= len(parts) <= 3
        source = _norm(f"{article.title or ''} {article.text}")
        for part in parts:
            assert part.sentence in source  # the article's own words, as it has them
        ranks = [p.contribution + p.alone for p in parts]
        assert ranks == sorted(ranks, reverse=True)
        assert all(0.0 <= p.alone <= 1.0 for p in parts)
        # The contribution is exactly the drop of the best window's score without the sentence.
        low, high = explain.best_window(cleaned)
        window = cleaned[low:high]
        top = clean(parts[0].sentence)
        assert top[: len(top) // 2] in cleaned
        at = cleaned.find(top)
        without = " ".join(
            (cleaned[low : max(low, at)] + " " + cleaned[min(high, at + len(top)) : high]).split()
        )
        base, dropped = scorer.score([window, without]).scores
        assert float(base - dropped) == pytest.approx(parts[0].contribution, abs=1e-3)


def _tansu_pids() -> set[int]:
    pids = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "cmdline").read_bytes().split(b"\0")[0].endswith(b"tansu"):
                    pids.add(int(proc.name))
            except OSError:
                continue
    return pids


def test_demo_runs_to_its_summary_agrees_with_evaluate_and_leaves_nothing(
    tiny_bundle: Path, sample_data: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "stream.jsonl").write_text((sample_data.parent / "stream.jsonl").read_text())
    before = _tansu_pids()
    result = run_cli(
        "demo", "--bundle", str(tiny_bundle), "--data", str(data), "--limit", "40",
        "--timeout", "180", timeout=400, env={"COLUMNS": "120"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "summary" in result.stdout
    assert "articles scored   40" in result.stdout
    # Without --rate the replay runs at a share of the capacity measured first.
    measured = re.search(r"managed (\d+) articles/s here.*?replaying at (\d+)/s", result.stdout, re.S)
    assert measured, result.stdout[:2000]
    capacity, rate = map(int, measured.groups())
    assert abs(rate - 0.6 * capacity) <= 1
    assert f"(replayed at {rate}/s)" in result.stdout
    assert _tansu_pids() <= before  # the demo's broker is gone
    assert not [p for p in Path("/proc").iterdir() if p.name.isdigit() and _is_demo_scorer(p)]

    labeled = re.search(r"precision (\d\.\d{4}), recall (\d\.\d{4}), F1 (\d\.\d{4})", result.stdout)
    assert labeled, result.stdout[-2000:]
    evaluated = run_cli(
        "evaluate", "--bundle", str(tiny_bundle), "--data", str(data / "demo-feed.jsonl"), "--json"
    )
    assert evaluated.returncode == 0, evaluated.stderr
    m = json.loads(evaluated.stdout)["labeled"]
    assert (f"{m['precision']:.4f}", f"{m['recall']:.4f}", f"{m['f1']:.4f}") == labeled.groups()


def _is_demo_scorer(proc: Path) -> bool:
    try:
        cmdline = (proc / "cmdline").read_bytes()
    except OSError:
        return False
    return b"serve" in cmdline and b"--group-id\0demo-" in cmdline and int(proc.name) != os.getpid()
