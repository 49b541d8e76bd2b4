"""The error taxonomy. Expected failures raise a subclass of WirewatchError.

The CLI prints their message on one line and exits non-zero without a traceback; anything
else is a bug and keeps its traceback.
"""


class WirewatchError(Exception):
    """An expected failure whose message tells the user what to fix."""

    exit_code = 2


class ConfigError(WirewatchError):
    """Settings, flags or options that cannot work."""


class DataError(WirewatchError):
    """Input data that is missing, unreadable or malformed."""


class BundleError(WirewatchError):
    """A model bundle that is missing, incomplete, corrupt or incompatible."""


class DependencyError(WirewatchError):
    """An optional dependency is not installed."""


class BrokerError(WirewatchError):
    """The Kafka broker is unreachable, or a topic is missing."""


class ExportError(WirewatchError):
    """An ONNX export that failed validation against the reference model."""


class ScoringError(WirewatchError):
    """The model failed on a batch of input."""


class SystemicError(WirewatchError):
    """A systemic failure that stopped the service without committing (broken model, Kafka failing).

    A restart, or a rollback of the bundle, resumes from the last committed offsets: nothing is lost.
    """

    exit_code = 3
