"""report.md and its plots: what a reader of a bundle wants to see before trusting it."""

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt

from stream.scoring.bundle import Manifest
from stream.scoring.evaluate import Evaluation
from stream.scoring.metrics import Metrics, pr_curve

Curves = Mapping[str, Mapping[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.floating]]]]


def _f(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def metrics_table(metrics: Mapping[str, Mapping[str, Metrics]]) -> str:
    rows = [
        "| data | system | articles | positives | threshold | precision | recall | F1 | AUROC | AUPRC | TP | FP | TN | FN |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for split, systems in metrics.items():
        for system, m in systems.items():
            c = m.confusion
            rows.append(
                f"| {split} | {system} | {m.n} | {m.positives} | {m.threshold:.4f} | {m.precision:.4f} | "
                f"{m.recall:.4f} | {m.f1:.4f} | {_f(m.auroc)} | {_f(m.auprc)} | {c.tp} | {c.fp} | {c.tn} | {c.fn} |"
            )
    return "\n".join(rows)


def _within(value: float, low: float, high: float, signed: bool = False) -> str:
    sign = "+" if signed else ""
    return f"{value:{sign}.3f} [{low:{sign}.3f}, {high:{sign}.3f}]"


def intervals_table(
    metrics: Mapping[str, Mapping[str, Metrics]],
    margins: Mapping[str, Mapping[str, Mapping[str, Mapping[str, float]]]],
    system: str = "model",
    other: str = "baseline",
) -> str:
    """The model's figures with their 95% intervals, and its margin over the TF-IDF baseline on the
    same resamples (the share of resamples where the model is ahead after it), for every data row
    that has them."""
    rows = [
        f"| data | positives | {system} precision | recall | AUPRC "
        f"| {system} - {other}: precision | recall | AUPRC |",
        "|---|---:|---|---|---|---|---|---|",
    ]
    for data, systems in metrics.items():
        m = systems.get(system)
        margin = margins.get(data, {}).get(other)
        if m is None or m.intervals is None or margin is None:
            continue
        values = {"precision": m.precision, "recall": m.recall, "auprc": m.auprc or 0.0}
        own = [_within(values[f], m.intervals[f].low, m.intervals[f].high) for f in values]
        versus = [
            f"{_within(margin[f]['difference'], margin[f]['low'], margin[f]['high'], signed=True)}, "
            f"{margin[f]['ahead']:.0%}"
            for f in values
        ]
        rows.append(f"| {data} | {m.positives} | " + " | ".join(own + versus) + " |")
    return "\n".join(rows)


def plot_pr_curves(curves: Curves, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(3, len(curves))
    rows = -(-len(curves) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.5 * columns, 4.5 * rows), squeeze=False)
    for ax in axes.flat[len(curves) :]:
        ax.axis("off")
    for ax, (split, systems) in zip(axes.flat, curves.items(), strict=False):
        for system, (labels, scores) in systems.items():
            precision, recall, _ = pr_curve(labels, scores)
            ax.step(np.r_[0.0, recall], np.r_[1.0, precision], where="post", label=system)
        prevalence = float(np.mean(next(iter(systems.values()))[0]))
        ax.axhline(prevalence, color="grey", linestyle=":", label=f"prevalence {prevalence:.3f}")
        ax.set(
            title=f"Precision-recall: {split}",
            xlabel="recall",
            ylabel="precision",
            xlim=(0, 1),
            ylim=(0, 1.02),
        )
        ax.legend(loc="lower left")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_score_histogram(
    groups: Mapping[str, npt.NDArray[np.floating]], threshold: float, path: Path, title: str
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    bins = [i / 40 for i in range(41)]
    for name, scores in groups.items():
        if len(scores):
            ax.hist(scores, bins=bins, alpha=0.55, label=f"{name} ({len(scores)})")
    ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.3f}")
    ax.set(title=title, xlabel="score", ylabel="articles (log scale)", yscale="log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(
    path: Path,
    manifest: Manifest,
    composition: Mapping[str, Mapping[str, int]],
    unlabeled: Evaluation | None,
    calibration_notes: str,
    training_log: list[str],
) -> None:
    m = manifest
    lines = [
        f"# {m.name} {m.version}",
        "",
        f"Created {m.created_at:%Y-%m-%d %H:%M} UTC from `{m.base_model.name}`; mode `{m.mode}`; "
        f"shipped precision **{m.precision}** ({m.precision_reason}).",
        "",
        f"Alert threshold **{m.threshold:.4f}** on the calibrated score ({m.threshold_rule}).",
        f"Long texts: `{m.long_text.strategy}`, windows of {m.max_length} tokens every "
        f"{m.long_text.stride} tokens, at most {m.long_text.max_windows} windows per article.",
        "",
        "## Results",
        "",
        "Every figure comes from held-out data through ONNX Runtime with the bundle's own "
        "preprocessing, per domain: `(MUC)` is the 1989-91 MUC-3/4 reports alone (tst3+tst4), "
        "`(modern)` the modern news items of years the model never saw (2017-2018, labelled by the "
        "rules of docs/labeling-guide.md); `stream` is the labeled part of `data/stream.jsonl`, "
        "where attack reports are rare. Two baselines: `baseline` is TF-IDF + logistic regression "
        "trained on the same splits; `description prior` is the untuned base encoder's similarity "
        "to plain-English descriptions of attack reports and of other news. Each system's threshold "
        "is chosen on validation.",
        "",
        metrics_table(m.metrics),
        "",
        "### How sure these figures are",
        "",
        "95% intervals from a stratified bootstrap (1,000 resamples of each row's attack reports "
        "and other articles apart, so each keeps its prevalence): a row with few attack reports "
        "is far less certain than its four decimals suggest. The margin over the TF-IDF baseline "
        "is paired (both systems on the same resamples), with the share of resamples in which the "
        "model is ahead.",
        "",
        intervals_table(m.metrics, m.extra_metrics.get("margins", {})),
        "",
        "![precision-recall curves](pr_curve.png)",
        "",
        "![score histogram](score_hist.png)",
        "",
    ]
    if unlabeled is not None and unlabeled.unlabeled:
        lines += [
            "## Unlabeled AG News World articles in the stream",
            "",
            f"{unlabeled.unlabeled_alerts} of {unlabeled.unlabeled} articles "
            f"({(unlabeled.unlabeled_alert_rate or 0):.2%}) score at or above the threshold. "
            "About a quarter of AG World reports real attacks; nobody labeled them. The highest scored:",
            "",
            "| score | title |",
            "|---:|---|",
            *[f"| {t.score:.3f} | {t.title.replace('|', '/')} |" for t in unlabeled.top_unlabeled],
            "",
        ]
    lines += [
        "## Data",
        "",
        "| split | " + " | ".join(composition) + " |",
        "|---|" + "---:|" * len(composition),
    ]
    keys = sorted({k for row in composition.values() for k in row})
    for key in keys:
        lines.append(f"| {key} | " + " | ".join(str(row.get(key, 0)) for row in composition.values()) + " |")
    lines += [
        "",
        "## Calibration",
        "",
        calibration_notes,
        "",
        "## Training",
        "",
        *[f"- {line}" for line in training_log],
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
