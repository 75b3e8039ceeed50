"""The one table of activation units against the places that cannot be produced from it (native.cpp)."""

from __future__ import annotations

import re

from kernels.activation.units import DIV_EPS, UNITS
from kernels.recurrent import native


def _cpp_enum() -> dict[str, int]:
    """``enum Unit`` of native.cpp, numbered as C++ numbers it (implicit values count up from the last)."""
    body = re.search(r"enum Unit : int \{(.*?)\};", native.SOURCE.read_text(), re.S)
    assert body, "native.cpp has no `enum Unit : int { ... };`"
    out, value = {}, -1
    for item in (i.strip() for i in body.group(1).split(",")):
        if not item:
            continue
        name, _, given = (p.strip() for p in item.partition("="))
        value = int(given) if given else value + 1
        out[name] = value
    return out


def test_cpp_enum_has_every_unit_with_the_table_opcode() -> None:
    enum = _cpp_enum()
    assert enum.pop("X") == 0  # register 0, the pre-activation
    assert enum == {name.upper(): u.opcode for name, u in UNITS.items()}


def test_cpp_implements_value_and_derivative_of_every_unit() -> None:
    source = native.SOURCE.read_text()
    for name in UNITS:
        cases = re.findall(rf"\bcase {name.upper()}\b", source)
        assert len(cases) >= 2, f"native.cpp: unit {name} needs a value case and a derivative case, has {len(cases)}"


def test_cpp_div_eps_is_the_table_one() -> None:
    match = re.search(r"constexpr double DIV_EPS = ([0-9.e+-]+);", native.SOURCE.read_text())
    assert match and float(match.group(1)) == DIV_EPS


def test_unit_arities_and_rules() -> None:
    for name, u in UNITS.items():
        assert u.arity in (1, 2), name
        assert u.code.count("{}") == u.arity, name
        assert (u.rule is not None) == (u.arity == 1), name
