"""`wirewatch demo` (`make demo`): from a fresh clone to live alerts with one command.

It prepares the data when missing, uses the default bundle or trains a quick one, starts the
embedded broker and the scorer as child processes, replays the stream at a steady rate, shows a
live view (throughput, lag, alerts with the sentences that drove them, running precision and
recall) and ends with a summary. Every process it started is stopped on the way out, on Ctrl-C
and on failure too. Training and data preparation run as `wirewatch` subprocesses, so this
module imports nothing from the training side.
"""

import json
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from confluent_kafka import Message
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from stream.devtools.broker import EmbeddedBroker, free_port
from stream.devtools.replay import replay
from stream.errors import DataError, WirewatchError
from stream.kafka.connection import Connection
from stream.kafka.records import Incoming
from stream.schemas import ALERTS_TOPIC, ARTICLES_TOPIC, DLQ_TOPIC, SCORES_TOPIC
from stream.scoring.bundle import load_bundle
from stream.scoring.metrics import at_threshold
from stream.serve.observability import wait_ready
from stream.serve.process import processor_for
from stream.serve.settings import ServeSettings

DEFAULT_BUNDLE = Path("exports/terrorism-v1")
QUICK_BUNDLE = Path("exports/terrorism-quick")
# The quick preset: one pass over the training data with short windows and no zero-shot baseline.
# `wirewatch train` with these flags on the prepared data, 2 AVX2-only cores: 15 min 18 s before
# the full-length articles joined the data, 31 min 36 s with them reading 8 windows, 28 min 2 s
# reading 4, 22 min 4 s once negatives' frozen states were cached for their first window only and
# the int8 gate reused training's fp32 validation scores (2026-12-07). The test figures stayed the
# same to 3 digits through all three cuts (modern AUPRC 0.894, full-length 0.588, MUC AUROC 0.788).
QUICK_TRAIN_ARGS = ["--epochs", "1", "--max-length", "128", "--max-windows", "4", "--no-prior"]
QUICK_TRAIN_MINUTES = 22
MISSING_DATA = (
    "wirewatch trains on real labeled news: MUC-3/4 terrorism reports, AG News, BBC News and "
    "Reuters-21578 in their original formats (see docs/training.md). Put them in one "
    "folder (muc34-terrorism/muc34.tar.gz, ag_news/test.csv, bbc-news/bbc-fulltext.tar.gz, "
    "reuters21578/reut2-*.sgm) and point WIREWATCH_DATA_DIR at it, or keep them in "
    "../shared/datasets beside this clone. Or skip training: put a bundle in exports/terrorism-v1 "
    "and a feed in data/stream.jsonl."
)


# What the feed's labels are, said on screen: they are what the precision and recall mean.
LABELS_NOTE = (
    "labels: 1 = an attack report (main subject a specific, real bombing, shooting, kidnapping, "
    "assassination, arson or foiled plot; docs/labeling-guide.md). Modern news: Wikipedia current "
    "events 2017-18 labelled by rules (audited error 4.5%), never seen in training. MUC: 1989-91 FBIS "
    "reports, labelled by the MUC answer keys. Ordinary: AG/BBC/Reuters, all 0. AG World: unlabelled."
)
DOMAINS = {"modern": "modern news", "muc": "MUC reports", "ordinary": "ordinary news"}
# Without --rate the replay runs at this share of what the scorer managed in-process on this
# machine: the broker, the replay and the live view share its cores, and a stream served near
# capacity shows queueing delay, not the model.
CAPACITY_SHARE = 0.6
CAPACITY_SAMPLE = 240


@dataclass
class DemoOptions:
    data_dir: Path
    data: Path = Path("data")
    bundle: Path | None = None
    rate: float | None = None  # None: CAPACITY_SHARE of the measured capacity
    limit: int = 2000
    keep_running: bool = False
    timeout: float = 600.0


def _wirewatch(*args: str) -> None:
    result = subprocess.run([sys.executable, "-m", "wirewatch", *args], check=False)
    if result.returncode != 0:
        raise WirewatchError(
            f"`wirewatch {' '.join(args)}` failed (exit {result.returncode}); see its output above"
        )


def ensure_data(options: DemoOptions, console: Console) -> Path:
    stream = options.data / "stream.jsonl"
    if stream.is_file():
        return stream
    if not (options.data_dir / "muc34-terrorism" / "muc34.tar.gz").is_file():
        raise DataError(f"no datasets at {options.data_dir}. {MISSING_DATA}")
    console.rule("preparing the data")
    _wirewatch("data", "prepare", "--data-dir", str(options.data_dir), "--out", str(options.data))
    return stream


def ensure_bundle(options: DemoOptions, console: Console) -> Path:
    for candidate in [options.bundle] if options.bundle else [DEFAULT_BUNDLE, QUICK_BUNDLE]:
        if (candidate / "manifest.json").is_file():
            return candidate
    if options.bundle:
        raise DataError(f"{options.bundle}: no bundle there")
    console.rule("training a quick bundle")
    console.print(
        f"No bundle in {DEFAULT_BUNDLE} yet: training {QUICK_BUNDLE} with the quick preset "
        f"({' '.join(QUICK_TRAIN_ARGS)}), about {QUICK_TRAIN_MINUTES} minutes on 2 cores. Later runs reuse it; "
        f"`make train` builds the full bundle."
    )
    _wirewatch(
        "train", "--data", str(options.data / "terrorism"), "--out", str(QUICK_BUNDLE), *QUICK_TRAIN_ARGS
    )
    return QUICK_BUNDLE


def measured_capacity(bundle: Path, feed: list[dict[str, object]], sample: int = CAPACITY_SAMPLE) -> float:
    """Articles per second the service's scoring stage (explanations included) manages here, in
    process, on articles spread over the feed."""
    step = max(1, len(feed) // sample)
    chosen = feed[::step][:sample]
    records = [
        Incoming("demo", 0, n, str(r["id"]).encode(), json.dumps(r).encode(), [], None)
        for n, r in enumerate(chosen)
    ]
    settings = ServeSettings(bundle=bundle)
    processor = processor_for(settings)
    size = settings.batch_size
    processor.process(records[:size])  # warm-up: first-call allocations
    started = time.perf_counter()
    for start in range(0, len(records), size):
        processor.process(records[start : start + size])
    return len(records) / (time.perf_counter() - started)


def write_feed(stream: Path, out: Path, limit: int) -> list[dict[str, object]]:
    """The first `limit` articles of the stream, also written out for `wirewatch evaluate`."""
    records = []
    with stream.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                records.append(json.loads(line))
            if len(records) >= limit:
                break
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return records


@contextmanager
def scorer_process(bundle: Path, bootstrap: str, topics: dict[str, str], log: Path) -> Iterator[int]:
    """`wirewatch serve` as a child process; yields its metrics port once it is ready."""
    port = free_port()
    command = [
        sys.executable, "-m", "wirewatch", "serve", "--bundle", str(bundle),
        "--bootstrap-servers", bootstrap, "--create-topics", "--group-id", f"demo-{uuid.uuid4().hex[:6]}",
        "--input-topic", topics["input"], "--scores-topic", topics["scores"],
        "--alerts-topic", topics["alerts"], "--dlq-topic", topics["dlq"],
        "--metrics-port", str(port), "--metrics-host", "127.0.0.1", "--log-format", "json",
        "--kafka", "session.timeout.ms=6000",
    ]  # fmt: skip
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)
    try:
        if not wait_ready(port, process, timeout=120):
            if process.poll() is not None:
                tail = log.read_text(errors="replace")[-1500:]
                raise WirewatchError(
                    f"the scorer exited with {process.returncode}; its log ({log}) ends:\n{tail}"
                )
            raise WirewatchError(f"the scorer was not ready within 120 s; see {log}")
        yield port
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@dataclass
class Tally:
    """What the demo has seen of the scorer's outputs, joined with the feed's labels."""

    labels: dict[str, int | None]
    threshold: float
    domains: dict[str, str] = field(default_factory=dict)
    sent_at: dict[str, float] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    received_at: dict[str, float] = field(default_factory=dict)
    alerts: deque[dict[str, object]] = field(default_factory=lambda: deque(maxlen=4))
    alert_count: int = 0
    dead_letters: int = 0
    started: float = field(default_factory=time.perf_counter)
    rates: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=50))
    # Held by whoever writes (the reader and replay threads) or reads a view of the whole.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def labeled(self, domain: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        pairs = [
            (self.labels[i], s)
            for i, s in self.scores.items()
            if self.labels.get(i) is not None and (domain is None or self.domains.get(i) == domain)
        ]
        return np.array([p[0] for p in pairs], dtype=np.int64), np.array([p[1] for p in pairs])

    def rate(self) -> float:
        now = time.perf_counter()
        self.rates.append((now, len(self.scores)))
        old_t, old_n = next(((t, n) for t, n in self.rates if now - t <= 5.0), self.rates[0])
        return (len(self.scores) - old_n) / (now - old_t) if now > old_t else 0.0


def _consume(
    tally: Tally, bootstrap: str, topics: dict[str, str], stop: threading.Event, joined: threading.Event
) -> None:
    consumer = Connection(bootstrap).consumer(
        f"demo-view-{uuid.uuid4().hex[:6]}", {"session.timeout.ms": 6000, "fetch.wait.max.ms": 50}
    )
    consumer.subscribe([topics["scores"], topics["alerts"], topics["dlq"]])
    try:
        while not stop.is_set():
            if not joined.is_set() and consumer.assignment():
                joined.set()
            messages = consumer.consume(num_messages=500, timeout=0.2)
            with tally.lock:
                for message in messages:
                    _take(tally, message, topics)
    finally:
        consumer.close()


def _take(tally: Tally, message: Message, topics: dict[str, str]) -> None:
    if message.error() is not None:
        return
    if message.topic() == topics["dlq"]:
        tally.dead_letters += 1
        return
    record = json.loads(message.value() or b"{}")
    if message.topic() == topics["scores"]:
        tally.scores[record["id"]] = record["score"]
        tally.received_at[record["id"]] = time.perf_counter()
    else:
        tally.alert_count += 1
        tally.alerts.appendleft(record)


def _view(tally: Tally, total: int) -> Group:
    labels, scores = tally.labeled()
    m = at_threshold(labels, scores, tally.threshold) if len(labels) else None
    stats = Table.grid(padding=(0, 3))
    stats.add_row(
        f"[b]{len(tally.sent_at)}[/b]/{total} sent",
        f"[b]{len(tally.scores)}[/b] scored",
        f"[b]{tally.rate():.0f}[/b] articles/s",
        f"lag [b]{max(0, len(tally.sent_at) - len(tally.scores))}[/b]",
        f"[b red]{tally.alert_count}[/b red] alerts",
        f"{tally.dead_letters} dead letters",
    )
    if m is not None:
        stats.add_row(
            f"precision [b]{m.precision:.3f}[/b]",
            f"recall [b]{m.recall:.3f}[/b]",
            f"F1 [b]{m.f1:.3f}[/b]",
            f"on {m.n} labeled ({m.positives} attacks)",
        )
    for domain, name in DOMAINS.items():
        labels, scores = tally.labeled(domain)
        if not len(labels):
            continue
        d = at_threshold(labels, scores, tally.threshold)
        stats.add_row(
            f"  {name}: precision {d.precision:.3f}" if d.positives else f"  {name}",
            f"recall {d.recall:.3f}" if d.positives else "",
            f"alerts {d.confusion.tp + d.confusion.fp}",
            f"on {d.n} ({d.positives} attacks)",
        )
    alerts = Table(show_header=True, header_style="bold", expand=True, box=None)
    alerts.add_column("score", width=6)
    alerts.add_column(
        "latest alerts: title, snippet, and the sentences that drove the score "
        "(score drop without the sentence, its score alone)",
        ratio=1,
    )
    for alert in tally.alerts:
        body = Text()
        body.append(f"{alert.get('title') or alert['id']}\n", style="bold")
        body.append(f"{str(alert.get('snippet', ''))[:160]}\n", style="dim")
        for part in alert.get("explanation") or []:  # type: ignore[attr-defined]
            body.append(f"  {part['contribution']:+.2f} {part.get('alone', 0.0):.2f} ", style="red")
            body.append(f"{part['sentence'][:140]}\n")
        alerts.add_row(f"{alert['score']:.3f}", body)
    return Group(Panel(stats, title="wirewatch demo", subtitle=Text(LABELS_NOTE, style="dim")), alerts)


def summarize(tally: Tally, feed: list[dict[str, object]], rate: float) -> dict[str, object]:
    labels, scores = tally.labeled()
    m = at_threshold(labels, scores, tally.threshold) if len(labels) else None
    unlabeled = [str(r["id"]) for r in feed if r.get("label") is None and str(r["id"]) in tally.scores]
    unlabeled_alerts = sum(tally.scores[i] >= tally.threshold for i in unlabeled)
    latencies = [(tally.received_at[i] - tally.sent_at[i]) * 1000 for i in tally.scores if i in tally.sent_at]
    span = max(tally.received_at.values()) - min(tally.sent_at.values()) if tally.scores else 0.0
    return {
        "articles_scored": len(tally.scores),
        "alerts": tally.alert_count,
        "labeled": m.model_dump() if m else None,
        "by_domain": {
            d: at_threshold(*tally.labeled(d), tally.threshold).model_dump()
            for d in DOMAINS
            if len(tally.labeled(d)[0])
        },
        "unlabeled": len(unlabeled),
        "unlabeled_alert_rate": unlabeled_alerts / len(unlabeled) if unlabeled else None,
        "throughput_articles_per_s": len(tally.scores) / span if span else 0.0,
        "latency_ms": {
            "p50": float(np.percentile(latencies, 50)) if latencies else None,
            "p99": float(np.percentile(latencies, 99)) if latencies else None,
        },
        "dead_letters": tally.dead_letters,
        "replay_rate_per_s": rate,
    }


def format_summary(summary: dict[str, object], bundle: Path, feed_path: Path) -> str:
    m = summary["labeled"]
    lines = [f"articles scored   {summary['articles_scored']}", f"alerts            {summary['alerts']}"]
    if isinstance(m, dict):
        lines.append(
            f"labeled           {m['n']} articles, {m['positives']} attack reports: precision {m['precision']:.4f}, "
            f"recall {m['recall']:.4f}, F1 {m['f1']:.4f}"
        )
    by_domain = summary.get("by_domain") or {}
    assert isinstance(by_domain, dict)
    for domain, d in by_domain.items():
        alerts = d["confusion"]["tp"] + d["confusion"]["fp"]
        quality = (
            f": precision {d['precision']:.3f}, recall {d['recall']:.3f}"
            if d["positives"]
            else " (false alarms)"
        )
        lines.append(
            f"  {DOMAINS[domain]:<15} {d['n']} articles, {d['positives']} attack reports, {alerts} alerts{quality}"
        )
    if summary["unlabeled"]:
        lines.append(
            f"unlabeled         {summary['unlabeled']} AG World articles, alert rate {summary['unlabeled_alert_rate']:.2%}"
        )
    latency = summary["latency_ms"]
    assert isinstance(latency, dict)
    lines += [
        f"throughput        {summary['throughput_articles_per_s']:.1f} articles/s "
        f"(replayed at {summary['replay_rate_per_s']:g}/s)",
        f"latency           p50 {latency['p50']:.0f} ms, p99 {latency['p99']:.0f} ms",
        f"dead letters      {summary['dead_letters']}",
        f"check the figures: wirewatch evaluate --bundle {bundle} --data {feed_path}",
    ]
    return "\n".join(lines)


def run_demo(options: DemoOptions, console: Console | None = None) -> dict[str, object]:
    console = console or Console()
    stream = ensure_data(options, console)
    bundle_path = ensure_bundle(options, console)
    bundle = load_bundle(bundle_path)
    feed_path = options.data / "demo-feed.jsonl"
    feed = write_feed(stream, feed_path, options.limit)
    tally = Tally(
        labels={str(r["id"]): r.get("label") for r in feed},  # type: ignore[misc]
        threshold=bundle.manifest.threshold,
        domains={str(r["id"]): str(r.get("domain") or "") for r in feed},
    )
    topics = {
        "input": ARTICLES_TOPIC,
        "scores": SCORES_TOPIC,
        "alerts": ALERTS_TOPIC,
        "dlq": DLQ_TOPIC,
    }
    rate = options.rate
    if rate is None:
        console.print("measuring what this machine scores ...", style="dim")
        capacity = measured_capacity(bundle_path, feed)
        rate = max(1.0, round(CAPACITY_SHARE * capacity))
        console.print(
            f"the scorer managed {capacity:.0f} articles/s here (explanations included); replaying at "
            f"{rate:g}/s, {CAPACITY_SHARE:.0%} of that (--rate sets it)",
            style="dim",
        )
    console.rule(f"live: {bundle.label}, {len(feed)} articles at {rate:g}/s")
    stop = threading.Event()
    with ExitStack() as stack:
        broker = stack.enter_context(EmbeddedBroker())
        bootstrap = broker.bootstrap_servers
        stack.enter_context(scorer_process(bundle_path, bootstrap, topics, Path("runs/demo/serve.log")))
        joined = threading.Event()
        reader = threading.Thread(target=_consume, args=(tally, bootstrap, topics, stop, joined), daemon=True)
        reader.start()
        if not joined.wait(60):  # latency is measured from here: the view must be listening first
            raise WirewatchError("the live view could not join its consumer group within 60 s")
        stack.callback(reader.join, 10)
        stack.callback(stop.set)
        errors: list[str] = []
        feeder = threading.Thread(
            target=_replay,
            args=(feed_path, bootstrap, topics["input"], rate, tally, errors),
            daemon=True,
        )
        feeder.start()
        deadline = time.monotonic() + options.timeout
        with tally.lock:
            first = _view(tally, len(feed))
        with Live(first, console=console, refresh_per_second=4, transient=False) as live:
            while len(tally.scores) < len(feed) and time.monotonic() < deadline and not errors:
                broker.check()
                time.sleep(0.25)
                with tally.lock:
                    view = _view(tally, len(feed))
                live.update(view)
        if errors:
            raise WirewatchError(errors[0])
        with tally.lock:
            summary = summarize(tally, feed, rate)
        console.rule("summary")
        console.print(LABELS_NOTE, style="dim")
        console.print(format_summary(summary, bundle_path, feed_path))
        if len(tally.scores) < len(feed):
            raise WirewatchError(
                f"only {len(tally.scores)} of {len(feed)} articles were scored within {options.timeout:g} s"
            )
        if options.keep_running:
            console.print(
                f"\nBroker and scorer keep running at {bootstrap}. Feed your own articles (JSONL with id, title, text):\n"
                f"  wirewatch replay my-articles.jsonl --bootstrap-servers {bootstrap}\n"
                f"  wirewatch tail --bootstrap-servers {bootstrap}\n"
                "Ctrl-C stops everything."
            )
            _wait_for_ctrl_c(broker)
    return summary


def _replay(feed: Path, bootstrap: str, topic: str, rate: float, tally: Tally, errors: list[str]) -> None:
    def sent(key: bytes | None) -> None:
        if key is not None:
            with tally.lock:
                tally.sent_at[key.decode()] = time.perf_counter()

    try:
        replay(feed, bootstrap, topic, rate=rate, progress=False, on_sent=sent)
    except WirewatchError as exc:
        errors.append(str(exc))


def _wait_for_ctrl_c(broker: EmbeddedBroker) -> None:
    try:
        while True:
            broker.check()
            time.sleep(1)
    except KeyboardInterrupt:
        return
