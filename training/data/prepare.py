"""`wirewatch data prepare`: the terrorism task's splits and a realistic news stream.

Two kinds of labelled attack reports: MUC-3/4 reports with an incident template (1989-91 FBIS
translations; the other MUC reports are same-domain hard negatives), and modern news items from
Wikipedia's Portal:Current events 2010-2018, labelled by the rules of docs/labeling-guide.md
(training/data/attack_labels.py), whose negatives include battles, air strikes, crime, accidents and
policy about terrorism. Full-length modern articles (AllSides 2016-2018, training/data/article_labels.py
and blind hand readings) teach what short items cannot: a campaign story, an opinion piece or a
trial that mentions an attack without reporting one. Ordinary news (BBC, Reuters ModApte, AG
News Sports, Business and Sci/Tech) adds negatives of other kinds.

MUC keeps its own splits (dev -> train, tst1+tst2 -> val, tst3+tst4 -> test). The modern items
are split by time (2010-2015 -> train, 2016 -> val, 2017-2018 -> test), so the test measures news
of years the model has not seen. Ordinary news is shuffled with a seed and dealt out disjointly.
AG News World is never used (about a quarter of it reports real bombings and kidnappings, and it
is reserved for out-of-domain evaluation): it goes into the stream unlabelled. The stream carries
held-out labelled reports of both kinds, the MUC test reports and a sample of the modern test
years, among held-out ordinary news, so attack reports are rare, as in a real feed.
"""

import json
import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from stream.errors import DataError
from stream.scoring.articles import Article, write_articles
from stream.scoring.text import article_text, clean
from training.data import corpora
from training.data.article_labels import label_article, names_violence
from training.data.attack_labels import label_item

MUC_SPLITS = {"dev": "train", "tst1": "val", "tst2": "val", "tst3": "test", "tst4": "test"}
SPLITS = ("train", "val", "test")
# Modern news is split by time: the model is tested on years it has not seen.
WIKI_SPLITS = {
    **{str(year): "train" for year in range(2010, 2016)},
    "2016": "val",
    "2017": "test",
    "2018": "test",
}
# Full-length articles (AllSides 2016-2018) are split by time too: 2016 to June 2017 train, the
# second half of 2017 validation, 2018 test. Many outlets cover one event, so never at random.
# Attack reports are rare among them (92 of 10,639 by hand), so the held-out halves are as large as
# the training side can spare: 11 reports in validation, 21 in test.
LONG_VAL_FROM, LONG_TEST_FROM = "2017-07-01", "2018-01-01"


@dataclass
class Quota:
    """Ordinary-news articles per source and split; the rest of each pool goes to the stream."""

    train: int = 400
    val: int = 150
    test: int = 150
    stream: int = 1000  # held-out ordinary articles per source that go into the stream
    stream_bbc: int = 300  # BBC articles are three times as long: fewer, so evaluation stays quick
    stream_modern: int = 3000  # modern test-year items that also go into the stream
    # Share of the modern training negatives that no attack word touched (rules `no_attack` and
    # `category`) that is kept; every harder negative (battles, accidents, crime...) is kept.
    modern_easy_negatives: float = 0.2
    # The same for full-length training articles whose headline and lead name no violence at all:
    # policy, campaign and opinion pieces that mention an attack further down are all kept.
    long_easy_negatives: float = 0.3
    stream_long: int = 600  # held-out full-length articles (2018, the test year) in the stream


# Which kind of news an article is, for per-domain evaluation and the threshold: 1989-91 FBIS
# reports, modern world news, or ordinary business, sports and technology news.
DOMAINS = {"muc": "muc", "wikinews": "modern", "allsides": "long"}
EASY_RULES = ("no_attack", "category")


@dataclass
class Prepared:
    splits: dict[str, list[Article]]
    stream: list[Article]
    dropped: Counter[str] = field(default_factory=Counter)

    def composition(self) -> dict[str, dict[str, int]]:
        table: dict[str, dict[str, int]] = {}
        for name, articles in [*self.splits.items(), ("stream", self.stream)]:
            counts: Counter[str] = Counter()
            for a in articles:
                kind = "unlabeled" if a.label is None else ("positive" if a.label else "negative")
                counts[f"{a.get('corpus')}:{kind}"] += 1
                counts[kind] += 1
            counts["total"] = len(articles)
            table[name] = dict(sorted(counts.items()))
        return table


def _negatives(articles: Iterable[Article]) -> list[Article]:
    return [a.model_copy(update={"label": 0}) for a in articles]


def _with_domain(articles: Iterable[Article]) -> list[Article]:
    return [a.model_copy(update={"domain": DOMAINS.get(a.get("corpus"), "ordinary")}) for a in articles]


def _thin_easy_negatives(articles: list[Article], keep: float, rng: random.Random) -> list[Article]:
    return [
        a for a in articles if a.label == 1 or a.get("label_rule") not in EASY_RULES or rng.random() < keep
    ]


def _dedupe(articles: list[Article], seen: set[str], dropped: Counter[str]) -> list[Article]:
    kept = []
    for article in articles:
        key = article_text(article.title, article.text)
        if not clean(article.text):  # a title alone is not an article: the scorer dead-letters it
            dropped["empty"] += 1
        elif key in seen:
            dropped["duplicate"] += 1
        else:
            seen.add(key)
            kept.append(article)
    return kept


def _deal(pool: list[Article], counts: list[int], rng: random.Random) -> list[list[Article]]:
    pool = list(pool)
    rng.shuffle(pool)
    if sum(counts) > len(pool):
        raise DataError(f"only {len(pool)} articles to deal out, {sum(counts)} asked for")
    out, start = [], 0
    for n in counts:
        out.append(pool[start : start + n])
        start += n
    out.append(pool[start:])
    return out


def _by_time(
    articles: list[Article], split_of: Callable[[Article], str], splits: dict[str, list[Article]]
) -> tuple[list[Article], list[Article]]:
    """Deals validation and test articles into splits; returns the training and the test ones."""
    train, test = [], []
    for article in articles:
        split = split_of(article)
        if split == "train":
            train.append(article)
            continue
        splits[split].append(article)
        if split == "test":
            test.append(article)
    return train, test


def long_split(article: Article) -> str:
    date = str(article.get("date"))
    return "train" if date < LONG_VAL_FROM else "val" if date < LONG_TEST_FROM else "test"


# Hand readings of the full-length articles (docs/labeling-guide.md): the blind audit of the rules
# (a sample of every stratum), then the blind reading of every other article whose headline or
# lead names violence. A reader's label replaces the rules' for the articles it covers.
LABEL_AUDIT = Path(__file__).resolve().parents[2] / "docs" / "label-audit"
LONG_READINGS = {
    "hand_audit": LABEL_AUDIT / "allsides-final-audit.jsonl",
    "hand_reading": LABEL_AUDIT / "allsides-violence-reading.jsonl",
}


def hand_labels(paths: dict[str, Path] = LONG_READINGS) -> dict[str, tuple[int, str]]:
    """Article id -> (the reader's label, which reading gave it); an earlier reading wins."""
    labels: dict[str, tuple[int, str]] = {}
    for rule, path in paths.items():
        if not path.is_file():
            continue
        for row in map(json.loads, path.read_text().splitlines()):
            labels.setdefault(row["id"], (int(row["hand"]), rule))
    return labels


def label_long(articles: Iterable[Article], hand: dict[str, tuple[int, str]] | None = None) -> list[Article]:
    """Full-length articles with their attack label: a hand reading's where one read the article,
    else the rules' (headline and lead decide)."""
    hand = hand_labels() if hand is None else hand
    labelled = []
    for article in articles:
        if article.id in hand:
            label, rule = hand[article.id]
            update = {"label": label, "label_rule": rule}
        else:
            decided = label_article(article.title, article.text, article.get("url"))
            update = {"label": decided.label, "label_rule": decided.rule}
        labelled.append(article.model_copy(update=update))
    return labelled


def _thin_easy_long(articles: list[Article], keep: float, rng: random.Random) -> list[Article]:
    """Keeps every positive and every article whose headline or lead names violence."""
    return [
        a
        for a in articles
        if a.label == 1 or names_violence(a.title, a.text) or rng.random() < keep
    ]


def label_modern(articles: Iterable[Article]) -> list[Article]:
    """Portal items with their rule-based attack label and the rule that decided it."""
    labelled = []
    for article in articles:
        decided = label_item(article.text, article.get("section"))
        labelled.append(article.model_copy(update={"label": decided.label, "label_rule": decided.rule}))
    return labelled


def prepare(data_dir: Path, *, seed: int = 13, quota: Quota | None = None) -> Prepared:
    quota = quota or Quota()
    rng = random.Random(seed)
    dropped: Counter[str] = Counter()
    seen: set[str] = set()

    # Evaluation data first, so that a duplicate is dropped from training, never from a test.
    muc = corpora.load_muc(data_dir)
    muc.sort(key=lambda a: {"test": 0, "val": 1, "train": 2}[MUC_SPLITS[a.get("split")]])
    muc = _dedupe(muc, seen, dropped)
    modern = label_modern(corpora.load_current_events(data_dir))
    modern.sort(key=lambda a: {"test": 0, "val": 1, "train": 2}[WIKI_SPLITS[a.get("split")]])
    modern = _dedupe(modern, seen, dropped)
    long = label_long(corpora.load_allsides(data_dir))
    long.sort(key=lambda a: {"test": 0, "val": 1, "train": 2}[long_split(a)])
    long = _dedupe(long, seen, dropped)
    ag = corpora.load_ag_news(data_dir)
    ag_world = _dedupe([a for a in ag if a.get("category") == "world"], seen, dropped)
    ag_other = _negatives(a for a in ag if a.get("category") != "world")
    reuters = _negatives(corpora.load_reuters(data_dir))

    splits: dict[str, list[Article]] = {name: [] for name in SPLITS}
    stream: list[Article] = []
    for article in muc:
        split = MUC_SPLITS[article.get("split")]
        splits[split].append(article)
        if split == "test":
            stream.append(article)  # the MUC test reports are the stream's attack reports

    modern_train, modern_test = _by_time(modern, lambda a: WIKI_SPLITS[a.get("split")], splits)
    splits["train"] += _thin_easy_negatives(modern_train, quota.modern_easy_negatives, rng)
    stream += _deal(modern_test, [quota.stream_modern], rng)[0]

    long_train, long_test = _by_time(long, long_split, splits)
    # A generator of their own, so adding them left every other split exactly as it was.
    long_rng = random.Random(f"{seed}-long")
    splits["train"] += _thin_easy_long(long_train, quota.long_easy_negatives, long_rng)
    # Every held-out attack report among a sample of the rest: on full articles, reports are rare.
    long_reports = [a for a in long_test if a.label == 1]
    stream += long_reports + _deal([a for a in long_test if a.label != 1], [quota.stream_long], long_rng)[0]

    n = [quota.test, quota.val, quota.train]
    pools = [
        (_dedupe(ag_other, seen, dropped), n, quota.stream),
        (_dedupe(_negatives(corpora.load_bbc(data_dir)), seen, dropped), n, quota.stream_bbc),
    ]
    # Reuters keeps its ModApte split: training data from its train part, held-out from test.
    r_test = _dedupe([a for a in reuters if a.get("split") == "test"], seen, dropped)
    r_train = _dedupe([a for a in reuters if a.get("split") == "train"], seen, dropped)
    for pool, counts, in_stream in pools:
        test, val, train, rest = _deal(pool, counts, rng)
        splits["test"] += test
        splits["val"] += val
        splits["train"] += train
        stream += rest[:in_stream]
    test, rest = _deal(r_test, [quota.test], rng)
    splits["test"] += test
    stream += rest[: quota.stream]
    val, train, _unused = _deal(r_train, [quota.val, quota.train], rng)
    splits["val"] += val
    splits["train"] += train

    stream += ag_world

    splits = {name: _with_domain(articles) for name, articles in splits.items()}
    stream = _with_domain(stream)
    for articles in splits.values():
        rng.shuffle(articles)
    rng.shuffle(stream)
    return Prepared(splits, stream, dropped)


def split_file(folder: Path, name: str) -> Path | None:
    """The file of split `name` in a data folder: <name>.jsonl, else <name>.csv, the first that is
    a file; None when neither is (the caller says whether the split may be missing).

    JSONL wins when both are there: it is what write_prepared writes, so a CSV beside it is a
    copy in another format, not a second half of the split."""
    for suffix in (".jsonl", ".csv"):
        if (folder / f"{name}{suffix}").is_file():
            return folder / f"{name}{suffix}"
    return None


def write_prepared(prepared: Prepared, out: Path) -> dict[str, Path]:
    task_dir = out / "terrorism"
    paths = {name: task_dir / f"{name}.jsonl" for name in SPLITS}
    paths["stream"] = out / "stream.jsonl"
    for name, path in paths.items():
        write_articles(path, prepared.stream if name == "stream" else prepared.splits[name])
    summary = {"composition": prepared.composition(), "dropped": dict(prepared.dropped)}
    (task_dir / "composition.json").write_text(json.dumps(summary, indent=2) + "\n")
    return paths


def format_composition(prepared: Prepared) -> str:
    table = prepared.composition()
    kinds = sorted({k for row in table.values() for k in row if ":" in k})
    lines = [f"{'':22}" + "".join(f"{name:>9}" for name in table)]
    for kind in [*kinds, "positive", "negative", "unlabeled", "total"]:
        lines.append(f"{kind:22}" + "".join(f"{row.get(kind, 0):>9}" for row in table.values()))
    stream = table["stream"]
    labeled = stream.get("positive", 0) + stream.get("negative", 0)
    share = stream.get("positive", 0) / labeled if labeled else 0.0
    lines.append(
        f"stream: {share:.2%} of the labeled articles are attack reports; "
        f"{stream.get('unlabeled', 0)} AG World articles are unlabeled"
    )
    lines.append(f"dropped: {dict(prepared.dropped) or 'nothing'}")
    return "\n".join(lines)
