"""Tokenization and the long-text strategy, shared by training and scoring.

Long articles are cut into overlapping windows of ``max_length`` tokens; each window is scored
and an article's score is the maximum over its windows (``chunk_max``), their mean
(``chunk_mean``), the mean of their log-odds (``chunk_mean_logit``, the label-free modes: a
score calibrated as sigmoid(raw / T + b) then becomes the calibration of the windows' mean raw
statistic; see training/labelfree/base.py), or a small logistic head over the windows' log-odds
(``doc_head``: the lead window, the best window, their mean and the window count, so that a
feature that recalls an attack in its tenth paragraph is not scored as the attack's report).
Only the first ``max_windows`` windows are read; beyond that the tail is dropped, and the
manifest says so.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

from stream.errors import BundleError

# A WordPiece token averages about 4.5 characters of English; 12 leaves room for numbers and
# names while sparing the tokenizer a 10 MB text it would tokenize in full before we cut it.
_CHARS_PER_TOKEN_CAP = 12

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Windowing:
    max_length: int = 256
    stride: int = 224
    max_windows: int = 8

    def __post_init__(self) -> None:
        if self.max_length < 8:
            raise ValueError("max_length must be at least 8 tokens")
        if not 0 < self.stride <= self.max_length - 2:
            raise ValueError("stride must be between 1 and max_length - 2")
        if self.max_windows < 1:
            raise ValueError("max_windows must be at least 1")

    @property
    def body_tokens(self) -> int:
        return self.max_length - 2

    @property
    def char_cap(self) -> int:
        return (self.stride * (self.max_windows - 1) + self.body_tokens) * _CHARS_PER_TOKEN_CAP


@dataclass(frozen=True)
class Encoded:
    """Windows of a batch of texts: ``windows[i]`` belongs to text ``owner[i]``."""

    windows: list[IntArray]
    owner: IntArray
    n_texts: int

    @property
    def lengths(self) -> IntArray:
        return np.fromiter((len(w) for w in self.windows), dtype=np.int64, count=len(self.windows))

    @property
    def leads(self) -> npt.NDArray[np.bool_]:
        """Which windows are their text's first (every text has at least one window)."""
        first = np.ones(len(self.windows), dtype=bool)
        first[1:] = self.owner[1:] != self.owner[:-1]
        return first

    def subset(self, keep: npt.NDArray[np.bool_]) -> "Encoded":
        """The windows where keep is true, with their owners (texts keep their numbers)."""
        rows = np.flatnonzero(keep)
        return Encoded([self.windows[i] for i in rows], self.owner[rows], self.n_texts)


@dataclass(frozen=True)
class Batch:
    input_ids: IntArray
    attention_mask: IntArray
    rows: IntArray  # indices into Encoded.windows


class Encoder:
    def __init__(
        self,
        tokenizer: Tokenizer,
        windowing: Windowing,
        *,
        cls_token: str = "[CLS]",
        sep_token: str = "[SEP]",
        pad_token: str = "[PAD]",
    ) -> None:
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self.tokenizer = tokenizer
        self.windowing = windowing
        ids = [tokenizer.token_to_id(t) for t in (cls_token, sep_token, pad_token)]
        found = [i for i in ids if i is not None]
        if len(found) != len(ids):
            raise BundleError(f"tokenizer has no id for one of {cls_token!r}, {sep_token!r}, {pad_token!r}")
        self.cls_id, self.sep_id, self.pad_id = found

    @classmethod
    def from_file(cls, path: str | Path, windowing: Windowing, **special: str) -> "Encoder":
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # the Rust side raises plain Exception
            raise BundleError(f"{path}: not a valid tokenizer.json ({exc})") from None
        return cls(tokenizer, windowing, **special)

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        cap = self.windowing.char_cap
        encodings = self.tokenizer.encode_batch([t[:cap] for t in texts], add_special_tokens=False)
        return [e.ids for e in encodings]

    def spans(self, n_tokens: int) -> list[tuple[int, int]]:
        """Token ranges [start, stop) of the windows over a text of n_tokens tokens."""
        w = self.windowing
        body = w.body_tokens
        starts = list(range(0, max(n_tokens - body, 0) + 1, w.stride))
        if starts[-1] + body < n_tokens:
            starts.append(starts[-1] + w.stride)
        return [(start, min(start + body, n_tokens)) for start in starts[: w.max_windows]]

    def windows_of(self, ids: Sequence[int]) -> list[IntArray]:
        return [
            np.asarray([self.cls_id, *ids[start:stop], self.sep_id], dtype=np.int64)
            for start, stop in self.spans(len(ids))
        ]

    def encode(self, texts: Sequence[str]) -> Encoded:
        windows: list[IntArray] = []
        owner: list[int] = []
        for index, ids in enumerate(self.token_ids(texts)):
            pieces = self.windows_of(ids)
            windows.extend(pieces)
            owner.extend([index] * len(pieces))
        return Encoded(windows, np.asarray(owner, dtype=np.int64), len(texts))

    def batches(self, encoded: Encoded, batch_size: int) -> Iterator[Batch]:
        """Mini-batches of batch_size windows, sorted by length and padded to their own longest.

        Measured on a mixed news feed: 2.8x the throughput of padding to max_length.
        """
        order = np.argsort(encoded.lengths, kind="stable")
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            yield self.pad([encoded.windows[i] for i in rows], rows)

    def token_batches(self, encoded: Encoded, token_budget: int, max_rows: int = 512) -> Iterator[Batch]:
        """Length-sorted mini-batches of at most token_budget padded tokens (rows x width) each.

        Short windows go many to a call and long ones few, so every call does about the same
        work: a fixed count gives calls of 8 x 20 tokens next to calls of 8 x 256. A window longer
        than the budget goes alone.
        """
        lengths = encoded.lengths
        order = np.argsort(lengths, kind="stable")
        start = 0
        while start < len(order):
            stop = start + 1
            # Ascending lengths: the window being added is the widest of its batch so far.
            while (
                stop < len(order)
                and stop - start < max_rows
                and (stop - start + 1) * int(lengths[order[stop]]) <= token_budget
            ):
                stop += 1
            rows = order[start:stop]
            yield self.pad([encoded.windows[i] for i in rows], rows)
            start = stop

    def pad(self, windows: Sequence[IntArray], rows: IntArray) -> Batch:
        width = max(len(w) for w in windows)
        input_ids = np.full((len(windows), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(windows), width), dtype=np.int64)
        for i, w in enumerate(windows):
            input_ids[i, : len(w)] = w
            mask[i, : len(w)] = 1
        return Batch(input_ids, mask, rows)


def mean_per_owner(values: npt.NDArray[np.float32], owner: IntArray, n: int) -> npt.NDArray[np.float32]:
    """The mean value per owner; every owner must have at least one value."""
    total = np.zeros(n, dtype=np.float64)
    np.add.at(total, owner, values)
    return (total / np.bincount(owner, minlength=n)).astype(np.float32)


def mean_logit_per_owner(values: npt.NDArray[np.float32], owner: IntArray, n: int) -> npt.NDArray[np.float32]:
    """sigmoid of the mean log-odds per owner; one value per owner comes back unchanged.

    Scores at exactly 0 or 1 (a float32 sigmoid past about +-17) count as +-27.6 log-odds.
    """
    mean = mean_per_owner(log_odds(values).astype(np.float32), owner, n).astype(np.float64)
    return (1.0 / (1.0 + np.exp(-mean))).astype(np.float32)


# The features of the doc_head strategy, in the order of its weights.
HEAD_FEATURES = ("lead", "max", "mean", "windows")


def log_odds(values: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """Scores back to log-odds; 0 and 1 (a float32 sigmoid past about +-17) count as +-27.6."""
    p = np.clip(values.astype(np.float64), 1e-12, 1.0 - 1e-12)
    return np.asarray(np.log(p) - np.log1p(-p), dtype=np.float64)


def window_features(values: npt.NDArray[np.float32], owner: IntArray, n: int) -> npt.NDArray[np.float64]:
    """Per owner (rows) the HEAD_FEATURES of its windows' scores; windows of an owner are in order.

    lead: the first window's log-odds (headline and lead paragraph); max and mean over the
    windows' log-odds; windows: how many there are, minus one (0 for a short text).
    """
    z = log_odds(values)
    counts = np.bincount(owner, minlength=n)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    total = np.zeros(n, dtype=np.float64)
    np.add.at(total, owner, z)
    best = np.full(n, -np.inf, dtype=np.float64)
    np.maximum.at(best, owner, z)
    return np.stack([z[starts], best, total / counts, counts - 1.0], axis=1)


def head_per_owner(
    values: npt.NDArray[np.float32],
    owner: IntArray,
    n: int,
    weights: Sequence[float],
    bias: float,
) -> npt.NDArray[np.float32]:
    """sigmoid(weights . window_features + bias) per owner: the doc_head strategy."""
    # A head may use a prefix of HEAD_FEATURES (the manifest checks it is one).
    logit = (
        window_features(values, owner, n)[:, : len(weights)] @ np.asarray(weights, dtype=np.float64) + bias
    )
    return (1.0 / (1.0 + np.exp(-logit))).astype(np.float32)


def read_by_lead(
    leads: npt.NDArray[np.float32],
    counts: IntArray,
    weights: Sequence[float],
    bias: float,
    bound: float,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """Lead first (long_text.read_more_above): per text, its lead alone's score (the head over its
    lead window as a one-window text), and whether that score is all it gets: more than one
    window, and the lead alone below the bound."""
    n = len(leads)
    alone = head_per_owner(leads, np.arange(n, dtype=np.int64), n, weights, bias)
    return alone, (np.asarray(counts) > 1) & (alone < bound)


def max_per_owner(values: npt.NDArray[np.float32], owner: IntArray, n: int) -> npt.NDArray[np.float32]:
    """The largest value per owner; every owner must have at least one value."""
    out = np.full(n, -np.inf, dtype=np.float32)
    np.maximum.at(out, owner, values)
    return out
