"""Hot reload of the bundle: watch its path, load and gate a new bundle aside, hand it to the loop.

The path may be a folder updated in place or a symlink that deployment tools flip. Every
``interval`` seconds its fingerprint is taken (where it points, name, size and mtime of every
file, the manifest's bytes); a change that has held still for one interval (a copy in progress
does not) is loaded in this thread through the validation gate (stream.serve.process.load_processor:
schema, file hashes, ONNX session, canary). SIGHUP asks for an attempt at once. What passes
waits in ``take()`` for the service loop, which swaps it in between two batches; what fails is
refused with a log line and a metric, and the bundle in service keeps serving. A refused
fingerprint is not tried again until it changes (or SIGHUP).
"""

import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

from stream.scoring.bundle import MANIFEST
from stream.serve.observability import Metrics

T = TypeVar("T")


def fingerprint(path: Path) -> str | None:
    """What the bundle path holds now, or None when it cannot be read (missing, mid-flip)."""
    digest = hashlib.sha256()
    try:
        real = path.resolve(strict=True)
        digest.update(str(real).encode())
        for entry in sorted(os.scandir(real), key=lambda e: e.name):
            if entry.is_file():
                stat = entry.stat()
                digest.update(f"\0{entry.name}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
        digest.update((real / MANIFEST).read_bytes())
    except OSError:
        return None
    return digest.hexdigest()


class Reloader(Generic[T]):
    def __init__(
        self,
        path: Path,
        load: Callable[[Path], T],
        interval: float,
        log: Any,
        metrics: Metrics,
        current: str | None = None,
    ) -> None:
        self.path = path
        self._load = load
        self.interval = interval
        self._log = log
        self._metrics = metrics
        self._current = current if current is not None else fingerprint(path)
        self._refused: str | None = None
        self._seen: str | None = self._current
        self._ready: T | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._forced = False
        self._thread = threading.Thread(target=self._run, name="reload", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def request(self) -> None:
        """SIGHUP: try the bundle at the path now, changed or not. Safe from a signal handler."""
        self._forced = True
        self._wake.set()

    def take(self) -> T | None:
        """The gated bundle waiting to be swapped in, once."""
        with self._lock:
            ready, self._ready = self._ready, None
        return ready

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            self.check()

    def check(self) -> None:
        """One look at the path (the thread's body; tests call it directly)."""
        forced, self._forced = self._forced, False
        now = fingerprint(self.path)
        if not forced:
            settled = now == self._seen
            self._seen = now
            if now is None or now in (self._current, self._refused) or not settled:
                return
        self._attempt(now, forced)

    def _attempt(self, before: str | None, forced: bool) -> None:
        where = self.path.resolve()
        log = self._log.bind(bundle=str(self.path), resolved=str(where), forced=forced)
        log.info("bundle changed, loading it through the gate")
        try:
            loaded = self._load(where)
        except Exception as exc:  # whatever the bundle does, the service goes on with the old one
            self._refused = before
            self._metrics.reloads.labels("refused").inc()
            log.warning(
                "bundle refused, the current one keeps serving", reason=str(exc) or type(exc).__name__
            )
            return
        if fingerprint(self.path) != before:
            log.info("bundle changed while it was loading; it will be tried again")
            self._seen = None
            return
        with self._lock:
            self._ready = loaded
            self._current = before
