"""`wirewatch bench-ad`: the label-free modes on public one-class protocols, published numbers beside.

A script, not a test: it prints a table and writes JSON to bench/results/ad-<time>.json. Every
row runs here, on the same splits (training.bench.ad_protocols):

- kNN reference: the frozen base encoder, the first 256 tokens of each article, mean cosine
  distance to the 10 nearest training articles: the bar the shipped method has to clear.
- wirewatch novelty: what `wirewatch train --mode novelty` does, on the frozen and on the
  adapted encoder (its top 2 layers): every window embedded, the default method (hybrid) fitted
  on the first window of each normal article, calibrated on val, the mean of the windows'
  log-odds per article. The shipped default is marked with *.
- wirewatch ood: where the normal data has categories (BBC: four sections), the category
  classifier's energy score, as `wirewatch train --mode ood` without outliers (one epoch).
- TF-IDF + kNN and TF-IDF + OCSVM, one-class baselines fitted on the same normal articles.

Frozen embeddings come from the PyTorch encoder in fp32, as the bundle's fp32 graph computes
them, and are cached under --cache, keyed by the weights and the windowing, so a re-run is fast.
The adapted and ood rows train only the top layers, so the layers below are run once per corpus
(CorpusStates) and every task runs its own top layers over their output.
"""

import copy
import hashlib
import json
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tqdm.auto import tqdm

from stream.scoring.articles import Article
from stream.scoring.encoding import Encoder, IntArray, Windowing, mean_per_owner
from stream.scoring.metrics import auroc
from stream.scoring.text import article_text
from training.bench import ad_protocols
from training.bench.ad_baseline import fit_tfidf
from training.embedding import Windows, build_pooler, embed, windows_of
from training.finetune import TrainConfig
from training.frozen import FrozenPrefix, State
from training.labelfree import base as unlabeled
from training.labelfree import detectors, novelty
from training.labelfree.adapt import AdaptConfig, adapt
from training.model import DEFAULT_BASE_MODEL, import_torch, load_base, resolve_base_model
from training.ship.publish import save_tokenizer

REFERENCE = "kNN k=10, first 256 tokens (frozen)"
FROZEN = "wirewatch novelty, frozen encoder"
ADAPTED = "wirewatch novelty, adapted encoder"
OOD = "wirewatch ood (energy)"
TFIDF_KNN = "TF-IDF + kNN (k=10)"
TFIDF_OCSVM = "TF-IDF + OCSVM (linear)"
# Windows per forward pass without gradients: at 256 tokens, 8 ran 1.4x as many windows a second
# as 32 here (runs/exp4/batch.py: 4 layers 28.5-33.7 vs 21.3-24.2, 2 layers 55.6-65.3 vs 44.1).
BATCH = 8
# `wirewatch train --mode ood` trains 2 epochs by default; on BBC each costs 1.5 min a task here.
OOD_EPOCHS = 1
SHIPPED = FROZEN  # the default of `wirewatch train --mode novelty` (--encoder frozen)
DATASET_TITLES = {"ag_news": "AG News", "bbc": "BBC", "reuters": "Reuters"}
# Published AUROC (%) in the same protocols, from the papers the issue names.
PUBLISHED = {
    "DATE (Manolache et al. 2021)": {"ag_news": 90.0, "bbc": 90.3},
    "OCSVM (as reported by DATE)": {"ag_news": 84.1},
    "CVDD (Ruff et al. 2019)": {"ag_news": 83.1},
    "OpenAI emb. + LUNAR (NLP-ADBench)": {"bbc": 97.32},
    "BERT + LUNAR (NLP-ADBench)": {"bbc": 92.6},
}


@dataclass
class BenchOptions:
    data_dir: Path
    datasets: list[str] = field(default_factory=lambda: list(ad_protocols.DATASETS))
    out: Path = Path("bench/results")
    cache: Path = Path("runs/bench-ad")
    adapted: bool = True
    ood: bool = True
    throughput: bool = True
    threads: int = 0
    base_model: str = DEFAULT_BASE_MODEL
    windowing: Windowing = field(default_factory=Windowing)
    seed: int = 13


class Embedder:
    """Window embeddings of articles, computed once per encoder state and cached on disk."""

    def __init__(self, pooler: Any, encoder: Encoder, cache: Path, key: str) -> None:
        self.pooler, self.encoder, self.cache, self.key = pooler, encoder, cache, key

    def __call__(
        self, articles: list[Article], tag: str, compute: Callable[[], Windows] | None = None
    ) -> dict[str, tuple[Windows, int]]:
        """``compute``, when given, returns the windows of the articles sorted by id without a cache."""
        ids = sorted({a.id for a in articles})
        digest = hashlib.sha256("\n".join([self.key, *ids]).encode()).hexdigest()[:16]
        path = self.cache / f"{tag}-{digest}.npz"
        if path.is_file():
            saved = np.load(path)
            windows = Windows(saved["vectors"], saved["owner"], len(ids))
        elif compute is not None:
            windows = compute()
        else:
            by_id = {a.id: a for a in articles}
            texts = [article_text(by_id[i].title, by_id[i].text) for i in ids]
            windows = embed(self.pooler, self.encoder, texts, desc=f"embedding {tag}")
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, vectors=windows.vectors, owner=windows.owner)
        return {i: (windows, n) for n, i in enumerate(ids)}


def _select(table: dict[str, tuple[Windows, int]], articles: list[Article]) -> Windows:
    windows = table[articles[0].id][0]
    return windows.select([table[a.id][1] for a in articles])


def novelty_auroc(
    train: Windows, val: Windows, test: Windows, labels: npt.NDArray[np.int64], seed: int
) -> dict[str, Any]:
    """The shipped novelty rule on embeddings: selection, fit, calibration, the article mean."""
    options = unlabeled.UnlabeledOptions(mode="novelty", out=Path("unused"))
    selection = novelty.select_method(options, train, val, None, seed)
    detector = novelty.fit_detector(selection.chosen, options, train, val, seed)
    temperature, bias, _quantile = unlabeled.false_alarm_calibration(
        novelty.article_raw(detector, val), options.target_false_alarm_rate
    )
    scores = novelty.article_scores(detector, test, temperature, bias)
    threshold = unlabeled.far_threshold(
        novelty.article_scores(detector, val, temperature, bias), options.target_false_alarm_rate
    )
    return {
        "auroc": auroc(labels, scores),
        "method": selection.chosen,
        "proxy": selection.proxy,
        "test_false_alarm_rate": float((scores[labels == 0] >= threshold).mean()),
        "test_recall": float((scores[labels == 1] >= threshold).mean()),
    }


def reference_auroc(train: Windows, test: Windows, labels: npt.NDArray[np.int64]) -> float | None:
    return auroc(labels, detectors.Knn(train.first(), min(10, len(train.first()))).raw(test.first()))


class Bench:
    def __init__(self, options: BenchOptions) -> None:
        self.options = options
        torch = import_torch()
        if options.threads:
            torch.set_num_threads(options.threads)
        base = resolve_base_model(options.base_model)
        self.base_model, hf_tokenizer = load_base(base)
        options.cache.mkdir(parents=True, exist_ok=True)
        self.encoder, _ = save_tokenizer(hf_tokenizer, options.cache, options.windowing)
        w = options.windowing
        self.key = f"{base.name}:{base.sha256}:{w.max_length}:{w.stride}:{w.max_windows}"
        self.frozen = Embedder(
            build_pooler(self.base_model), self.encoder, options.cache / "frozen", self.key
        )
        self.results: dict[str, dict[str, dict[str, Any]]] = {}  # row -> dataset -> task -> result
        self.seconds: dict[str, float] = {}
        self.row_seconds: dict[str, dict[str, float]] = {}  # slow parts: seconds per dataset
        self.table: dict[str, tuple[Windows, int]] = {}  # the current corpus's frozen embeddings
        self.states: CorpusStates | None = None  # its lower-layer states, for the adapted and ood rows
        self.tokenizer_file = options.cache / "tokenizer.json"
        self.normal_windows: list[np.ndarray] = []  # frozen window embeddings, for the throughput bank
        self.sample_texts: list[str] = []

    @contextmanager
    def timed(self, part: str, dataset: str) -> Iterator[None]:
        started = time.monotonic()
        yield
        spent = self.row_seconds.setdefault(part, {})
        spent[dataset] = round(spent.get(dataset, 0.0) + time.monotonic() - started, 1)

    def record(self, row: str, dataset: str, task: str, value: Any) -> None:
        self.results.setdefault(row, {}).setdefault(dataset, {})[task] = value

    def run_dataset(self, dataset: str) -> None:
        started = time.monotonic()
        tasks = list(ad_protocols.DATASETS[dataset](self.options.data_dir))
        everything = {a.id: a for t in tasks for a in (*t.train, *t.val, *t.test)}
        articles = list(everything.values())
        with self.timed("lower layers, once for the adapted and ood rows", dataset):
            self.states = (
                CorpusStates(self.base_model, self.encoder, articles, dataset)
                if self.options.adapted or self.options.ood
                else None
            )
        table = self.table = self.frozen(articles, dataset, self.states.frozen if self.states else None)
        self.normal_windows.append(next(iter(table.values()))[0].vectors)
        self.sample_texts += [
            article_text(a.title, a.text) for a in tasks[0].test[:: max(1, len(tasks[0].test) // 150)]
        ]
        for task in tqdm(tasks, desc=dataset, unit="task"):
            train, val, test = (_select(table, s) for s in (task.train, task.val, task.test))
            labels = np.asarray([a.label for a in task.test], dtype=np.int64)
            self.record(REFERENCE, dataset, task.name, {"auroc": reference_auroc(train, test, labels)})
            self.record(
                FROZEN, dataset, task.name, novelty_auroc(train, val, test, labels, self.options.seed)
            )
            self.tfidf(dataset, task, labels)
            if self.options.adapted:
                with self.timed(ADAPTED, dataset):
                    self.adapted(dataset, task, labels)
            if self.options.ood and task.categories:
                with self.timed(OOD, dataset):
                    self.ood(dataset, task, labels)
        self.states = None
        self.seconds[dataset] = round(time.monotonic() - started, 1)

    def throughput(self) -> list[dict[str, Any]]:
        from training.bench.throughput import BANK_SIZE, measure

        started = time.monotonic()
        windows = np.concatenate(self.normal_windows)
        rng = np.random.default_rng(self.options.seed)
        bank = windows[rng.choice(len(windows), size=min(BANK_SIZE, len(windows)), replace=False)]
        texts = self.sample_texts[:400]
        measured = measure(
            self.base_model, self.encoder, self.tokenizer_file, bank, texts, self.options.cache / "throughput"
        )
        self.seconds["throughput"] = round(time.monotonic() - started, 1)
        return [
            {
                "precision": m.precision,
                "articles": len(texts),
                "bank_size": len(bank),
                "classifier_articles_per_s": round(m.classifier, 1),
                "novelty_articles_per_s": round(m.novelty, 1),
                "novelty_over_classifier": round(m.ratio, 3),
            }
            for m in measured
        ]

    def tfidf(self, dataset: str, task: ad_protocols.Task, labels: npt.NDArray[np.int64]) -> None:
        train = [article_text(a.title, a.text) for a in task.train]
        test = [article_text(a.title, a.text) for a in task.test]
        for row, kind in ((TFIDF_KNN, "knn"), (TFIDF_OCSVM, "ocsvm")):
            model = fit_tfidf(train, kind)  # type: ignore[arg-type]
            self.record(row, dataset, task.name, {"auroc": auroc(labels, model.raw(test))})

    def adapted(self, dataset: str, task: ad_protocols.Task, labels: npt.NDArray[np.int64]) -> None:
        assert self.states is not None
        config = AdaptConfig(seed=self.options.seed)
        pooler = build_pooler(copy.deepcopy(self.base_model))
        texts = [article_text(a.title, a.text) for a in task.train]
        centre = _select(self.table, task.train).first().mean(0)
        prefix, _line = adapt(pooler, self.encoder, texts, config, centre=centre)
        table = self.states.embed(prefix, [*task.train, *task.val, *task.test])
        train, val, test = (_select(table, s) for s in (task.train, task.val, task.test))
        self.record(ADAPTED, dataset, task.name, novelty_auroc(train, val, test, labels, self.options.seed))

    def ood(self, dataset: str, task: ad_protocols.Task, labels: npt.NDArray[np.int64]) -> None:
        from training.labelfree import ood

        assert task.categories is not None
        assert self.states is not None
        names = sorted(set(task.categories))
        index = {n: i for i, n in enumerate(names)}
        options = unlabeled.UnlabeledOptions(
            mode="ood",
            out=Path("unused"),
            train=TrainConfig(epochs=OOD_EPOCHS, eval_batch_size=BATCH, seed=self.options.seed),
        )
        classifier = ood.build_category_classifier(copy.deepcopy(self.base_model), len(names))
        train = [article_text(a.title, a.text) for a in task.train]
        val = [article_text(a.title, a.text) for a in task.val]
        val_targets = np.asarray([index[str(a.get("category"))] for a in task.val], dtype=np.int64)
        targets = np.asarray([index[c] for c in task.categories], dtype=np.int64)
        trained = ood.fine_tune(
            classifier, self.encoder, train, targets, (val, val_targets), [], options, self.states.of
        )
        logits, owner = self.states.logits(trained.prefix, task.test)
        stats = {k: mean_per_owner(v, owner, len(task.test)) for k, v in ood.statistics(logits).items()}
        self.record(
            OOD,
            dataset,
            task.name,
            {
                "auroc": auroc(labels, stats["energy"]),
                "auroc_msp": auroc(labels, stats["msp"]),
                "val_accuracy": trained.val_accuracy,
            },
        )


class CorpusStates:
    """The frozen lower layers' output for every window of a corpus, computed once.

    Every adapted encoder and ood classifier of the benchmark trains only the top layers of the
    same base encoder, so what the layers below compute for a window is the same for all of
    them: each task runs only its top layers over these states. Kept in float32, so the base
    encoder's top layers over them give the frozen embeddings too.
    """

    def __init__(self, base_model: Any, encoder: Encoder, articles: list[Article], tag: str) -> None:
        self.ids = sorted({a.id for a in articles})
        by_id = {a.id: a for a in articles}
        self.encoded = encoder.encode([article_text(by_id[i].title, by_id[i].text) for i in self.ids])
        self.base = FrozenPrefix(build_pooler(base_model), encoder, AdaptConfig.train_layers)
        self.states = self.base.states(
            self.encoded.windows, BATCH, desc=f"lower layers {tag}", dtype=np.float32
        )
        self.by_tokens = {w.tobytes(): st for w, st in zip(self.encoded.windows, self.states, strict=True)}
        self.row = {i: n for n, i in enumerate(self.ids)}

    def of(self, windows: Sequence[IntArray]) -> list[State]:
        """The cached states of windows of the corpus's articles."""
        return [self.by_tokens[w.tobytes()] for w in windows]

    def frozen(self) -> Windows:
        """Every window's embedding by the base encoder, in the order of the sorted article ids."""
        return Windows(self.base.embeddings(self.states, BATCH), self.encoded.owner, self.encoded.n_texts)

    def embed(self, prefix: FrozenPrefix, articles: list[Article]) -> dict[str, tuple[Windows, int]]:
        """The articles' window embeddings by an encoder whose lower layers are the base model's."""
        picks, owner = windows_of(self.encoded.owner, [self.row[a.id] for a in articles])
        vectors = prefix.embeddings([self.states[i] for i in picks], BATCH)
        windows = Windows(vectors, owner, len(articles))
        return {a.id: (windows, n) for n, a in enumerate(articles)}

    def logits(
        self, prefix: FrozenPrefix, articles: list[Article]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """The window logits of the articles' windows and, per window, its article's position."""
        picks, owner = windows_of(self.encoded.owner, [self.row[a.id] for a in articles])
        return prefix.window_logits([self.states[i] for i in picks], BATCH), owner


def _mean(values: dict[str, Any]) -> float | None:
    aurocs = [v["auroc"] for v in values.values() if v.get("auroc") is not None]
    return 100.0 * float(np.mean(aurocs)) if aurocs else None


def format_table(results: dict[str, dict[str, dict[str, Any]]], datasets: list[str]) -> str:
    titles = [DATASET_TITLES[d] for d in datasets]
    width = max(len(r) for r in [*results, *(f"published: {p}" for p in PUBLISHED)]) + 2
    lines = [
        "Mean AUROC (%) over each protocol's tasks; * = what `wirewatch train --mode novelty` ships by default",
        f"{'':{width}}" + "".join(f"{t:>10}" for t in titles),
    ]
    for row, by_dataset in results.items():
        name = f"{row} *" if row == SHIPPED else row
        cells = []
        for d in datasets:
            value = _mean(by_dataset[d]) if d in by_dataset else None
            cells.append(f"{value:10.2f}" if value is not None else f"{'n/a':>10}")
        lines.append(f"{name:{width}}" + "".join(cells))
    for row, published in PUBLISHED.items():
        cells = [f"{published[d]:10.2f}" if d in published else f"{'-':>10}" for d in datasets]
        lines.append(f"{'published: ' + row:{width}}" + "".join(cells))
    return "\n".join(lines)


def format_tasks(results: dict[str, dict[str, dict[str, Any]]], dataset: str) -> str:
    rows = {r: v[dataset] for r, v in results.items() if dataset in v}
    tasks = list(next(iter(rows.values())))
    width = max(len(r) for r in rows) + 2
    lines = [f"{DATASET_TITLES[dataset]}, AUROC (%) per normal class / seed"]
    lines.append(f"{'':{width}}" + "".join(f"{t[:9]:>10}" for t in tasks))
    for row, values in rows.items():
        cells = [
            f"{100 * values[t]['auroc']:10.2f}"
            if t in values and values[t]["auroc"] is not None
            else f"{'':>10}"
            for t in tasks
        ]
        lines.append(f"{row:{width}}" + "".join(cells))
    return "\n".join(lines)


def protocol_notes(datasets: list[str]) -> dict[str, str]:
    notes = {
        "ag_news": (
            "AG News test file only: each class split in half with seed 13; one half (less 15% held out "
            "for the calibration) trains, the other halves of all four classes are the test set "
            "(the papers train on the 30,000 training articles of the class)."
        ),
        "bbc": (
            f"BBC: entertainment is the anomaly; duplicates removed; 70% of normal articles train (less 15% "
            f"for the calibration), 30% test, with entertainment articles drawn to make up "
            f"{ad_protocols.BBC_CONTAMINATION:.0%} of the test set (contamination); "
            f"{ad_protocols.BBC_SEEDS} seeds."
        ),
        "reuters": (
            "Reuters-21578 ModApte, documents with exactly one topic among earn, acq, crude, trade, "
            "money-fx, interest, ship; train on the normal topic's training documents (less 15% for the "
            "calibration), test on all test documents of the 7 topics; documents without body text "
            "(which the scorer dead-letters) and duplicates are left out."
        ),
    }
    return {d: notes[d] for d in datasets}


def run_bench(options: BenchOptions) -> dict[str, Any]:
    started = time.monotonic()
    bench = Bench(options)
    for dataset in options.datasets:
        bench.run_dataset(dataset)
    throughput = bench.throughput() if options.throughput else []
    total = time.monotonic() - started
    torch = import_torch()
    summary: dict[str, dict[str, float | None]] = {
        row: {d: _mean(v) for d, v in by_dataset.items()} for row, by_dataset in bench.results.items()
    }
    result: dict[str, Any] = {
        "created_at": datetime.now(UTC).isoformat(),
        "command": "wirewatch bench-ad " + " ".join(f"--datasets {d}" for d in options.datasets),
        "machine": {"python": platform.python_version(), "torch_threads": int(torch.get_num_threads())},
        "seconds_total": round(total, 1),
        "seconds_per_dataset": bench.seconds,
        "seconds_of_slow_parts": bench.row_seconds,
        "shipped": SHIPPED,
        "protocols": protocol_notes(options.datasets),
        "mean_auroc_percent": summary,
        "published_auroc_percent": PUBLISHED,
        "throughput": throughput,
        "tasks": bench.results,
    }
    table = format_table(bench.results, options.datasets)
    print(table)
    for dataset in options.datasets:
        print()
        print(format_tasks(bench.results, dataset))
    print()
    for note in result["protocols"].values():
        print(f"- {note}")
    for t in throughput:
        print(
            f"throughput {t['precision']}: classifier {t['classifier_articles_per_s']} articles/s, novelty "
            f"(bank {t['bank_size']}) {t['novelty_articles_per_s']} articles/s, ratio {t['novelty_over_classifier']}"
        )
    for part, by_dataset in bench.row_seconds.items():
        print(f"{part}: " + ", ".join(f"{DATASET_TITLES[d]} {v / 60:.1f} min" for d, v in by_dataset.items()))
    options.out.mkdir(parents=True, exist_ok=True)
    path = options.out / f"ad-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"\nwall time {total / 60:.1f} min on {result['machine']['torch_threads']} threads; JSON: {path}")
    return result
