"""Windows cover long texts, batches are length-sorted and padded, articles take their maximum."""

import numpy as np
import pytest
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace

from stream.scoring.encoding import Encoder, Windowing, max_per_owner, mean_logit_per_owner


def _encoder(windowing: Windowing) -> Encoder:
    vocab = {"[PAD]": 0, "[CLS]": 1, "[SEP]": 2, "[UNK]": 3} | {f"w{i}": i + 4 for i in range(2000)}
    tokenizer = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = Whitespace()
    return Encoder(tokenizer, windowing)


def _text(n: int) -> str:
    return " ".join(f"w{i}" for i in range(n))


@pytest.mark.parametrize("n", [0, 1, 14, 15, 16, 30, 31, 45, 100])
def test_windows_cover_every_token_up_to_the_cap(n: int) -> None:
    encoder = _encoder(Windowing(max_length=16, stride=10, max_windows=20))
    windows = encoder.windows_of(encoder.token_ids([_text(n)])[0])
    covered = set()
    for w in windows:
        assert w[0] == 1
        assert w[-1] == 2
        assert len(w) <= 16
        covered |= {int(t) for t in w[1:-1]}
    assert covered == {i + 4 for i in range(n)}


def test_max_windows_caps_long_texts_and_overlap_is_stride() -> None:
    encoder = _encoder(Windowing(max_length=16, stride=10, max_windows=3))
    windows = encoder.windows_of(encoder.token_ids([_text(500)])[0])
    assert len(windows) == 3
    assert [int(w[1]) - 4 for w in windows] == [0, 10, 20]


def test_batches_sort_by_length_and_pad_with_pad_id() -> None:
    encoder = _encoder(Windowing(max_length=16, stride=14, max_windows=4))
    encoded = encoder.encode([_text(40), _text(3), _text(9)])
    assert encoded.n_texts == 3
    assert list(encoded.owner) == [0, 0, 0, 1, 2]
    batches = list(encoder.batches(encoded, batch_size=2))
    widths = [b.input_ids.shape[1] for b in batches]
    assert widths == sorted(widths)
    rows = np.concatenate([b.rows for b in batches])
    assert sorted(rows.tolist()) == list(range(len(encoded.windows)))
    first = batches[0]
    assert first.input_ids[0, -1] == 0
    assert first.attention_mask[0].sum() == 5


def test_char_cap_spares_the_tokenizer_huge_texts() -> None:
    windowing = Windowing(max_length=16, stride=10, max_windows=2)
    encoder = _encoder(windowing)
    huge = "w1 " * 1_000_000
    assert len(encoder.token_ids([huge])[0]) <= windowing.char_cap


def test_mean_logit_per_owner_is_the_calibration_of_the_mean_raw_statistic() -> None:
    raw = np.array([0.3, 2.5, -1.0, 0.9, 40.0], dtype=np.float64)
    owner = np.array([0, 0, 1, 2, 2])
    temperature, bias = 0.4, -1.5
    scores = (1 / (1 + np.exp(-(raw / temperature + bias)))).astype(np.float32)
    expected = [1 / (1 + np.exp(-(raw[o].mean() / temperature + bias))) for o in ([0, 1], [2], [3, 4])]
    got = mean_logit_per_owner(scores, owner, 3)
    assert got[:2].tolist() == pytest.approx(expected[:2], rel=1e-5)
    assert got[1] == pytest.approx(scores[2], rel=1e-6)  # one window: its own score
    # a window saturated at 1.0 in float32 counts as a large finite log-odds, not infinity
    assert 0.99 < got[2] < 1.0
    assert np.isfinite(got).all()


def test_max_per_owner() -> None:
    values = np.array([0.1, 0.7, 0.3, 0.2, 0.9], dtype=np.float32)
    owner = np.array([0, 0, 0, 1, 2])
    assert max_per_owner(values, owner, 3).tolist() == pytest.approx([0.7, 0.2, 0.9])


def test_windowing_rejects_impossible_settings() -> None:
    with pytest.raises(ValueError, match="stride"):
        Windowing(max_length=16, stride=15)
    with pytest.raises(ValueError, match="max_windows"):
        Windowing(max_windows=0)
