"""Scoring texts with a bundle through ONNX Runtime: the only place a model runs when serving."""

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from stream.errors import BundleError, ScoringError
from stream.scoring.bundle import Bundle
from stream.scoring.encoding import (
    Batch,
    Encoded,
    Encoder,
    head_per_owner,
    max_per_owner,
    mean_logit_per_owner,
    mean_per_owner,
    read_by_lead,
)
from stream.scoring.providers import Choice, Name, Opened, open_first, open_session, usable_cores

# Padded tokens (windows x longest window) per ONNX Runtime call when the settings say 0. On CPU
# the cost of a call is its tokens: measured on a 2-core AVX2 EPYC, static int8 MiniLM scored
# the same windows per CPU-second from 1 to 32 windows a call, so the budget only has to keep
# calls long enough to amortise their overhead and short enough for the cache. A GPU wants
# calls as large as its memory allows.
DEFAULT_TOKENS: dict[Name, int] = {"cpu": 2048, "openvino": 4096, "cuda": 65536}
Providers = Choice  # the settings' name for it
Floats = npt.NDArray[np.float32]
Aggregate = Callable[[Floats, npt.NDArray[np.int64], int], Floats]


@dataclass(frozen=True)
class Scores:
    scores: npt.NDArray[np.float32]  # one per text
    windows: int
    tokens: int
    # Per text, which of its windows the score comes from (0 for a one-window text); None
    # where a scorer does not say.
    best: npt.NDArray[np.int64] | None = None


def best_per_owner(
    values: npt.NDArray[np.float32], owner: npt.NDArray[np.int64], n: int
) -> npt.NDArray[np.int64]:
    """Per owner, the position among its own values (in order) of its first largest value."""
    if len(values) == 0:
        return np.zeros(n, dtype=np.int64)
    order = np.lexsort((np.arange(len(values)), -values, owner))  # by owner, best first
    first = np.searchsorted(owner[order], np.arange(n))
    starts = np.searchsorted(owner, np.arange(n))  # owner is non-decreasing: texts in order
    return (order[first] - starts).astype(np.int64)


class Scorer:
    """Tokenizes, windows and scores texts; thread-safe.

    Windows go to ONNX Runtime sorted by length in calls of about ``token_budget`` padded
    tokens, so a window's score does not depend on what else is in the batch (fp32, and static
    int8 whose scales were fixed at export; tested to 1e-5). Bundles quantized dynamically before
    static quantization existed compute activation scales per call, so they keep one window per
    call.

    On CPU it runs one single-threaded session per core side by side (measured faster than one
    session with all threads, whose threads wait on each other at every small operator); on
    CUDA and OpenVINO one session, which uses the device (or all cores) itself. On CUDA inputs
    and outputs go through IO binding.
    """

    def __init__(
        self,
        bundle: Bundle,
        *,
        providers: Providers = "auto",
        intra_op_threads: int = 0,
        sessions: int = 0,
        batch_size: int = 256,
        token_budget: int = 0,
        io_binding: bool | None = None,
    ) -> None:
        manifest = bundle.manifest
        self.bundle = bundle
        self.threshold = manifest.threshold
        self.calls = 0  # model calls (batches) run so far, which benchmarks report
        self.batch_invariant = manifest.precision == "fp32" or manifest.quantization == "static"
        self._aggregate: Aggregate = {
            "chunk_max": max_per_owner,
            "chunk_mean": mean_per_owner,
            "chunk_mean_logit": mean_logit_per_owner,
            "doc_head": self._head,
        }[manifest.long_text.strategy]
        self.encoder = Encoder.from_file(
            bundle.tokenizer_path,
            manifest.windowing,
            cls_token=manifest.tokenizer.cls_token,
            sep_token=manifest.tokenizer.sep_token,
            pad_token=manifest.tokenizer.pad_token,
        )
        cores = usable_cores()

        def plan(name: Name) -> tuple[int, int]:
            """(sessions, threads per session) on a provider."""
            if sessions:
                count = sessions
            elif name != "cpu":
                count = 1
            else:
                count = max(1, cores // intra_op_threads) if intra_op_threads else cores
            return count, intra_op_threads or max(1, cores // count)

        first = open_first(bundle.model_path, providers, lambda name: plan(name)[1])
        count, threads = plan(first.name)
        opened: list[Opened] = [first]
        opened += [open_session(bundle.model_path, first.name, threads) for _ in range(count - 1)]
        self.provider: Name = first.name
        self.sessions = [o.session for o in opened]
        self.max_rows = batch_size if self.batch_invariant else 1
        self.token_budget = token_budget or DEFAULT_TOKENS[self.provider]
        self.io_binding = self.provider == "cuda" if io_binding is None else io_binding
        self._device = "cuda" if self.provider == "cuda" else "cpu"
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

    def _head(self, values: Floats, owner: npt.NDArray[np.int64], n: int) -> Floats:
        head = self.bundle.manifest.long_text.head
        assert head is not None  # the manifest requires it with doc_head
        return head_per_owner(values, owner, n, head.weights, head.bias)

    def score_windows(
        self,
        input_ids: npt.NDArray[np.int64],
        attention_mask: npt.NDArray[np.int64],
        session: ort.InferenceSession | None = None,
    ) -> npt.NDArray[np.float32]:
        session = session or self.sessions[0]
        output = self.bundle.manifest.output
        try:
            if self.io_binding:
                binding = session.io_binding()
                binding.bind_cpu_input("input_ids", input_ids)
                binding.bind_cpu_input("attention_mask", attention_mask)
                binding.bind_output(output, self._device)
                session.run_with_iobinding(binding)
                out = binding.copy_outputs_to_cpu()[0]
            else:
                (out,) = session.run([output], {"input_ids": input_ids, "attention_mask": attention_mask})
        except Exception as exc:  # ORT raises its own exception types
            raise ScoringError(f"ONNX Runtime failed on a batch of shape {input_ids.shape}: {exc}") from exc
        return np.asarray(out, dtype=np.float32).reshape(-1)

    def _run(self, share: list[Batch], session: ort.InferenceSession, out: npt.NDArray[np.float32]) -> None:
        for batch in share:
            out[batch.rows] = self.score_windows(batch.input_ids, batch.attention_mask, session)

    def score(self, texts: Sequence[str]) -> Scores:
        """Scores for cleaned texts (see stream.scoring.text.article_text): each text's windows aggregated
        as the manifest's long_text.strategy says (maximum, mean, mean log-odds, or the doc head)."""
        if not texts:
            return Scores(np.zeros(0, dtype=np.float32), 0, 0, np.zeros(0, dtype=np.int64))
        encoded = self.encoder.encode(texts)
        values, read = self.read_windows(encoded)
        owner = encoded.owner[read]
        return Scores(
            self._aggregate(values, owner, encoded.n_texts),
            windows=len(values),
            tokens=int(encoded.lengths[read].sum()),
            best=best_per_owner(values, owner, encoded.n_texts),
        )

    def read_windows(self, encoded: Encoded) -> tuple[Floats, npt.NDArray[np.bool_]]:
        """The scores of the windows read, in order, and which windows those are.

        Every window, unless the manifest sets long_text.read_more_above: then the leads go
        first, and only the texts whose lead alone reaches it have their other windows read.
        """
        lead = encoded.leads
        long_text = self.bundle.manifest.long_text
        if long_text.read_more_above is None or long_text.head is None or lead.all():
            return self.window_scores(encoded), np.ones(len(encoded.windows), dtype=bool)
        values = np.empty(len(encoded.windows), dtype=np.float32)
        values[lead] = self.window_scores(encoded.subset(lead))
        counts = np.bincount(encoded.owner, minlength=encoded.n_texts)
        _, by_lead = read_by_lead(
            values[lead], counts, long_text.head.weights, long_text.head.bias, long_text.read_more_above
        )
        rest = ~lead & ~by_lead[encoded.owner]
        if rest.any():
            values[rest] = self.window_scores(encoded.subset(rest))
        read = lead | rest
        return values[read], read

    def batches(self, encoded: Encoded) -> list[Batch]:
        if not self.batch_invariant:
            return list(self.encoder.batches(encoded, 1))
        return list(self.encoder.token_batches(encoded, self.token_budget, self.max_rows))

    def window_scores(self, encoded: Encoded) -> npt.NDArray[np.float32]:
        return self.run_batches(self.batches(encoded), len(encoded.windows))

    def run_batches(self, batches: Sequence[Batch], windows: int) -> npt.NDArray[np.float32]:
        """Scores of `windows` windows laid out in batches (their rows index the result)."""
        window_scores = np.empty(windows, dtype=np.float32)
        self.calls += len(batches)
        if self._pool is None or len(batches) == 1:
            self._run(list(batches), self.sessions[0], window_scores)
        else:
            # Interleaved shares: batches are sorted by length, so each session gets a fair mix.
            n = len(self.sessions)
            jobs = [
                self._pool.submit(self._run, list(batches[k::n]), s, window_scores)
                for k, s in enumerate(self.sessions)
            ]
            for job in jobs:
                job.result()
        return window_scores
