"""Tables fit the terminal: flexible columns wrap where there is room and move below the table,
one line per row, where there is not; nothing is cut."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from nas.tables import fit_columns

CELL = "h48 r=sigmoid(x+h) uh=h ruh=r*uh n=tanh(x+ruh) hn=h-n z=sigmoid(x+h) zhn=z*hn h_new=n+zhn"
ROWS = [("8", "0.9721", "64,992", "is gru-h48", CELL), ("32", "0.9554", "18,752", "+0.0084 elman-h32", "h32 n0=x+h")]


def _render(width: int) -> str:
    table = Table()
    for column in ("trial", "val acc", "MACs", "vs baseline", "cell"):
        table.add_column(column)
    console = Console(width=width, record=True, file=open("/dev/null", "w"))
    console.print(fit_columns(table, ROWS, flexible={"cell"}, width=width))
    return console.export_text()


def test_wide_terminals_wrap_the_cell_inside_the_table():
    text = _render(100)
    assert "cell" in text.splitlines()[1] and "trial 8:" not in text
    assert "h_new=n+zhn" in text and "…" not in text


def test_narrow_terminals_put_each_cell_below_the_table_whole():
    text = _render(60)
    assert all(len(line) <= 60 for line in text.splitlines())
    joined = " ".join(text.split())
    assert "trial 8: " + " ".join(CELL.split()) in joined and "trial 32: h32 n0=x+h" in joined
    assert "…" not in text
