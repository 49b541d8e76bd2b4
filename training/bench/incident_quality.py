"""How well alerts are grouped into incidents, on modern news with known events.

`python -m training.bench.incident_quality --embedder exports/embedder` (or `make incident-quality`)
prints JSON. The data: Wikipedia Portal:Current events items (``load_current_events``); the
portal files the items about one event under one topic header ("2017 Barcelona attacks"). Two
items are the **same incident** when they share a header and their dates are at most
``TRUTH_DAYS`` apart (a header such as "Syrian Civil War" runs for years: items months apart are
different incidents). Items without a header are incidents of their own. Pairs are counted over
every pair of items at most ``TRUTH_DAYS`` apart, the pairs a time-windowed grouper can decide:
pairwise precision is the share of pairs grouped together that are the same incident, recall the
share of same-incident pairs grouped together.

The grouping is stream.subscribers.incidents.Grouper itself, fed the items in date order as alerts. The
similarity threshold and window are chosen on 2015-2016 only (best F0.5: merging two different
attacks hides the second one, which is worse than paging twice for one), then 2017-2018 is
measured once. Reported for the "Armed conflicts and attacks" section (what alerts look like:
many reports of different attacks that read alike; ``--all-sections`` adds every section), for
the embedding alone, the embedding beside the bag of names at three weights (the weight is chosen on
the tuning years too), and a TF-IDF cosine baseline fitted on the tuning years, all grouped by the
same code. Two truths: "event headers" (headers whose items span at most EVENT_SPAN_DAYS; items
under running topics such as a civil war are left out of the pairs) and "any header"
(everything, running topics counted as one incident per TRUTH_DAYS).
"""

import argparse
import hashlib
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
from tqdm.auto import tqdm

from stream.arguments import add_data_dir
from stream.schemas import Alert, ModelRef, SourceRef
from stream.scoring.articles import Article
from stream.scoring.embedder import Embedder
from stream.subscribers.incidents import Grouper
from stream.subscribers.lexical import combine, name_vectors, names
from training.bench import print_result
from training.data.corpora import load_current_events

TRUTH_DAYS = 2
EVENT_SPAN_DAYS = 14
EVENT_HEADERS = "event headers"
ANY_HEADER = "any header"
TUNE_YEARS = ("2015", "2016")
TEST_YEARS = ("2017", "2018")
ATTACKS = "Armed conflicts and attacks"
THRESHOLDS = [round(t, 3) for t in np.arange(0.10, 0.951, 0.025)]
WINDOWS_HOURS = (24.0, 48.0, 72.0)
BETA = 0.5
NAME_WEIGHTS = (0.2, 0.3, 0.5)  # share of the embedding in the similarity; the best on the tuning years ships

Embed = Callable[[Sequence[str]], npt.NDArray[np.float32]]


@dataclass
class Scored:
    precision: float
    recall: float
    f_beta: float
    f1: float
    predicted_pairs: int
    true_pairs: int


def _day(article: Article) -> int:
    return datetime.fromisoformat(str(article.get("date"))).toordinal()


def candidate_pairs(days: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Every pair (i < j) of items at most TRUTH_DAYS apart; items must be sorted by day."""
    left, right = [], []
    start = 0
    for j in range(len(days)):
        while days[j] - days[start] > TRUTH_DAYS:
            start += 1
        if j > start:
            left.append(np.arange(start, j))
            right.append(np.full(j - start, j))
    if not left:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    return np.concatenate(left), np.concatenate(right)


def pairwise(
    predicted: Sequence[str],
    truth: Sequence[str | None],
    pairs: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]],
) -> Scored:
    i, j = pairs
    pred = np.asarray(predicted, dtype=object)
    gold = np.asarray(truth, dtype=object)
    same_pred = pred[i] == pred[j]
    same_gold = (gold[i] == gold[j]) & (gold[i] != None)  # noqa: E711 (elementwise)
    tp = int(np.sum(same_pred & same_gold))
    n_pred, n_gold = int(same_pred.sum()), int(same_gold.sum())
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    b2 = BETA * BETA
    fb = (1 + b2) * p * r / (b2 * p + r) if p + r else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return Scored(round(p, 4), round(r, 4), round(fb, 4), round(f1, 4), n_pred, n_gold)


def _alert(article: Article) -> Alert:
    when = datetime.fromisoformat(str(article.get("date"))).replace(tzinfo=UTC)
    return Alert(
        id=article.id,
        score=1.0,
        is_alert=True,
        threshold=0.5,
        model=ModelRef(name="quality", version="0"),
        scored_at=when,
        source=SourceRef(topic="wikinews", partition=0, offset=0),
        title=None,
        snippet=article.text,
        publisher=(article.get("outlets") or [None])[0],
        url=None,
        published_at=when.isoformat(),
    )


def group(
    alerts: list[Alert], vectors: npt.NDArray[np.float32], threshold: float, window_hours: float
) -> list[str]:
    grouper = Grouper(threshold=threshold, window=timedelta(hours=window_hours))
    ids = []
    for alert, vector in zip(alerts, vectors, strict=True):
        ids.append(grouper.assign(alert, vector).alert.incident_id)
        grouper.expire()
    return ids


Pairs = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]


@dataclass
class Dataset:
    articles: list[Article]
    alerts: list[Alert]
    truths: dict[str, tuple[list[str | None], Pairs]]  # definition -> (labels, pairs counted)

    @classmethod
    def of(cls, articles: list[Article], event_headers: set[str]) -> "Dataset":
        articles = sorted(articles, key=lambda a: a.id)  # wce:<date>:<number>: date, then portal order
        days = np.asarray([_day(a) for a in articles], dtype=np.int64)
        headers: list[str | None] = [a.get("header") for a in articles]
        pairs = candidate_pairs(days)
        # Event headers: items under a long-running topic header are left out of the pairs, since
        # whether two of them are one incident is not known; headerless items stay, as singletons.
        known = np.asarray([h is None or h in event_headers for h in headers])
        keep = known[pairs[0]] & known[pairs[1]]
        return cls(
            articles,
            [_alert(a) for a in articles],
            {
                EVENT_HEADERS: (headers, (pairs[0][keep], pairs[1][keep])),
                ANY_HEADER: (headers, pairs),
            },
        )

    def score(self, predicted: list[str]) -> dict[str, Scored]:
        return {name: pairwise(predicted, labels, pairs) for name, (labels, pairs) in self.truths.items()}


# Keys a scorer could partition alerts by, so that several grouping stages each hold a share of
# the incidents: if same-incident reports rarely share the key, partitioned grouping splits them.
CONTENT_KEYS: dict[str, Callable[[str], str | None]] = {
    "first name": lambda text: next(iter(names(text)), None),
    "commonest name": lambda text: next((n for n, _ in Counter(names(text)).most_common(1)), None),
}


def key_agreement(data: Dataset, key: Callable[[str], str | None]) -> float:
    """The share of same-incident pairs (event headers) whose two items have the same key: the
    recall of "grouped by key" (an item without a key shares it with nobody)."""
    keys = [key(a.text) or f"\0{k}" for k, a in enumerate(data.articles)]
    return data.score(keys)[EVENT_HEADERS].recall


def tune(data: Dataset, vectors: npt.NDArray[np.float32]) -> dict[str, tuple[float, float, Scored]]:
    """Per truth definition: the (threshold, window) with the best F-beta, and its scores."""
    best: dict[str, tuple[float, float, Scored]] = {}
    for window in WINDOWS_HOURS:
        for threshold in THRESHOLDS:
            for name, scored in data.score(group(data.alerts, vectors, threshold, window)).items():
                if name not in best or scored.f_beta > best[name][2].f_beta:
                    best[name] = (threshold, window, scored)
    return best


def event_headers_of(articles: list[Article]) -> set[str]:
    """Headers of events, not running topics: all their items within EVENT_SPAN_DAYS."""
    days: dict[str, list[int]] = {}
    for a in articles:
        header = a.get("header")
        if header:
            days.setdefault(header, []).append(_day(a))
    return {h for h, d in days.items() if max(d) - min(d) <= EVENT_SPAN_DAYS}


def embed_cached(embedder: Embedder, texts: list[str], cache: Path) -> npt.NDArray[np.float32]:
    key = hashlib.sha256((embedder.manifest.files["model.onnx"] + "\n".join(texts)).encode()).hexdigest()[:16]
    path = cache / f"embeddings-{key}.npy"
    if path.is_file():
        loaded: npt.NDArray[np.float32] = np.load(path)
        return loaded
    chunks = []
    step = 256
    for start in tqdm(range(0, len(texts), step), desc="embedding", unit="x256 items"):
        chunks.append(embedder.embed(texts[start : start + step]))
    vectors = np.concatenate(chunks) if chunks else np.zeros((0, embedder.dim), dtype=np.float32)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def tfidf_vectors(fit_texts: list[str], texts: list[str]) -> npt.NDArray[np.float32]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(sublinear_tf=True, min_df=2, stop_words="english").fit(fit_texts)
    matrix = vectorizer.transform(texts)
    return np.asarray(matrix.toarray(), dtype=np.float32)


def evaluate(
    embedder: Embedder, data_dir: Path, cache: Path, all_sections: bool = False
) -> dict[str, object]:
    started = time.monotonic()
    items = [
        a
        for a in load_current_events(data_dir)
        if a.get("split") in (*TUNE_YEARS, *TEST_YEARS) and (all_sections or a.get("section") == ATTACKS)
    ]
    texts = [a.text for a in items]
    vectors = embed_cached(embedder, texts, cache)
    by_id = {a.id: k for k, a in enumerate(items)}
    results: dict[str, object] = {}
    for scope in (ATTACKS, "all sections") if all_sections else (ATTACKS,):
        chosen = [a for a in items if scope == "all sections" or a.get("section") == scope]
        events = event_headers_of(chosen)
        tune_set = Dataset.of([a for a in chosen if a.get("split") in TUNE_YEARS], events)
        test_set = Dataset.of([a for a in chosen if a.get("split") in TEST_YEARS], events)
        minilm = {
            name: vectors[[by_id[a.id] for a in d.articles]]
            for name, d in (("tune", tune_set), ("test", test_set))
        }
        fit_texts = [a.text for a in tune_set.articles]
        tfidf = {
            "tune": tfidf_vectors(fit_texts, fit_texts),
            "test": tfidf_vectors(fit_texts, [a.text for a in test_set.articles]),
        }
        names = {
            "tune": name_vectors([a.text for a in tune_set.articles]),
            "test": name_vectors([a.text for a in test_set.articles]),
        }
        systems = [(embedder.label, minilm), ("tf-idf cosine (baseline)", tfidf)]
        for weight in NAME_WEIGHTS:
            hybrid = {k: combine(minilm[k], names[k], weight) for k in ("tune", "test")}
            systems.append((f"{embedder.label} + names (weight {weight})", hybrid))
        by_definition: dict[str, object] = {}
        for system, vecs in systems:
            for definition, (threshold, window, tuned) in tune(tune_set, vecs["tune"]).items():
                predicted = group(test_set.alerts, vecs["test"], threshold, window)
                tested = test_set.score(predicted)[definition]
                entry = by_definition.setdefault(
                    definition, {"test_true_pairs": tested.true_pairs, "systems": {}}
                )
                entry["systems"][system] = {  # type: ignore[index]
                    "threshold": threshold,
                    "window_hours": window,
                    "tune_2015_2016": tuned.__dict__,
                    "test_2017_2018": tested.__dict__,
                    "test_incidents": len(set(predicted)),
                }
        for entry in by_definition.values():
            hybrids = {k: v for k, v in entry["systems"].items() if "+ names" in k}  # type: ignore[index]
            entry["chosen"] = max(hybrids, key=lambda k: hybrids[k]["tune_2015_2016"]["f_beta"])  # type: ignore[index]
        results[scope] = {
            "tune_items": len(tune_set.articles),
            "test_items": len(test_set.articles),
            "event_headers": len(events),
            "same_incident_pairs_sharing_a_content_key_test": {
                name: key_agreement(test_set, key) for name, key in CONTENT_KEYS.items()
            },
            "definitions": by_definition,
        }
    return {
        "data": "Wikipedia current events, tune on 2015-2016, test 2017-2018",
        "same_incident": {
            EVENT_HEADERS: f"same event header (one whose items span at most {EVENT_SPAN_DAYS} days); pairs at "
            f"most {TRUTH_DAYS} days apart among items under event headers or none",
            ANY_HEADER: f"same topic header and at most {TRUTH_DAYS} days apart (running topics such as a civil "
            f"war count as one incident per two days); every pair at most {TRUTH_DAYS} days apart",
        },
        "chosen_by": f"best F{BETA} on the tuning years over thresholds {THRESHOLDS[0]}-{THRESHOLDS[-1]} and windows {list(WINDOWS_HOURS)} h",
        "embedder": str(embedder.path),
        "results": results,
        "seconds": round(time.monotonic() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.bench.incident_quality", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--embedder", type=Path, default=Path("exports/embedder"), help="embedder folder")
    add_data_dir(parser)
    parser.add_argument("--cache", type=Path, default=Path("runs/incident-quality"), help="embedding cache")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument(
        "--all-sections", action="store_true", help="also every section of the portal (5x the items to embed)"
    )
    args = parser.parse_args(argv)
    result = evaluate(Embedder(args.embedder), args.data_dir, args.cache, args.all_sections)
    print_result(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
