"""Scoring texts with a bundle through ONNX Runtime: the only place a model runs when serving."""

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from stream.bundle import Bundle
from stream.encoding import Batch, Encoded, Encoder, max_per_owner, mean_per_owner
from stream.errors import BundleError, ConfigError, ScoringError

Providers = Literal["auto", "cpu", "cuda"]
_PROVIDER_NAMES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def resolve_providers(choice: Providers) -> list[str]:
    """CUDA when asked for, or when "auto" and onnxruntime-gpu sees a GPU; CPU otherwise."""
    available = ort.get_available_providers()
    if choice == "auto":
        choice = "cuda" if _PROVIDER_NAMES["cuda"] in available else "cpu"
    name = _PROVIDER_NAMES[choice]
    if name not in available:
        raise ConfigError(
            f"execution provider {choice!r} is not available in this onnxruntime "
            f"(has {', '.join(available)}); install onnxruntime-gpu for CUDA"
        )
    return [name] if choice == "cpu" else [name, _PROVIDER_NAMES["cpu"]]


@dataclass(frozen=True)
class Scores:
    scores: npt.NDArray[np.float32]  # one per text
    windows: int
    tokens: int


def _session(bundle: Bundle, providers: list[str], threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(bundle.model_path), options, providers=providers)
    except (ort.capi.onnxruntime_pybind11_state.Fail, RuntimeError) as exc:
        raise BundleError(f"{bundle.model_path}: ONNX Runtime cannot load it ({exc})") from None


class Scorer:
    """Tokenizes, windows and scores texts; thread-safe.

    On CPU it runs one single-threaded ONNX Runtime session per core side by side (measured here
    on 2 cores: 222 articles/s, against 182 for one session with two threads, whose threads
    wait on each other at every small operator). On CUDA it runs one session.
    """

    def __init__(
        self,
        bundle: Bundle,
        *,
        providers: Providers = "auto",
        intra_op_threads: int = 0,
        sessions: int = 0,
        batch_size: int = 8,
    ) -> None:
        manifest = bundle.manifest
        self.bundle = bundle
        # Dynamic int8 quantization scales activations per call, over the whole batch: measured
        # here, a window's score moved by up to 0.08 with its neighbours. One window per call
        # keeps every score a function of its own article alone (and int8 is still 1.4x fp32).
        self.batch_size = 1 if manifest.precision == "int8" else batch_size
        self.threshold = manifest.threshold
        self._aggregate = mean_per_owner if manifest.long_text.strategy == "chunk_mean" else max_per_owner
        self.encoder = Encoder.from_file(
            bundle.tokenizer_path,
            manifest.windowing,
            cls_token=manifest.tokenizer.cls_token,
            sep_token=manifest.tokenizer.sep_token,
            pad_token=manifest.tokenizer.pad_token,
        )
        names = resolve_providers(providers)
        on_gpu = names[0] != _PROVIDER_NAMES["cpu"]
        cores = os.cpu_count() or 1
        if sessions:
            count = sessions
        elif on_gpu:
            count = 1
        else:
            count = max(1, cores // intra_op_threads) if intra_op_threads else cores
        threads = intra_op_threads or max(1, cores // count)
        self.sessions = [_session(bundle, names, threads) for _ in range(count)]
        self._pool = ThreadPoolExecutor(max_workers=count, thread_name_prefix="ort") if count > 1 else None
        session = self.sessions[0]
        inputs = sorted(i.name for i in session.get_inputs())
        outputs = [o.name for o in session.get_outputs()]
        if inputs != sorted(manifest.inputs) or manifest.output not in outputs:
            raise BundleError(
                f"{bundle.model_path}: graph has inputs {inputs} and outputs {outputs}, the manifest "
                f"expects inputs {manifest.inputs} and output {manifest.output!r}"
            )
        self.providers = session.get_providers()

    def score_windows(
        self,
        input_ids: npt.NDArray[np.int64],
        attention_mask: npt.NDArray[np.int64],
        session: ort.InferenceSession | None = None,
    ) -> npt.NDArray[np.float32]:
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        try:
            (out,) = (session or self.sessions[0]).run([self.bundle.manifest.output], feeds)
        except Exception as exc:  # ORT raises its own exception types
            raise ScoringError(f"ONNX Runtime failed on a batch of shape {input_ids.shape}: {exc}") from exc
        return np.asarray(out, dtype=np.float32).reshape(-1)

    def _run(self, share: list[Batch], session: ort.InferenceSession, out: npt.NDArray[np.float32]) -> None:
        for batch in share:
            out[batch.rows] = self.score_windows(batch.input_ids, batch.attention_mask, session)

    def score(self, texts: Sequence[str]) -> Scores:
        """Scores for cleaned texts (see stream.text.article_text): each text's windows aggregated
        as the manifest's long_text.strategy says (maximum, or mean)."""
        if not texts:
            return Scores(np.zeros(0, dtype=np.float32), 0, 0)
        encoded = self.encoder.encode(texts)
        return Scores(
            self._aggregate(self.window_scores(encoded), encoded.owner, encoded.n_texts),
            windows=len(encoded.windows),
            tokens=int(encoded.lengths.sum()),
        )

    def window_scores(self, encoded: Encoded) -> npt.NDArray[np.float32]:
        window_scores = np.empty(len(encoded.windows), dtype=np.float32)
        batches = list(self.encoder.batches(encoded, self.batch_size))
        if self._pool is None or len(batches) == 1:
            self._run(batches, self.sessions[0], window_scores)
        else:
            # Interleaved shares: batches are sorted by length, so each session gets a fair mix.
            n = len(self.sessions)
            jobs = [
                self._pool.submit(self._run, batches[k::n], s, window_scores)
                for k, s in enumerate(self.sessions)
            ]
            for job in jobs:
                job.result()
        return window_scores
