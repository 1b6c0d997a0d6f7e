"""Print a report as tables (rich), JSON or CSV: the one place output is formatted.

A report is a list of :class:`Section` objects holding plain values (text, numbers,
dates, amounts per currency). Tables format them for people and never cut a number
short: numeric columns keep their full width and text columns wrap instead. JSON and CSV
keep the values exact (amounts as decimal strings) for other programs.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from adapters.cli.options import OutputFormat

Cell = str | int | float | Decimal | date | datetime | dict[str, Decimal] | None


@dataclass
class Section:
    """One table of a report: a title, named columns and rows of plain values."""

    title: str
    columns: Sequence[str]
    rows: list[Sequence[Cell]] = field(default_factory=list)
    #: A key-value table (one measure per row) printed without a header.
    measures: bool = False
    #: Printed under the table when it has no rows (e.g. why it is empty).
    empty_note: str = ""

    def add(self, *values: Cell) -> None:
        """Add one row; it must have a value for every column."""
        if len(values) != len(self.columns):
            raise ValueError(f"{self.title}: {len(values)} values for {len(self.columns)} columns")
        self.rows.append(values)


def money(amounts: dict[str, Decimal]) -> str:
    """Amounts per currency as ``1,234.50 CNY, 20.00 USD`` (``-`` for none)."""
    return ", ".join(f"{v:,.2f} {c}" for c, v in sorted(amounts.items())) or "-"


def _text(value: Cell) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return money(value)
    return str(value)


def _numeric(section: Section, index: int) -> bool:
    values = [row[index] for row in section.rows if row[index] is not None]
    return bool(values) and all(
        isinstance(v, int | float | Decimal | dict) and not isinstance(v, bool) for v in values
    )


def _unbreakable(section: Section, index: int) -> bool:
    """Dates and times: shown whole, like numbers, never folded."""
    values = [row[index] for row in section.rows if row[index] is not None]
    return bool(values) and all(isinstance(v, date) for v in values)


def _plain(value: Cell) -> Any:
    """A JSON value: exact decimals as strings, times in ISO 8601."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {currency: str(amount) for currency, amount in sorted(value.items())}
    return value


def _key(column: str) -> str:
    return column.strip().lower().replace(" / ", "_").replace(" ", "_").replace(".", "")


def table(section: Section) -> Table:
    """A rich table; numbers right-aligned at full width, text wrapped when space is short."""
    grid = Table(title=section.title, show_header=not section.measures)
    texts = [[_text(v) for v in row] for row in section.rows]
    for i, column in enumerate(section.columns):
        numeric = _numeric(section, i) or (section.measures and i > 0)
        widest = max((len(row[i]) for row in texts), default=0)
        if numeric or _unbreakable(section, i) or (section.measures and i == 0):
            # Never cut a figure short: the column takes its widest value's width.
            grid.add_column(
                column, justify="right" if numeric else "left", min_width=widest, no_wrap=True
            )
        else:
            grid.add_column(column, overflow="fold")
    for row in texts:
        grid.add_row(*row)
    return grid


def render(
    sections: Iterable[Section],
    fmt: OutputFormat,
    *,
    console: Console | None = None,
    stream: TextIO | None = None,
) -> None:
    """Print ``sections`` to the console (tables) or ``stream`` (JSON, CSV)."""
    out = stream or sys.stdout
    if fmt is OutputFormat.TABLE:
        console = console or Console()
        for section in sections:
            console.print(table(section))
            if not section.rows and section.empty_note:
                console.print(f"  [dim]{section.empty_note}[/dim]")
        return
    if fmt is OutputFormat.JSON:
        document = [
            {
                "title": s.title,
                "rows": [
                    {_key(c): _plain(v) for c, v in zip(s.columns, row, strict=True)}
                    for row in s.rows
                ],
                **({"note": s.empty_note} if not s.rows and s.empty_note else {}),
            }
            for s in sections
        ]
        json.dump(document, out, indent=2, ensure_ascii=False)
        out.write("\n")
        return
    writer = csv.writer(out, lineterminator="\n")
    for n, s in enumerate(sections):
        if n:
            out.write("\n")
        out.write(f"# {s.title}\n")
        writer.writerow([_key(c) for c in s.columns])
        for row in s.rows:
            writer.writerow([_csv(v) for v in row])


def _csv(value: Cell) -> str:
    plain = _plain(value)
    if plain is None:
        return ""
    if isinstance(plain, dict):
        return "; ".join(f"{amount} {currency}" for currency, amount in plain.items())
    return str(plain)
