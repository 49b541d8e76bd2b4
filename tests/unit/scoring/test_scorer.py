"""The scorer on a toy ONNX graph: batching by token budget, IO binding, providers, the best window."""

from pathlib import Path

import numpy as np
import pytest

from stream.errors import ConfigError
from stream.scoring import providers
from stream.scoring.bundle import load_bundle
from stream.scoring.explain import Alerted, Explainer
from stream.scoring.scorer import Scorer, best_per_owner
from stream.scoring.text import article_text
from tests.unit import toy_bundle
from tests.unit.toy_bundle import text, toy_score

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def bundle_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return toy_bundle.build(tmp_path_factory.mktemp("toy") / "bundle")


def _texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [text(*rng.integers(0, 1000, size=int(rng.integers(1, 40))).tolist()) for _ in range(n)]


def test_scores_are_the_graphs_whatever_the_batching(bundle_path: Path) -> None:
    texts = _texts(60)
    bundle = load_bundle(bundle_path)
    reference = Scorer(bundle, providers="cpu", sessions=1, token_budget=16).score(texts).scores
    for budget, sessions in [(64, 1), (4096, 1), (200, 2)]:
        scorer = Scorer(bundle, providers="cpu", sessions=sessions, token_budget=budget)
        got = scorer.score(texts).scores
        assert np.abs(got - reference).max() < 1e-5
    alone = np.array([Scorer(bundle, providers="cpu").score([t]).scores[0] for t in texts[:10]])
    assert np.abs(alone - reference[:10]).max() < 1e-5
    encoder = Scorer(bundle, providers="cpu").encoder
    first_window = encoder.windows_of(encoder.token_ids([texts[0]])[0])[0].tolist()
    assert reference[0] >= toy_score(first_window) - 1e-5  # the max over its windows


def test_io_binding_gives_the_same_scores_as_plain_runs(bundle_path: Path) -> None:
    texts = _texts(20, seed=1)
    bundle = load_bundle(bundle_path)
    plain = Scorer(bundle, providers="cpu", io_binding=False).score(texts).scores
    bound = Scorer(bundle, providers="cpu", io_binding=True).score(texts).scores
    assert np.array_equal(plain, bound)


def test_the_scorer_says_which_window_each_score_came_from(bundle_path: Path) -> None:
    scorer = Scorer(load_bundle(bundle_path), providers="cpu")
    low, high = [5] * 14, [990] * 14
    texts = [text(*low, *low, *high), text(*high), text(*high, *low, *low)]
    scores = scorer.score(texts)
    assert scores.best is not None
    for t, best, score in zip(texts, scores.best, scores.scores, strict=True):
        windows = [w.tolist() for w in scorer.encoder.windows_of(scorer.encoder.token_ids([t])[0])]
        expected = [toy_score(w) for w in windows]
        assert best == int(np.argmax(expected))
        assert score == pytest.approx(max(expected), abs=1e-5)
    assert scores.best.tolist() == [3, 0, 0]  # the windows start at tokens 0, 10, 20 and 30


def test_best_per_owner_takes_the_first_largest_of_each_owner() -> None:
    values = np.array([0.1, 0.7, 0.7, 0.2, 0.9, 0.3], dtype=np.float32)
    owner = np.array([0, 0, 0, 1, 2, 2])
    assert best_per_owner(values, owner, 3).tolist() == [1, 0, 0]


def test_dynamic_int8_bundles_keep_one_window_per_call(tmp_path: Path) -> None:
    old = Scorer(load_bundle(toy_bundle.build(tmp_path / "dyn", precision="int8")), providers="cpu")
    new = Scorer(
        load_bundle(toy_bundle.build(tmp_path / "static", precision="int8", quantization="static")),
        providers="cpu",
    )
    encoded = old.encoder.encode(_texts(12))
    assert all(len(b.rows) == 1 for b in old.batches(encoded))
    assert len(new.batches(encoded)) < len(encoded.windows)


def test_token_budget_bounds_the_padded_tokens_of_each_call(bundle_path: Path) -> None:
    scorer = Scorer(load_bundle(bundle_path), providers="cpu", token_budget=48, batch_size=5)
    encoded = scorer.encoder.encode(_texts(40, seed=2))
    batches = scorer.batches(encoded)
    assert sorted(np.concatenate([b.rows for b in batches]).tolist()) == list(range(len(encoded.windows)))
    for batch in batches:
        rows, width = batch.input_ids.shape
        assert rows <= 5
        assert rows * width <= 48 or rows == 1


def test_auto_prefers_cuda_then_openvino_on_amx_or_vnni_cpus_then_cpu() -> None:
    assert providers.auto_order({"cpu"}, {"avx2"}) == ["cpu"]
    assert providers.auto_order({"cpu", "cuda", "openvino"}, {"avx2"}) == ["cuda", "cpu"]
    assert providers.auto_order({"cpu", "openvino"}, {"avx2", "fma"}) == ["cpu"]
    assert providers.auto_order({"cpu", "openvino"}, {"avx512_vnni"}) == ["openvino", "cpu"]
    assert providers.auto_order({"cpu", "cuda", "openvino"}, {"amx_int8"}) == ["cuda", "openvino", "cpu"]


def test_a_provider_that_is_not_installed_fails_with_what_to_install(
    bundle_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(providers, "offered", lambda: {"cpu"})
    with pytest.raises(ConfigError, match="onnxruntime-gpu"):
        Scorer(load_bundle(bundle_path), providers="cuda")
    with pytest.raises(ConfigError, match="openvino"):
        Scorer(load_bundle(bundle_path), providers="openvino")


def test_auto_falls_back_to_cpu_when_a_gpu_build_finds_no_gpu(
    bundle_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = providers.open_session
    tried: list[str] = []

    def no_gpu(model: Path, name: providers.Name, threads: int) -> providers.Opened:
        tried.append(name)
        if name == "cuda":
            raise ConfigError("execution provider 'cuda' did not take the model")
        return opened(model, name, threads)

    monkeypatch.setattr(providers, "offered", lambda: {"cpu", "cuda"})
    monkeypatch.setattr(providers, "open_session", no_gpu)
    scorer = Scorer(load_bundle(bundle_path), providers="auto", sessions=1)
    assert tried == ["cuda", "cpu"]
    assert scorer.provider == "cpu"
    assert scorer.io_binding is False
    assert scorer.token_budget == 2048


def test_explanations_of_a_batch_equal_those_of_each_alert(bundle_path: Path) -> None:
    scorer = Scorer(load_bundle(bundle_path), providers="cpu")
    explainer = Explainer(scorer)
    articles = [
        (None, f"{text(900, 950)}. {text(5, 6, 7)}. {text(800)}."),
        ("Title w10", f"{text(10, 20)}. {text(990, 991, 992)}."),
        (None, f"{text(900, 950)}. {text(5, 6, 7)}. {text(800)}."),  # a wire copy of the first
        (None, "w999"),
    ]
    alerts = [Alerted(t, body, article_text(t, body)) for t, body in articles]
    one_by_one = [explainer(a.title, a.text, a.cleaned) for a in alerts]
    explainer.texts_scored = 0
    together = explainer.explain_batch(alerts)
    assert together == one_by_one
    # The wire copy costs nothing: its texts are the first one's.
    assert explainer.texts_scored == len(
        {t for a in alerts[:2] + alerts[3:] for t in _texts_of(explainer, a)}
    )
    top = together[0][0]
    assert top.sentence == f"{text(900, 950)}."
    # Its contribution is the drop of the window's score without it.
    base = scorer.score([alerts[0].cleaned]).scores[0]
    without = scorer.score([article_text(None, f"{text(5, 6, 7)}. {text(800)}.")]).scores[0]
    assert top.contribution == pytest.approx(float(base - without), abs=1e-4)


def test_an_alerts_own_score_spares_scoring_its_window_and_two_sentences_cost_two_texts(
    bundle_path: Path,
) -> None:
    scorer = Scorer(load_bundle(bundle_path), providers="cpu")
    explainer = Explainer(scorer)
    body = f"{text(900, 950)}.   {text(5, 6, 7)}."
    cleaned = article_text(None, body)
    score = float(scorer.score([cleaned]).scores[0])
    rescored = explainer.explain_batch([Alerted(None, body, cleaned)])
    explainer.texts_scored = 0
    given = explainer.explain_batch([Alerted(None, body, cleaned, score=score)])
    assert given == rescored
    # Each sentence alone is the window without the other: two texts, the window not at all.
    assert explainer.texts_scored == 2


def test_occlude_limits_the_occluded_sentences_to_the_best_alone(bundle_path: Path) -> None:
    scorer = Scorer(load_bundle(bundle_path), providers="cpu")
    body = ". ".join(text(i * 100 + 5) for i in range(8)) + "."
    alert = Alerted(None, body, article_text(None, body))
    everything = Explainer(scorer, occlude=0).explain_batch([alert])[0]
    some = Explainer(scorer, occlude=3).explain_batch([alert])[0]
    assert [p.sentence for p in some] == [p.sentence for p in everything]


def _texts_of(explainer: Explainer, alert: Alerted) -> set[str]:
    work = explainer._prepare(alert)
    return {work.window, *work.alone, *work.without} if work.inside else set()


def test_sessions_follow_the_cores_this_process_may_use(
    bundle_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Under `taskset -c 0` (or a cpuset) the machine's core count would oversubscribe one core.
    monkeypatch.setattr(providers.os, "sched_getaffinity", lambda pid: {0})
    assert providers.usable_cores() == 1
    assert len(Scorer(load_bundle(bundle_path), providers="cpu").sessions) == 1
    monkeypatch.setattr(providers.os, "sched_getaffinity", lambda pid: {0, 1, 2})
    assert len(Scorer(load_bundle(bundle_path), providers="cpu").sessions) == 3
