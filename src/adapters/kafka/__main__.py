"""``python -m adapters.kafka relay kafka ...`` / ``consume kafka ...``."""

from __future__ import annotations

from adapters.kafka.cli import main

raise SystemExit(main())
