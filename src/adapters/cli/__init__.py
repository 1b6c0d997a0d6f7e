"""The ``crm`` console script (typer): ``crm --help`` lists the commands.

:func:`main` runs it and returns the exit code; :data:`app` is the typer application,
to which a command group can be added (``app.add_typer(...)``).
"""

from __future__ import annotations

from adapters.cli.app import app, main

__all__ = ["app", "main"]
