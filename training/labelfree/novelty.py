"""`wirewatch train --mode novelty`: normal news only in, a distance-to-normal bundle out.

Steps: read the normal articles (DATA/train and val, or a topic's recent history); embed every
window with the base encoder (adapted to the normal text first with ``--encoder adapted``); fit
the detector (default ``hybrid``: kNN to a bounded bank of normal windows plus a quarter of the
Mahalanobis distance, see training.labelfree.detectors) on one window per normal article, its first;
calibrate its statistic on val to the target false-alarm rate; build one graph (encoder,
pooling, normalisation, distance, calibration), export and validate it, quantize the encoder to
int8 when that keeps the metrics; evaluate on DATA/test when there is one; write the bundle.

One window per article: a long article's later windows (tables, lists, quoted statements)
would otherwise crowd the bank, and kNN would measure the density of long articles' tails
rather than of articles. On bench-ad's Reuters protocol the bank of every window lost 1.8 AUROC
points against the first windows (92.50 vs 94.33 with kNN), on BBC 0.15.

``--method auto`` chooses kNN or Mahalanobis without anomalies: the normal training articles
are clustered (k-means, 5 clusters) and each cluster in turn is held out as a stand-in for "a
kind of article never seen": the detector is fitted on the other clusters and asked to separate
the held-out cluster from the validation articles. The mean AUROC over the clusters is the
criterion (recorded in every manifest). On bench-ad it tracked the real anomalies poorly
(choosing per task scored below the hybrid on all three protocols), hence not the default.
"""

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from stream.errors import ConfigError
from stream.scoring.bundle import Bundle, Method, load_bundle
from stream.scoring.encoding import mean_per_owner
from stream.scoring.metrics import auroc
from training.calibrate import apply_temperature
from training.embedding import FloatArray, Windows, build_pooler, embed
from training.labelfree import base as unlabeled
from training.labelfree import detectors
from training.labelfree.base import NormalData, UnlabeledOptions, log
from training.model import calibrated, import_torch
from training.ship.publish import publishing, save_tokenizer

MAX_BANK_SIZE = 65_536  # windows: 100 MB of fp32 at 384 dimensions, ~1 ms per window to search
PROXY_CLUSTERS = 5
METHODS: tuple[detectors.MethodName, ...] = ("knn", "mahalanobis")


@dataclass
class Selection:
    chosen: detectors.MethodName
    rule: str
    proxy: dict[str, float | None]  # method -> held-out-cluster AUROC on validation
    test: dict[str, float | None]  # method -> test AUROC (reported, never used to choose)


def check_options(options: UnlabeledOptions) -> None:
    if not 1 <= options.bank_size <= MAX_BANK_SIZE:
        raise ConfigError(
            f"--bank-size {options.bank_size} is outside 1..{MAX_BANK_SIZE} windows (the bound that keeps "
            "the bundle small and its search under a millisecond per window)"
        )
    if options.k < 1:
        raise ConfigError("--k must be at least 1")
    if not 0.0 < options.target_false_alarm_rate < 0.5:
        raise ConfigError("--target-false-alarm-rate must be in (0, 0.5)")


def held_out_cluster_auroc(
    method: detectors.MethodName,
    train: FloatArray,
    val: FloatArray,
    k: int,
    bank_size: int,
    seed: int,
) -> float | None:
    """The label-free criterion: mean AUROC of held-out clusters of train against val."""
    from sklearn.cluster import KMeans

    clusters = min(PROXY_CLUSTERS, len(train) // 10)
    if clusters < 2 or len(val) < 2:
        return None
    kmeans = KMeans(n_clusters=clusters, n_init=3, random_state=seed).fit(train)
    val_cluster = kmeans.predict(val)
    results = []
    for j in range(clusters):
        held = kmeans.labels_ == j
        normal = val[val_cluster != j]
        if held.all() or (~held).sum() < 2 or len(normal) == 0:
            continue
        detector = detectors.fit(method, train[~held], k, bank_size, seed)
        raw = np.r_[detector.raw(normal), detector.raw(train[held])]
        labels = np.r_[np.zeros(len(normal)), np.ones(int(held.sum()))]
        value = auroc(labels, raw)
        if value is not None:
            results.append(value)
    return float(np.mean(results)) if results else None


def fit_detector(
    method: detectors.MethodName, options: UnlabeledOptions, train: Windows, val: Windows, seed: int
) -> detectors.Detector:
    """The detector on one window per normal article; val's windows set the hybrid's units."""
    if method == "hybrid" and len(val.vectors) < 2:
        raise ConfigError(
            "--method hybrid needs at least two held-out normal articles in val to standardise on"
        )
    return detectors.fit(method, train.first(), options.k, options.bank_size, seed, reference=val.vectors)


def article_raw(detector: detectors.Detector, windows: Windows) -> FloatArray:
    """An article's raw statistic: the mean over its windows (see unlabeled.AGGREGATION)."""
    return mean_per_owner(detector.raw(windows.vectors), windows.owner, windows.n_texts)


def article_scores(
    detector: detectors.Detector, windows: Windows, temperature: float, bias: float
) -> FloatArray:
    """What the bundle serves (chunk_mean_logit): the calibration of the article's mean raw statistic."""
    return apply_temperature(article_raw(detector, windows), temperature, bias).astype(np.float32)


def select_method(
    options: UnlabeledOptions,
    train: Windows,
    val: Windows,
    test: tuple[Windows, np.ndarray] | None,
    seed: int,
) -> Selection:
    proxy: dict[str, float | None] = {}
    test_auroc: dict[str, float | None] = {}
    for method in METHODS:
        proxy[method] = held_out_cluster_auroc(
            method, train.first(), val.first(), options.k, options.bank_size, seed
        )
    if test is not None:
        for method in (*METHODS, "hybrid"):
            detector = fit_detector(method, options, train, val, seed)
            test_auroc[method] = auroc(test[1], article_raw(detector, test[0]))
    if options.method == "hybrid":
        rule = "hybrid, the default (--method auto chooses kNN or Mahalanobis by the held-out clusters)"
        return Selection("hybrid", rule, proxy, test_auroc)
    if options.method != "auto":
        return Selection(options.method, "named by --method", proxy, test_auroc)
    if any(v is None for v in proxy.values()):
        return Selection(
            "knn", "too few articles for the held-out-cluster validation: kNN", proxy, test_auroc
        )
    chosen = max(METHODS, key=lambda m: (proxy[m] or 0.0, m == "knn"))
    return Selection(chosen, "highest held-out-cluster AUROC on validation", proxy, test_auroc)


def novelty_graph(pooler: Any, detector: detectors.Detector, temperature: float, bias: float) -> Any:
    torch = import_torch()

    class WindowNovelty(torch.nn.Module):  # type: ignore[misc, name-defined]
        """Raw statistic per window: embedding, then its distance to normal."""

        def __init__(self) -> None:
            super().__init__()
            self.embedding = pooler
            self.distance = detector.head()

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.distance(self.embedding(input_ids, attention_mask))

    return calibrated(WindowNovelty(), temperature, bias)


def train_novelty(options: UnlabeledOptions) -> Bundle:
    from training.labelfree import report as unlabeled_report

    check_options(options)
    seed = options.train.seed
    data: NormalData = unlabeled.load_normal(options, seed)
    base, encoder_model, hf_tokenizer = unlabeled.load_base_model(options)
    with publishing(options.out, options.force) as folder:
        encoder, special = save_tokenizer(hf_tokenizer, folder, options.windowing)
        notes = list(data.notes)
        notes.append(
            f"normal: train {len(data.train.articles)} articles, val {len(data.val.articles)}"
            + (
                f"; test {len(data.test.articles)} ({int(data.test.labels.sum())} anomalous)"
                if data.test
                else ""
            )
        )
        pooler = build_pooler(encoder_model)
        encoder_kind: Literal["frozen", "adapted"] = "frozen"
        if options.encoder == "adapted":
            from training.labelfree.adapt import AdaptConfig, adapt

            log("adapting the encoder to the normal articles")
            _prefix, report_line = adapt(
                pooler,
                encoder,
                data.train.texts,
                AdaptConfig(steps=options.adapt_steps, seed=seed, train_layers=options.train.train_layers),
            )
            notes.append(report_line)
            encoder_kind = "adapted"
        log("embedding the normal articles")
        bf16 = options.train.bf16
        train = embed(pooler, encoder, data.train.texts, bf16=bf16, desc="train")
        val = embed(pooler, encoder, data.val.texts, bf16=bf16, desc="val")
        test = None
        if data.test is not None:
            test = (embed(pooler, encoder, data.test.texts, bf16=bf16, desc="test"), data.test.labels)
        if train.n_texts > options.bank_size:
            notes.append(
                f"the {train.n_texts} normal articles exceed the bank bound of {options.bank_size}: "
                f"the bank is a uniform random sample of {options.bank_size} of their first windows"
            )
        selection = select_method(options, train, val, test, seed)
        notes.append(
            f"method: {selection.chosen} ({selection.rule}); held-out-cluster AUROC "
            + ", ".join(f"{m} {_f(v)}" for m, v in selection.proxy.items())
        )
        detector = fit_detector(selection.chosen, options, train, val, seed)
        val_raw = article_raw(detector, val)
        temperature, bias, quantile = unlabeled.false_alarm_calibration(
            val_raw, options.target_false_alarm_rate
        )
        notes.append(
            f"calibration: raw statistic {quantile:.5f} (the {1 - options.target_false_alarm_rate:.1%} "
            f"quantile of val) maps to 0.5; score = sigmoid(raw / {temperature:.5f} + {bias:.4f})"
        )
        bank = _bank(detector)
        method = Method(
            name=selection.chosen,
            description=_describe(detector),
            encoder=encoder_kind,
            parameters={
                **detector.parameters(),
                "selection": selection.rule,
                "held_out_cluster_auroc": selection.proxy,
                "embedding": "mean-pooled last hidden state, L2-normalised",
            },
            bank_size=None if bank is None else len(bank),
            bank_bound=None if bank is None else options.bank_size,
        )
        manifest = unlabeled.new_manifest(options, base, special, method, temperature, bias)
        graph = novelty_graph(pooler, detector, temperature, bias)
        shipped = unlabeled.ship(
            graph,
            encoder,
            manifest,
            data,
            folder,
            options,
            keep_fp32=("normal_bank_t", "normal_mean", "normal_whitening"),
        )
        extra = {"test_auroc_by_method": selection.test} if selection.test else {}
        unlabeled_report.finish(folder, manifest, options, data, shipped, notes, extra)
    return load_bundle(options.out)


def _bank(detector: detectors.Detector) -> FloatArray | None:
    if isinstance(detector, detectors.Hybrid):
        return detector.knn.bank
    return detector.bank if isinstance(detector, detectors.Knn) else None


def _describe(detector: detectors.Detector) -> str:
    if isinstance(detector, detectors.Hybrid):
        return (
            f"{_describe(detector.knn)}, plus {detector.weight} x {_describe(detector.mahalanobis)}, "
            "each as a z-score on held-out normal windows"
        )
    if isinstance(detector, detectors.Knn):
        return (
            f"mean cosine distance of the window's embedding to its {detector.k} nearest neighbours "
            f"among {len(detector.bank)} normal window embeddings"
        )
    return "squared Mahalanobis distance of the window's embedding to the normal windows (Ledoit-Wolf)"


def _f(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
