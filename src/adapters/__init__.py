"""crm-core adapters: the ``crm`` command line (``adapters.cli``) and Kafka (``adapters.kafka``)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("crm-core")
except PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
    __version__ = "0+unknown"
