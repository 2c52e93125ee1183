"""The bench's text tables, drawn by rich: a figure, its value and a note per row, in sections."""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

WIDTH = 160  # a pipe has no width; wide enough that a figure's label never wraps

Row = tuple[Any, ...]  # label, value, note; or one cell a column


def row(label: str, value: Any, note: str = "") -> Row:
    """One figure: its label, its value and what to read it against."""
    return (label, value, note)


def render(title: str, rows: Iterable[Row | str], headers: tuple[str, ...] = ()) -> str:
    """`rows` as one table under `title`; a string among them starts a section named by it."""
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_header=bool(headers),
        show_edge=False,
        pad_edge=False,
    )
    names = headers or ("", "", "")
    for i, name in enumerate(names):
        table.add_column(name, no_wrap=i == 0, overflow="fold")
    for item in rows:
        if isinstance(item, str):
            if table.row_count:
                table.add_section()
            if item:
                table.add_row(item, *[""] * (len(names) - 1), style="bold")
            continue
        table.add_row(*(str(cell) for cell in item))
    console = Console(
        file=io.StringIO(), width=WIDTH, color_system=None, force_terminal=False, highlight=False
    )
    console.print(table)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    return "\n".join(line.rstrip() for line in out.splitlines())
