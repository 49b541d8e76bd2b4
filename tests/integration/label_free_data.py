"""Small real data for the label-free modes: BBC sections as normal news, entertainment as the anomaly."""

import random
from pathlib import Path

from stream.scoring.articles import Article, write_articles
from training.data import corpora

NORMAL = ("business", "politics", "sport", "tech")
ANOMALY = "entertainment"


def write_label_free_data(datasets_dir: Path, root: Path, seed: int = 0) -> Path:
    """root/{train,val,test}.jsonl: normal articles with their `category`; test label 1 = entertainment."""
    rng = random.Random(seed)
    articles = corpora.load_bbc(datasets_dir)
    by_section = {s: [a for a in articles if a.get("category") == s] for s in (*NORMAL, ANOMALY)}
    for members in by_section.values():
        rng.shuffle(members)
    sizes = {"train": 10, "val": 5, "test": 4}
    start = 0
    for name, n in sizes.items():
        chosen: list[Article] = []
        for section in NORMAL:
            chosen += [a.model_copy(update={"label": 0}) for a in by_section[section][start : start + n]]
        if name == "test":
            chosen += [a.model_copy(update={"label": 1}) for a in by_section[ANOMALY][:8]]
        rng.shuffle(chosen)
        write_articles(root / f"{name}.jsonl", chosen)
        start += n
    return root
