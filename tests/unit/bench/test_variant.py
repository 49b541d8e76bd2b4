"""bench.variant: a bundle copy that reads long articles another way and still passes its own checks."""

import json
from pathlib import Path

import pytest

from bench.variant import make_variant
from stream.scoring.bundle import DocHead, LongText, load_bundle
from stream.scoring.canary import check, write_canary
from stream.scoring.scorer import Scorer
from tests.unit import toy_bundle
from tests.unit.toy_bundle import text
from training.ship.publish import seal

pytestmark = pytest.mark.unit

# 40 tokens: windows of 14 body tokens every 10, so four windows with different scores.
LONG = text(*range(1, 41))


def _doc_head_bundle(folder: Path) -> Path:
    head = DocHead(features=["lead", "max", "mean"], weights=[1.0, 0.5, 0.5], bias=-0.2)
    toy_bundle.build(folder, long_text=LongText(strategy="doc_head", stride=10, max_windows=2, head=head))
    bundle = load_bundle(folder)
    texts = [LONG, text(3, 4), text(9)]
    bundle.manifest.canary = write_canary(
        folder, texts, Scorer(bundle, providers="cpu").score(texts).scores.tolist()
    )
    seal(folder, bundle.manifest)
    return folder


def test_the_copy_reads_articles_as_chunk_max_and_its_canary_passes(tmp_path: Path) -> None:
    source = _doc_head_bundle(tmp_path / "source")
    out = make_variant(source, tmp_path / "copy", "chunk_max", 4)

    copy = load_bundle(out)
    assert copy.manifest.long_text == LongText(strategy="chunk_max", stride=10, max_windows=4)
    assert copy.manifest.threshold == load_bundle(source).manifest.threshold
    scorer = Scorer(copy, providers="cpu")
    assert check(copy, lambda texts: scorer.score(texts).scores).kind == "canary"
    windows = scorer.encoder.encode([LONG])
    assert len(windows.windows) == 4
    assert scorer.score([LONG]).scores[0] == pytest.approx(
        float(scorer.window_scores(windows).max()), abs=1e-6
    )
    canary = [json.loads(line)["score"] for line in (out / "canary.jsonl").read_text().splitlines()]
    original = [json.loads(line)["score"] for line in (source / "canary.jsonl").read_text().splitlines()]
    assert canary[0] != pytest.approx(original[0])  # the long text's score follows the new reading


def test_an_existing_folder_is_refused(tmp_path: Path) -> None:
    source = _doc_head_bundle(tmp_path / "source")
    (tmp_path / "copy").mkdir()
    with pytest.raises(SystemExit, match="exists"):
        make_variant(source, tmp_path / "copy", "chunk_max", 8)
