"""The public one-class anomaly detection protocols `wirewatch bench-ad` runs, as train/val/test tasks.

Each task has normal training articles only (``train``), held-out normal articles for the
false-alarm calibration (``val``, carved out of the normal training part) and a test set whose
label 1 marks an anomaly. The corpora are read by training.data.corpora from the original archives.

- AG News (CVDD and DATE): each class in turn is normal. Only the AG test file ships here, so
  each class is split in half with a fixed seed: one half trains, the other half of every class
  is the test set (the papers train on the 30,000 training articles of the class instead).
- BBC News (NLP-ADBench): entertainment is the anomaly, the other four sections are normal;
  70% of normal trains, 30% is tested together with entertainment articles drawn so that they
  make up CONTAMINATION of the test set; repeated over several seeds.
- Reuters-21578 (CVDD): ModApte split, documents with exactly one topic, the 7 topics below in
  turn normal; train on the normal topic's ModApte-train documents, test on all ModApte-test
  documents of the 7 topics.
"""

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from stream.scoring.articles import Article
from stream.scoring.text import article_text, clean
from training.data import corpora

AG_CLASSES = ("world", "sports", "business", "scitech")
REUTERS_CLASSES = ("earn", "acq", "crude", "trade", "money-fx", "interest", "ship")
BBC_ANOMALY = "entertainment"
BBC_CONTAMINATION = 0.05
BBC_TRAIN_SHARE = 0.7
BBC_SEEDS = 5
VAL_SHARE = 0.15  # of the normal training part, held out for the false-alarm calibration


@dataclass
class Task:
    dataset: str
    name: str  # the normal class, or the seed
    train: list[Article]  # normal only
    val: list[Article]  # normal only
    test: list[Article]  # label 1 = anomaly
    categories: list[str] | None = None  # per train article, where the normal data has categories

    @property
    def contamination(self) -> float:
        return sum(a.label == 1 for a in self.test) / len(self.test)


def _usable(articles: list[Article]) -> list[Article]:
    """Articles with text after cleaning, each text once (duplicates would sit in train and test)."""
    seen: set[str] = set()
    kept = []
    for article in articles:
        key = article_text(article.title, article.text)
        if clean(article.text) and key not in seen:
            seen.add(key)
            kept.append(article)
    return kept


def _labeled(articles: list[Article], label: int) -> list[Article]:
    return [a.model_copy(update={"label": label}) for a in articles]


def _hold_out(normal: list[Article], rng: random.Random) -> tuple[list[Article], list[Article]]:
    normal = list(normal)
    rng.shuffle(normal)
    n_val = max(1, round(len(normal) * VAL_SHARE))
    return normal[n_val:], normal[:n_val]


def ag_news_tasks(data_dir: Path, seed: int = 13) -> Iterator[Task]:
    articles = _usable(corpora.load_ag_news(data_dir))
    rng = random.Random(seed)
    halves: dict[str, tuple[list[Article], list[Article]]] = {}
    for name in AG_CLASSES:
        members = [a for a in articles if a.get("category") == name]
        rng.shuffle(members)
        half = len(members) // 2
        halves[name] = (members[:half], members[half:])
    for normal in AG_CLASSES:
        train, val = _hold_out(halves[normal][0], random.Random(seed))
        test = [a for name in AG_CLASSES for a in _labeled(halves[name][1], int(name != normal))]
        yield Task("ag_news", normal, _labeled(train, 0), _labeled(val, 0), test)


def bbc_tasks(data_dir: Path, seeds: int = BBC_SEEDS) -> Iterator[Task]:
    articles = _usable(corpora.load_bbc(data_dir))
    normal = [a for a in articles if a.get("category") != BBC_ANOMALY]
    anomalies = [a for a in articles if a.get("category") == BBC_ANOMALY]
    for seed in range(seeds):
        rng = random.Random(seed)
        pool = list(normal)
        rng.shuffle(pool)
        n_train = round(len(pool) * BBC_TRAIN_SHARE)
        train, val = _hold_out(pool[:n_train], rng)
        test_normal = pool[n_train:]
        n_anomalies = round(len(test_normal) * BBC_CONTAMINATION / (1 - BBC_CONTAMINATION))
        test = _labeled(test_normal, 0) + _labeled(rng.sample(anomalies, n_anomalies), 1)
        categories = [str(a.get("category")) for a in train]
        yield Task("bbc", f"seed {seed}", _labeled(train, 0), _labeled(val, 0), test, categories)


def reuters_tasks(data_dir: Path, seed: int = 13) -> Iterator[Task]:
    single = [a for a in corpora.load_reuters(data_dir) if a.get("category") in REUTERS_CLASSES]
    articles = _usable(single)
    train_docs = [a for a in articles if a.get("split") == "train"]
    test_docs = [a for a in articles if a.get("split") == "test"]
    for normal in REUTERS_CLASSES:
        members = [a for a in train_docs if a.get("category") == normal]
        train, val = _hold_out(members, random.Random(seed))
        test = [a.model_copy(update={"label": int(a.get("category") != normal)}) for a in test_docs]
        yield Task("reuters", normal, _labeled(train, 0), _labeled(val, 0), test)


DATASETS = {"ag_news": ag_news_tasks, "bbc": bbc_tasks, "reuters": reuters_tasks}
