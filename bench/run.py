"""The wirewatch benchmark: bare model, ceiling, end to end through Kafka, and a naive torch consumer.

Run with `make bench` (a script, not a test). In one run, on one bundle and one feed
(data/stream.jsonl, prepared and trained with defaults when missing), it measures:

- bare_model_articles_per_s: ONNX Runtime alone on the feed's windows, tokenized beforehand,
  batched and spread over sessions as the scorer does: what the hardware gives this model (a
  bundle that reads long articles lead first runs its two passes, leads then the windows they
  call for, as the scorer does; their batching is then inside the timing);
- ceiling_articles_per_s: the service's own scoring code (validation, cleaning, tokenization,
  batching, ONNX Runtime, explanations, output building) called in-process, no Kafka; also without
  explanations, so their cost shows on its own;
- e2e_articles_per_s: `wirewatch serve` (one or more processes in one consumer group) behind the
  embedded broker, from the first article produced to the last score received;
- e2e_latency_ms: per article, produce to score received, with the feed produced at a steady
  rate of half the measured e2e capacity (latency under saturation only measures the backlog),
  read by a consumer that waits at most READER_FETCH_WAIT_MS in a fetch;
- naive_articles_per_s: a per-message consumer calling a transformers text-classification
  pipeline on torch for each article, as tutorials do, on the same fine-tuned weights;
- serve_rss_mb: the peak resident memory (VmHWM) of a service process;
- detection: precision, recall and F1 at the bundle's threshold on the feed's labelled articles
  (modern, muc, and all labelled), from the scores the first ceiling run published.

It records what it ran on (CPU model and flags, cores, load average, ONNX Runtime version and
provider, the feed's composition and tokens per article, the bundle), prints the JSON and saves
it to bench/results/<timestamp>.json.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from bench import naive
from stream.devtools.broker import EmbeddedBroker, free_port
from stream.kafka.records import Incoming, Output
from stream.scoring.bootstrap import intervals_of
from stream.scoring.bundle import load_bundle
from stream.scoring.metrics import at_threshold
from stream.scoring.providers import cpu_flags
from stream.scoring.scorer import Scorer
from stream.scoring.text import article_text
from stream.serve.observability import wait_ready
from stream.serve.process import BatchProcessor, processor_for
from stream.serve.settings import ServeSettings

# The repository root: the defaults' base and the services' working folder.
ROOT = Path(__file__).resolve().parents[1]

SESSION = {"session.timeout.ms": "6000"}
# The reader of the scores waits at most this long in a fetch, as the service's own consumer does:
# the embedded broker answers a waiting fetch only at its deadline (Kafka answers when data
# arrives), so librdkafka's 500 ms default would add up to half a second to every latency.
READER_FETCH_WAIT_MS = 50
# CPU features that decide which kernels ONNX Runtime and OpenVINO can use.
NOTABLE_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_bf16", "amx_int8")


def ensure_inputs(data: Path, bundle: Path) -> None:
    cli = [sys.executable, "-m", "wirewatch"]
    if not (data / "stream.jsonl").is_file():
        subprocess.run([*cli, "data", "prepare", "--out", str(data)], check=True, cwd=ROOT)
    if not (bundle / "manifest.json").is_file():
        subprocess.run(
            [*cli, "train", "--data", str(data / "terrorism"), "--out", str(bundle)], check=True, cwd=ROOT
        )


def load_feed(path: Path, limit: int | None) -> list[tuple[str, bytes]]:
    feed = []
    with path.open("rb") as handle:
        for line in handle:
            if line.strip():
                feed.append((json.loads(line)["id"], line.rstrip(b"\n")))
            if limit and len(feed) >= limit:
                break
    return feed


def describe_feed(feed: list[tuple[str, bytes]], scorer: Scorer) -> dict[str, Any]:
    """What the feed is made of, in the bundle's own tokens: the figures depend on it."""
    articles = [json.loads(value) for _, value in feed]
    composition = Counter(
        f"{a.get('corpus') or a.get('source') or 'unknown'}:{ {1: 'attack', 0: 'other'}.get(a.get('label'), 'unlabeled') }"
        for a in articles
    )
    encoded = scorer.encoder.encode([article_text(a.get("title"), a.get("text") or "") for a in articles])
    per_article = np.bincount(encoded.owner, weights=encoded.lengths, minlength=encoded.n_texts)
    return {
        "articles": len(articles),
        "composition": dict(sorted(composition.items())),
        "tokens_per_article": {
            "mean": round(float(per_article.mean()), 1),
            "p50": float(np.percentile(per_article, 50)),
            "p95": float(np.percentile(per_article, 95)),
            "max": float(per_article.max()),
        },
        "windows_per_article": round(len(encoded.windows) / max(1, encoded.n_texts), 3),
        "max_length": scorer.encoder.windowing.max_length,
    }


def machine() -> dict[str, Any]:
    import onnxruntime as ort

    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    flags = cpu_flags()
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "cpu_flags": [f for f in NOTABLE_FLAGS if f in flags],
        "onnxruntime": ort.__version__,
        "onnxruntime_providers": ort.get_available_providers(),
        "python": platform.python_version(),
    }


def records(feed: list[tuple[str, bytes]]) -> list[Incoming]:
    return [Incoming("bench", 0, i, key.encode(), value, [], None) for i, (key, value) in enumerate(feed)]


def ceiling(
    processor: BatchProcessor,
    feed: list[tuple[str, bytes]],
    batch_size: int,
    scores: dict[str, float] | None = None,
) -> dict[str, float]:
    """The scoring stage alone, in-process, batch by batch as the service runs it.

    scores, when given, receives each article's published score by id (read after the clock stops).
    """
    batch = records(feed)
    processor.process(batch[:batch_size])  # warm-up: first-call allocations
    started, cpu = time.perf_counter(), time.process_time()
    explain_s = inference_s = 0.0
    alerts = 0
    published: list[list[Output]] = []
    for start in range(0, len(batch), batch_size):
        result = processor.process(batch[start : start + batch_size])
        explain_s += result.explain_s
        inference_s += result.inference_s
        alerts += result.alerts
        published.append(result.outputs)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    if scores is not None:
        for outputs in published:
            for output in outputs:
                if output.kind == "score":
                    score = json.loads(output.value)
                    scores[score["id"]] = score["score"]
    return {
        "articles_per_s": len(batch) / seconds,
        "articles_per_cpu_s": len(batch) / cpu,
        "seconds": seconds,
        "inference_seconds": inference_s,
        "explain_seconds": explain_s,
        "alerts": alerts,
    }


DOMAINS = ("modern", "muc", "long")
# Length buckets in words, as in the bundle's report: short items, MUC-length reports, full articles.
LENGTHS = {"<=60 words": (0, 60), "61-300 words": (61, 300), ">300 words": (301, 10**9)}


def detection(feed: list[tuple[str, bytes]], scores: dict[str, float], threshold: float) -> dict[str, Any]:
    """Precision, recall and F1 at the threshold per labelled domain of the feed, and over all
    labelled articles; labelled articles that got no score (dead-lettered) are counted apart."""
    groups: dict[str, tuple[list[int], list[float]]] = {name: ([], []) for name in (*DOMAINS, "labelled")}
    unscored = 0
    for _, value in feed:
        article = json.loads(value)
        if article.get("label") is None:
            continue
        if article["id"] not in scores:
            unscored += 1
            continue
        for name in ("labelled", article.get("domain")):
            if name in groups:
                groups[name][0].append(int(article["label"]))
                groups[name][1].append(scores[article["id"]])
    out: dict[str, Any] = {"threshold": threshold, "labelled_unscored": unscored}
    for name, (labels, values) in groups.items():
        if not labels:
            out[name] = None
            continue
        m = at_threshold(labels, values, threshold)
        out[name] = {
            "n": m.n,
            "positives": m.positives,
            "alerts": m.confusion.tp + m.confusion.fp,
            "precision": round(m.precision, 4),
            "recall": round(m.recall, 4),
            "f1": round(m.f1, 4),
        }
        # A bucket of 21 reports is far less sure than its 4 decimals.
        bounds = intervals_of(labels, values, threshold)
        if bounds is not None:
            for figure in ("precision", "recall"):
                out[name][f"{figure}_95"] = [round(bounds[figure].low, 4), round(bounds[figure].high, 4)]
    return out


def by_length(feed: list[tuple[str, bytes]]) -> dict[str, list[tuple[str, bytes]]]:
    """The feed's articles in the LENGTHS buckets, by the words of their text."""
    buckets: dict[str, list[tuple[str, bytes]]] = {name: [] for name in LENGTHS}
    for item in feed:
        words = len((json.loads(item[1]).get("text") or "").split())
        for name, (low, high) in LENGTHS.items():
            if low <= words <= high:
                buckets[name].append(item)
    return buckets


def bare_model_by_length(scorer: Scorer, feed: list[tuple[str, bytes]], repeats: int = 2) -> dict[str, Any]:
    """The bare model on each length bucket of the feed on its own: full articles cost many windows."""
    return {
        name: {"articles": len(part), **bare_model(scorer, part, repeats)} if part else None
        for name, part in by_length(feed).items()
    }


def bare_model(scorer: Scorer, feed: list[tuple[str, bytes]], repeats: int = 1) -> dict[str, float]:
    """ONNX Runtime alone on the feed's windows, tokenized and batched beforehand."""
    texts = [article_text(a.get("title"), a.get("text") or "") for a in (json.loads(v) for _, v in feed)]
    encoded = scorer.encoder.encode(texts)
    batches = scorer.batches(encoded)
    scorer.run_batches(batches[:2], len(encoded.windows))  # warm-up
    lead_first = scorer.bundle.manifest.long_text.read_more_above is not None
    best, calls = 0.0, 0
    read = np.ones(len(encoded.windows), dtype=bool)
    for _ in range(repeats):
        started, before = time.perf_counter(), scorer.calls
        if lead_first:
            _, read = scorer.read_windows(encoded)
        else:
            scorer.run_batches(batches, len(encoded.windows))
        best = max(best, len(texts) / (time.perf_counter() - started))
        calls = scorer.calls - before
    windows = int(read.sum())
    return {"articles_per_s": best, "windows": windows, "calls": calls}


def _create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics(
        [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names]
    ).values():
        future.result(timeout=20)


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def serve_flags(args: argparse.Namespace) -> list[str]:
    """The scoring flags of `wirewatch serve` that the benchmark sets."""
    flags = ["--batch-size", str(args.batch_size), "--providers", args.providers]
    for name in ("sessions", "threads", "inference_tokens", "inference_batch_size"):
        value = getattr(args, name)
        if value:
            flags += ["--" + name.replace("_", "-"), str(value)]
    return [*flags, *(["--no-explain"] if args.no_explain else [])]


class Served:
    """`wirewatch serve` as `processes` processes in one group, on fresh topics, with a reader."""

    def __init__(self, bootstrap: str, bundle: Path, args: argparse.Namespace) -> None:
        tag = uuid.uuid4().hex[:8]
        self.input, self.scores = f"bench-{tag}-in", f"bench-{tag}-scores"
        partitions = max(args.partitions, args.processes)
        _create_topics(
            bootstrap, [self.input, self.scores, f"bench-{tag}-alerts", f"bench-{tag}-dlq"], partitions
        )
        self.bootstrap = bootstrap
        self.ports = [free_port() for _ in range(args.processes)]
        self.processes = []
        for port in self.ports:
            command = [
                sys.executable, "-m", "wirewatch", "serve", "--bundle", str(bundle),
                "--bootstrap-servers", bootstrap, "--group-id", f"bench-{tag}",
                "--input-topic", self.input, "--scores-topic", self.scores,
                "--alerts-topic", f"bench-{tag}-alerts", "--dlq-topic", f"bench-{tag}-dlq",
                "--metrics-port", str(port), "--metrics-host", "127.0.0.1",
                "--log-level", "warning", "--kafka", "session.timeout.ms=6000", *serve_flags(args),
            ]  # fmt: skip
            if args.taskset:
                command = ["taskset", "-c", args.taskset, *command]
            self.processes.append(subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE))
        self.reader = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"reader-{tag}",
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": READER_FETCH_WAIT_MS,
                **SESSION,
            }
        )
        self.reader.subscribe([self.scores])

    def wait_ready(self, timeout: float = 120.0) -> None:
        for port, process in zip(self.ports, self.processes, strict=True):
            if not wait_ready(port, process, timeout):
                stderr = process.stderr.read().decode() if process.stderr else ""
                raise RuntimeError(f"the service did not become ready: {stderr[-2000:]}")
        while not self.reader.assignment():
            self.reader.poll(0.1)
        time.sleep(1.0 if len(self.processes) > 1 else 0.0)  # let the group settle on its members

    def run(self, feed: list[tuple[str, bytes]], rate: float | None, timeout: float) -> dict[str, float]:
        producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 2})
        sent: dict[str, float] = {}
        received: dict[str, float] = {}
        interval = 1.0 / rate if rate else 0.0
        started = time.perf_counter()
        for n, (key, value) in enumerate(feed):
            if interval:
                while time.perf_counter() < started + n * interval:
                    self._drain(received, 0.0)
                    time.sleep(min(interval, 0.002))
            sent[key] = time.perf_counter()
            producer.produce(self.input, value=value, key=key.encode())
            producer.poll(0)
        producer.flush(30)
        deadline = time.perf_counter() + timeout
        while len(received) < len(feed) and time.perf_counter() < deadline:
            self._drain(received, 0.2)
        if len(received) < len(feed):
            raise RuntimeError(f"only {len(received)} of {len(feed)} scores arrived within {timeout:g} s")
        latencies = np.array([received[k] - sent[k] for k in sent]) * 1000.0
        return {
            "articles_per_s": len(feed) / (max(received.values()) - started),
            "p50": float(np.percentile(latencies, 50)),
            "p95": float(np.percentile(latencies, 95)),
            "p99": float(np.percentile(latencies, 99)),
        }

    def _drain(self, received: dict[str, float], timeout: float) -> None:
        for message in self.reader.consume(num_messages=1000, timeout=timeout):
            if message.error() is None and message.key() is not None:
                received.setdefault(message.key().decode(), time.perf_counter())

    def stop(self) -> float:
        """Stops every process; the largest peak RSS among them."""
        rss = max(_peak_rss_mb(p.pid) for p in self.processes)
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(timeout=60)
        self.reader.close()
        return rss


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", type=Path, default=ROOT / "exports" / "terrorism-v1")
    parser.add_argument("--data", type=Path, default=ROOT / "data")
    parser.add_argument("--limit", type=int, default=3000, help="articles of the feed to use (0: all)")
    parser.add_argument(
        "--naive-limit", type=int, default=300, help="articles for the slow naive consumer (0: skip)"
    )
    parser.add_argument(
        "--latency-limit", type=int, default=1000, help="articles for the steady-rate latency run"
    )
    parser.add_argument("--batch-size", type=int, default=32, help="articles per micro-batch")
    parser.add_argument("--partitions", type=int, default=1, help="input partitions (at least --processes)")
    parser.add_argument("--processes", type=int, default=1, help="scorer processes in one consumer group")
    parser.add_argument("--taskset", help="CPU list the scorer processes are pinned to (e.g. 0 for one core)")
    parser.add_argument("--providers", default="auto", choices=["auto", "cpu", "cuda", "openvino"])
    parser.add_argument(
        "--sessions", type=int, default=0, help="ONNX Runtime sessions per process (0: default)"
    )
    parser.add_argument("--threads", type=int, default=0, help="threads per session (0: default)")
    parser.add_argument("--inference-tokens", type=int, default=0, help="padded tokens per ONNX Runtime call")
    parser.add_argument("--inference-batch-size", type=int, default=0, help="windows per call at most")
    parser.add_argument("--no-explain", action="store_true", help="score alerts without explanations")
    parser.add_argument("--skip-e2e", action="store_true", help="in-process figures only (no broker)")
    parser.add_argument(
        "--checkpoint", type=Path, help="fine-tuned PyTorch weights (default runs/<bundle name>/checkpoint)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument(
        "--compare",
        type=Path,
        help="another bundle whose bare model is measured on the same feed in the same run",
    )
    parser.add_argument("--name", default="", help="suffix of the result file's name")
    args = parser.parse_args(argv)

    load_before = _load()
    ensure_inputs(args.data, args.bundle)
    feed = load_feed(args.data / "stream.jsonl", args.limit or None)
    bundle = load_bundle(args.bundle)
    overrides: dict[str, Any] = {
        "bundle": args.bundle,
        "batch_size": args.batch_size,
        "providers": args.providers,
        "explain": not args.no_explain,
        "sessions": args.sessions,
        "intra_op_threads": args.threads,
        "inference_tokens": args.inference_tokens,
    }
    if args.inference_batch_size:
        overrides["inference_batch_size"] = args.inference_batch_size
    settings = ServeSettings(**overrides)
    print(f"feed: {len(feed)} articles; bundle {bundle.label} ({bundle.manifest.precision})", file=sys.stderr)

    processor = processor_for(settings)
    scorer = processor.scorer
    assert isinstance(scorer, Scorer)
    feed_info = describe_feed(feed, scorer)
    print("bare model ...", file=sys.stderr)
    bare = bare_model(scorer, feed, repeats=2)
    lengths = bare_model_by_length(scorer, feed)
    compared: dict[str, Any] | None = None
    if args.compare:
        # Another bundle (today's, say) on the same feed in the same run: these machines are noisy.
        print(f"bare model of {args.compare} ...", file=sys.stderr)
        other = processor_for(settings.model_copy(update={"bundle": args.compare, "explain": False})).scorer
        assert isinstance(other, Scorer)
        compared = {
            "bundle": str(args.compare),
            "bare_model_articles_per_s": round(bare_model(other, feed, repeats=2)["articles_per_s"], 1),
            "bare_model_by_length": bare_model_by_length(other, feed),
        }
        compared["this_vs_compared"] = round(
            bare["articles_per_s"] / compared["bare_model_articles_per_s"], 3
        )
        del other
    # The ceiling is measured before and after the end-to-end run and the better one kept: these
    # machines are noisy, and a low ceiling would flatter the service.
    print("ceiling ...", file=sys.stderr)
    scores: dict[str, float] = {}
    ceilings = [ceiling(processor, feed, args.batch_size, scores)]
    plain = processor_for(settings.model_copy(update={"explain": False})) if settings.explain else processor
    no_explain = ceiling(plain, feed, args.batch_size)
    del plain

    e2e: dict[str, float] = {}
    latency: dict[str, float] = {}
    rss = float("nan")
    naive_rate = None
    steady_rate = None
    with EmbeddedBroker() as broker:
        if not args.skip_e2e:
            print("end to end, saturated ...", file=sys.stderr)
            served = Served(broker.bootstrap_servers, args.bundle, args)
            served.wait_ready()
            timeout = max(120.0, 3 * len(feed) / ceilings[0]["articles_per_s"])
            e2e = served.run(feed, rate=None, timeout=timeout)
            rss = served.stop()
        print("ceiling again ...", file=sys.stderr)
        ceilings.append(ceiling(processor, feed, args.batch_size))
        if not args.skip_e2e:
            print("end to end, steady rate for latency ...", file=sys.stderr)
            steady_rate = 0.5 * e2e["articles_per_s"]
            served = Served(broker.bootstrap_servers, args.bundle, args)
            served.wait_ready()
            latency = served.run(feed[: args.latency_limit], rate=steady_rate, timeout=180.0)
            rss = max(rss, served.stop())
        if args.naive_limit:
            print("naive per-message torch consumer ...", file=sys.stderr)
            checkpoint = args.checkpoint or ROOT / "runs" / args.bundle.name / "checkpoint"
            naive_rate = naive.measure(broker.bootstrap_servers, checkpoint, feed[: args.naive_limit])

    top = max(ceilings, key=lambda c: c["articles_per_s"])
    with_explain = top["articles_per_s"] if settings.explain else None
    result: dict[str, Any] = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {**machine(), "load_average_before": load_before, "load_average_after": _load()},
        "bundle": {
            "name": bundle.label,
            "path": str(args.bundle),
            "precision": bundle.manifest.precision,
            "quantization": bundle.manifest.quantization,
            "max_length": bundle.manifest.max_length,
        },
        "feed": {"file": str(args.data / "stream.jsonl"), **feed_info},
        "settings": {
            "batch_size": args.batch_size,
            "partitions": max(args.partitions, args.processes),
            "processes": args.processes,
            "taskset": args.taskset,
            "explain": settings.explain,
            "provider": scorer.provider,
            "sessions": len(scorer.sessions),
            "token_budget": scorer.token_budget if scorer.batch_invariant else None,
            "windows_per_call_max": scorer.max_rows,
            "threads_per_session": args.threads or None,
            "reader_fetch_wait_max_ms": READER_FETCH_WAIT_MS,
        },
        "bare_model_articles_per_s": round(bare["articles_per_s"], 1),
        "bare_model_calls": bare["calls"],
        "bare_model_by_length": lengths,
        "compared": compared,
        "ceiling_articles_per_s": round(top["articles_per_s"], 1),
        "ceiling_articles_per_cpu_s": round(top["articles_per_cpu_s"], 1),
        "ceiling_runs_articles_per_s": [round(c["articles_per_s"], 1) for c in ceilings],
        "ceiling_without_explain_articles_per_s": round(no_explain["articles_per_s"], 1),
        "ceiling_vs_bare_model": round(no_explain["articles_per_s"] / bare["articles_per_s"], 3),
        "alerts": top["alerts"],
        "explain_seconds": round(top["explain_seconds"], 2),
        "explain_share_of_ceiling_time": round(top["explain_seconds"] / top["seconds"], 3)
        if settings.explain
        else None,
        "explain_throughput_cost": round(1 - with_explain / no_explain["articles_per_s"], 3)
        if with_explain
        else None,
        "naive_articles_per_s": round(naive_rate, 2) if naive_rate else None,
        "detection": detection(feed, scores, bundle.manifest.threshold),
    }
    if e2e:
        result["e2e_articles_per_s"] = round(e2e["articles_per_s"], 1)
        result["e2e_latency_ms"] = {k: round(latency[k], 1) for k in ("p50", "p95", "p99")}
        result["e2e_latency_rate_per_s"] = round(steady_rate or 0.0, 1)
        result["serve_rss_mb"] = round(rss, 1)
        result["e2e_vs_ceiling"] = round(result["e2e_articles_per_s"] / result["ceiling_articles_per_s"], 3)
        result["e2e_vs_bare_model"] = round(
            result["e2e_articles_per_s"] / result["bare_model_articles_per_s"], 3
        )
        if naive_rate:
            result["e2e_vs_naive"] = round(result["e2e_articles_per_s"] / naive_rate, 1)
        targets = {
            "e2e >= 0.9 x ceiling": result["e2e_vs_ceiling"] >= 0.9,
            "p99 latency at half capacity <= 500 ms": result["e2e_latency_ms"]["p99"] <= 500,
            "serve_rss_mb <= 400": result["serve_rss_mb"] <= 400,
            # Set for AMX CPUs (issue 10); on others this states how far the hardware is.
            "e2e >= 280 articles/s": result["e2e_articles_per_s"] >= 280,
        }
        if naive_rate:
            targets["e2e >= 10 x naive"] = result["e2e_vs_naive"] >= 10
        if settings.explain:
            targets["explanations cost <= 10% of throughput"] = result["explain_throughput_cost"] <= 0.10
        result["targets_met"] = targets
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = f"-{args.name}" if args.name else ""
    path = args.out / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}{suffix}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"saved {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
