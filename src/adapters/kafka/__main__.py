"""``python -m adapters.kafka relay kafka ...`` / ``consume kafka ...``: the ``crm`` command."""

from __future__ import annotations

from adapters.cli import main

raise SystemExit(main())
