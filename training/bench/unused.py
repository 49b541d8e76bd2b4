"""A bundle on full articles nobody trained on: BBC 2004-05 and Reuters 1987, outside every split.

`python -m training.bench.unused --bundle exports/terrorism-v1 --data data --datasets ../shared/datasets`
prints JSON.

`wirewatch data prepare` draws a few hundred BBC and Reuters articles as ordinary news and leaves
the rest unread. Of those, the ones whose headline or lead names violence (the hard stratum of
the labelling audit) are mostly what an analyst does not want paged for, from an era no split
covers: British politics on anti-terror law and detainees, threats and hoaxes, crime, accidents,
the 1987 tanker war between states. A few are attack reports. They carry no labels, so this
prints how many alert and the highest-scored titles, to be read by hand against
docs/labeling-guide.md. It picks nothing: no threshold, no model, no head.
"""

import argparse
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stream.errors import WirewatchError
from stream.scoring.articles import Article, read_articles
from stream.scoring.bundle import load_bundle
from stream.scoring.evaluate import score_articles
from stream.scoring.scorer import Scorer
from training.bench import print_result
from training.data.article_labels import names_violence
from training.data.corpora import load_bbc, load_reuters

CORPORA: dict[str, Callable[[Path], list[Article]]] = {"bbc": load_bbc, "reuters": load_reuters}
SPLITS = ("terrorism/train.jsonl", "terrorism/val.jsonl", "terrorism/test.jsonl", "stream.jsonl")


def used_ids(data: Path) -> set[str]:
    """Every article id of the prepared splits and the stream."""
    return {a.id for split in SPLITS for a in read_articles(data / split)}


def unused_violent(articles: Iterable[Article], used: set[str]) -> list[Article]:
    """The articles no split uses whose headline or lead names violence."""
    return [a for a in articles if a.id not in used and names_violence(a.title, a.text)]


def summary(articles: Sequence[Article], scores: np.ndarray, threshold: float, top: int) -> dict[str, Any]:
    words = [len(a.text.split()) for a in articles]
    order = np.argsort(-scores, kind="stable")[:top]
    return {
        "articles": len(articles),
        "median_words": float(np.median(words)) if words else None,
        "alerts": int((scores >= threshold).sum()),
        "top": [
            {"score": round(float(scores[i]), 3), "id": articles[i].id, "title": articles[i].title}
            for i in order
        ],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.bench.unused",
        description="Score the BBC and Reuters articles no split uses whose headline or lead names "
        "violence; prints JSON (alerts and the top titles, to read by hand).",
    )
    parser.add_argument("--bundle", type=Path, required=True, help="a bundle folder")
    parser.add_argument("--data", type=Path, default=Path("data"), help="the prepared data folder")
    parser.add_argument("--datasets", type=Path, required=True, help="the raw corpora (../shared/datasets)")
    parser.add_argument("--top", type=int, default=15, help="highest-scored titles listed per corpus")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    try:
        scorer = Scorer(load_bundle(args.bundle))
        used = used_ids(args.data)
        result: dict[str, Any] = {"bundle": str(args.bundle), "threshold": round(scorer.threshold, 4)}
        for name, load in CORPORA.items():
            articles = unused_violent(load(args.datasets), used)
            scores = score_articles(scorer, articles).scores
            result[name] = summary(articles, scores, scorer.threshold, args.top)
    except WirewatchError as exc:  # a missing bundle, split or corpus: say which, without a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_result(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
