"""The end of a label-free training run: baseline, metrics, plots, report.md and the manifest."""

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from stream.scoring.bundle import Manifest
from stream.scoring.drift import reference_from_scores
from stream.scoring.metrics import at_threshold
from training.bench.ad_baseline import fit_tfidf
from training.labelfree.base import (
    NormalData,
    Shipped,
    UnlabeledOptions,
    false_alarm_rate,
    far_threshold,
    log,
)
from training.ship import report
from training.ship.publish import record_inputs, seal

AGGREGATION = (
    "Long articles are cut into windows of {max_length} tokens every {stride} tokens (at most "
    "{max_windows}); each window is scored and the article's score is the mean of its windows' "
    "log-odds (`chunk_mean_logit`: the calibration of the windows' mean statistic; the classifier "
    "takes the maximum). A detector of the unusual that takes the maximum flags long normal "
    "articles for one unusual paragraph (a quote, a list of results): on the BBC protocol of "
    "`wirewatch bench-ad` the maximum lost about one AUROC point against the first window alone. "
    "Averaging the calibrated scores themselves squashes them through the sigmoid first: with "
    "the hybrid detector it lost 0.4 points on BBC and 0.25 on Reuters against the mean log-odds. "
    "The threshold is set on the held-out normal articles' scores, so the false-alarm rate holds "
    "for long articles too."
)


def _quantiles(scores: npt.NDArray[np.floating]) -> str:
    if not len(scores):
        return "none"
    q = np.quantile(scores, [0.1, 0.5, 0.9, 0.99])
    return f"n={len(scores)}, p10 {q[0]:.3f}, median {q[1]:.3f}, p90 {q[2]:.3f}, p99 {q[3]:.3f}"


def finish(
    folder: Path,
    manifest: Manifest,
    options: UnlabeledOptions,
    data: NormalData,
    shipped: Shipped,
    notes: list[str],
    extra: dict[str, Any],
) -> None:
    rate = options.target_false_alarm_rate
    manifest.threshold = shipped.threshold
    manifest.precision_reason = shipped.reason
    val_far = false_alarm_rate(shipped.val_scores, shipped.threshold)
    # The reference of drift (stream.scoring.drift): every val article is normal, as the feed mostly is.
    manifest.score_distribution = reference_from_scores(
        shipped.val_scores.tolist(), "held-out normal articles (val), scored by the shipped model"
    )
    manifest.extra_metrics = {
        "export_max_abs_diff": shipped.max_diff,
        "target_false_alarm_rate": rate,
        "val_false_alarm_rate": val_far,
        **extra,
    }
    groups: dict[str, npt.NDArray[np.floating]] = {"val normal": shipped.val_scores}
    curves: dict[str, dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.floating]]]] = {}
    if data.test is not None and shipped.test_scores is not None:
        labels, scores = data.test.labels, shipped.test_scores
        log("fitting the TF-IDF + kNN one-class baseline")
        baseline = fit_tfidf(data.train.texts)
        base_threshold = far_threshold(baseline.raw(data.val.texts), rate)
        base_scores = baseline.raw(data.test.texts)
        manifest.metrics = {
            "test": {**shipped.metrics, "baseline": at_threshold(labels, base_scores, base_threshold)}
        }
        manifest.extra_metrics["test_false_alarm_rate"] = false_alarm_rate(
            scores[labels == 0], shipped.threshold
        )
        groups = {
            "test normal": scores[labels == 0],
            "test anomalous": scores[labels == 1],
            "val normal": shipped.val_scores,
        }
        if 0 < labels.sum() < len(labels):
            curves = {"test": {"model": (labels, scores), "baseline": (labels, base_scores)}}
    manifest.extra_metrics["score_quantiles"] = {name: _quantiles(s) for name, s in groups.items()}
    report.plot_score_histogram(
        groups, shipped.threshold, folder / "score_hist.png", "Scores of normal and anomalous articles"
    )
    if curves:
        report.plot_pr_curves(curves, folder / "pr_curve.png")
    record_inputs(manifest, data.files)
    manifest.training = {
        "normal_source": data.train.source,
        "train_articles": len(data.train.articles),
        "val_articles": len(data.val.articles),
        "test_articles": len(data.test.articles) if data.test else 0,
        "seed": options.train.seed,
        "notes": notes,
    }
    _write_report(folder / "report.md", manifest, options, data, val_far, groups, notes, bool(curves))
    seal(folder, manifest)
    log(
        json.dumps(
            {"bundle": str(options.out), "mode": manifest.mode, "threshold": round(manifest.threshold, 4)}
        )
    )


def _write_report(
    path: Path,
    m: Manifest,
    options: UnlabeledOptions,
    data: NormalData,
    val_far: float,
    groups: dict[str, npt.NDArray[np.floating]],
    notes: list[str],
    has_curves: bool,
) -> None:
    method = m.method
    assert method is not None
    rate = options.target_false_alarm_rate
    lines = [
        f"# {m.name} {m.version}",
        "",
        f"Created {m.created_at:%Y-%m-%d %H:%M} UTC from `{m.base_model.name}`; mode **{m.mode}**, "
        f"method **{method.name}** ({method.encoder} encoder); shipped precision **{m.precision}** "
        f"({m.precision_reason}).",
        "",
        f"Score: {method.description}, calibrated inside the graph. Alert threshold **{m.threshold:.4f}** "
        f"({m.threshold_rule}); measured false-alarm rate on val {val_far:.2%}"
        + (
            f", on the normal test articles {m.extra_metrics['test_false_alarm_rate']:.2%}."
            if "test_false_alarm_rate" in m.extra_metrics
            else "."
        ),
    ]
    if method.bank_size is not None:
        lines += [
            "",
            f"Memory bank: {method.bank_size} normal window embeddings (bound {method.bank_bound}).",
        ]
    lines += ["", AGGREGATION.format(**m.long_text.model_dump(), max_length=m.max_length), ""]
    if m.metrics:
        lines += [
            "## Results on the test split",
            "",
            "Label 1 is an anomaly. The baseline is TF-IDF + kNN (k=10, cosine) fitted on the same "
            f"normal articles, its threshold also set to {rate:.2%} false alarms on val.",
            "",
            report.metrics_table(m.metrics),
            "",
        ]
        by_method = m.extra_metrics.get("test_auroc_by_method")
        if by_method:
            lines += [
                "Both methods on test (AUROC; reported, not used to choose): "
                + ", ".join(f"{k} {v:.4f}" for k, v in by_method.items() if v is not None),
                "",
            ]
        if has_curves:
            lines += ["![precision-recall curves](pr_curve.png)", ""]
    lines += [
        "## Score distributions",
        "",
        *[f"- {name}: {_quantiles(scores)}" for name, scores in groups.items()],
        "",
        "![score histogram](score_hist.png)",
        "",
        "## Data and training",
        "",
        *[f"- {line}" for line in notes],
        f"- parameters: `{json.dumps(method.parameters, default=str)}`",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
