from __future__ import annotations

import pytest

from kernels.recurrent.program import CellProgram, Op, Term
from search_spaces.cells import elman, gru, lstm
from search_spaces.lowering import lower_activation, lower_cell


def test_lower_activation_tree() -> None:
    assert lower_activation("swish") == ("mul", ("x",), ("sigmoid", ("x",)))
    assert lower_activation("tanh") == ("tanh", ("x",))


def test_lower_elman_program() -> None:
    p = lower_cell(elman(4), 3)
    assert p == CellProgram(4, 1, 1, (0,), (Op("add", (Term("x", 0), Term("edge", 0)), 0, ("tanh", ("x",))),), ((1,),))


@pytest.mark.parametrize("make,name", [(lstm, "lstm"), (gru, "gru"), (elman, None)])
def test_library_tag_only_for_exact_cells(make, name) -> None:
    assert lower_cell(make(8), 5).library == name
    assert lower_cell(make(8, "relu"), 5).library is None if make is not elman else True


def test_program_rejects_bad_terms() -> None:
    with pytest.raises(ValueError, match="bad term"):
        CellProgram(4, 1, 1, (0,), (Op("add", (Term("edge", 3),), -1, ("x",)),), ((1,),))
