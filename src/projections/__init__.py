"""SQL read models built from the CRM's event history, exactly once, rebuildable.

Start with :func:`projections.runner.follow` (in-process catch-up),
:func:`projections.rebuild.rebuild` and the query classes in each read-model module;
``crm projections ...`` and ``crm report ...`` wrap them on the command line.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("crm-core")
except PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
    __version__ = "0+unknown"
