"""The C++ CPU engine of recurrent cells against the per-step reference.

Same trust chain as the fused path (tests/kernels/test_recurrent.py): float64 at tight tolerance,
float32 against float64 by relative RMS error, gradcheck; plus every activation unit the engine
implements (value and derivative, at kinks, on NaN), random Specs from every space, and the dispatch.
Skipped only where no C++ compiler builds the engine (the fused path then serves).
"""

from __future__ import annotations

import math

import pytest
import torch

from kernels.activation.expr import BINARY_UNITS, UNARY_RULES
from kernels.recurrent import LIBRARY_LSTM_MIN_HIDDEN, cell_sequence, native, prefer_library, reference
from kernels.recurrent.program import CellProgram, Op, Term
from search_spaces.build import CellModule
from search_spaces.cells import gru, lstm
from search_spaces.lowering import lower_cell
from tests.kernels._testing import RATIO, random_specs
from tests.kernels.test_recurrent import NAMED, compare, make_inputs, run

pytestmark = pytest.mark.skipif(
    native.mode() == "fused" or native.build_error() is not None,
    reason=f"C++ engine not built: {native.build_error()}",
)

RANDOM = random_specs(4, hidden=8, seed=7, input_size=8)
SPECS = [pytest.param(s, id=f"{s.graph.graph['space']}{i}") for i, s in enumerate(NAMED + RANDOM)]


@pytest.mark.parametrize("spec", SPECS)
def test_native_matches_reference(spec) -> None:
    program = lower_cell(spec, 8)
    inputs = make_inputs(program, B=3, T=5)
    compare(run(reference.recurrent, program, inputs), run(native.recurrent, program, inputs), RATIO[torch.float64])


@pytest.mark.parametrize("spec", SPECS)
def test_native_float32_against_float64(spec) -> None:
    program = lower_cell(spec, 8)
    ref = run(reference.recurrent, program, make_inputs(program, B=4, T=6))
    out = run(native.recurrent, program, make_inputs(program, B=4, T=6, dtype=torch.float32))
    compare(ref, out, RATIO[torch.float32])


@pytest.mark.parametrize("spec", SPECS[:6])
def test_native_gradcheck(spec) -> None:
    program = lower_cell(spec, 3)
    inputs = make_inputs(program, B=2, T=3)
    assert torch.autograd.gradcheck(lambda *a: native.recurrent(program, *a), inputs)


def unit_program(tree: tuple) -> CellProgram:
    """h_t = act(x_t + h W): one op, so the activation's value and derivative reach every output."""
    return CellProgram(hidden=4, num_states=1, num_x=1, edge_src=(0,),
                       ops=(Op("add", (Term("x", 0), Term("edge", 0)), 0, tree),), outputs=((1,),))


def unit_tree(unit: str) -> tuple:
    x = ("x",)
    if unit in ("zero", "one"):  # constants: their derivative is zero, so add them to x
        return ("add", x, (unit, x))
    return (unit, x) if unit in UNARY_RULES else (unit, x, ("sigmoid", x)) if unit != "div" else (unit, x, ("tanh", x))


@pytest.mark.parametrize("unit", sorted(UNARY_RULES) + list(BINARY_UNITS))
def test_every_activation_unit(unit: str) -> None:
    """Each unit's value and derivative against torch's (float64), with inputs on the kinks (0) and
    across the exp range."""
    program = unit_program(unit_tree(unit))
    xp, w, b, h0 = make_inputs(program, B=5, T=4)
    with torch.no_grad():
        xp[0, :, :2] = 0.0  # kinks of relu/abs/max...: x + h W + b lands on 0 only by luck, so zero the
        w[:, :2] = 0.0  # whole pre-activation of two units of the first sequence
        b[:, :2] = 0.0
        h0[:, 0, :2] = 0.0
        xp[1] *= 30.0  # large pre-activations: the exp's saturation, softplus above 20
    inputs = (xp, w, b, h0)
    compare(run(reference.recurrent, program, inputs), run(native.recurrent, program, inputs), RATIO[torch.float64])


@pytest.mark.parametrize("unit", ["tanh", "sigmoid", "relu", "exp", "max"])
def test_nan_propagates(unit: str) -> None:
    program = unit_program(unit_tree(unit))
    xp, w, b, h0 = (t.detach() for t in make_inputs(program, B=2, T=3))
    xp[0, 1, 0] = math.nan
    hs, _ = native.recurrent(program, xp, w, b, h0)
    ref, _ = reference.recurrent(program, xp, w, b, h0)
    assert torch.equal(torch.isnan(hs), torch.isnan(ref))
    assert torch.isnan(hs[0, 1, 0])


def test_deterministic_and_shapes() -> None:
    program = lower_cell(RANDOM[0], 8)
    inputs = make_inputs(program, B=3, T=5)
    a, b = run(native.recurrent, program, inputs), run(native.recurrent, program, inputs)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    xp, w, bias, h0 = inputs
    with pytest.raises(ValueError, match=r"xproj must be"):
        native.recurrent(program, xp[:, :, :3], w, bias, h0)
    with pytest.raises(ValueError, match="share a dtype"):
        native.recurrent(program, xp, w.float(), bias, h0)


def test_empty_sequence_returns_initial_state() -> None:
    program = lower_cell(lstm(4), 4)
    xp, w, b, h0 = (t.detach() for t in make_inputs(program, B=2, T=0))
    hs, final = native.recurrent(program, xp, w, b, h0)
    assert hs.shape == (2, 0, 4) and torch.equal(final, h0)


def test_cell_module_runs_on_the_engine(monkeypatch) -> None:
    """The model builder's CPU path is the engine (unless NAS_RECURRENT_CPU=fused), same numbers."""
    cell = CellModule(RANDOM[1], 8, seed=0).double()
    x = torch.randn(3, 5, 8, dtype=torch.float64)
    calls = []
    real = native.recurrent
    monkeypatch.setattr(native, "recurrent", lambda *a: calls.append(1) or real(*a))
    hs, _ = cell(x)
    assert calls
    monkeypatch.setenv("NAS_RECURRENT_CPU", "fused")
    hs_fused, _ = cell(x)
    assert len(calls) == 1
    torch.testing.assert_close(hs, hs_fused, rtol=1e-10, atol=1e-12)


def test_mode_is_validated(monkeypatch) -> None:
    monkeypatch.setenv("NAS_RECURRENT_CPU", "gpu")
    with pytest.raises(ValueError, match="NAS_RECURRENT_CPU must be one of auto, native, fused"):
        native.mode()


@pytest.mark.parametrize("make", [lstm, gru], ids=["lstm", "gru"])
def test_library_op_and_engine_agree(make) -> None:
    """An exact LSTM/GRU gives the same outputs and gradients on torch's op and on the engine."""
    cell = CellModule(make(8), 8, seed=0).double()
    x = torch.randn(2, 4, 8, dtype=torch.float64)
    runs = []
    for library in (True, False):
        cell.zero_grad(set_to_none=True)
        wx, w, b = cell.kernel_params()
        hs, final = cell_sequence(cell.program, x, wx, w, b, library=library)
        (hs.sum() + final.sum()).backward()
        runs.append([hs, final, *(p.grad for p in cell.parameters())])
    for a, c in zip(*runs):
        torch.testing.assert_close(a, c, rtol=1e-10, atol=1e-12)


def test_dispatch_prefers_the_engine_where_it_is_faster(monkeypatch) -> None:
    """Measured by benchmarks/library_path.py: the engine for a GRU and a small LSTM, torch's op for
    an LSTM from 32 units; without the engine, torch's op for both."""
    program = lambda make, hidden: lower_cell(make(hidden), 6)  # noqa: E731
    assert not prefer_library(program(gru, 128)) and not prefer_library(program(lstm, 16))
    assert prefer_library(program(lstm, LIBRARY_LSTM_MIN_HIDDEN)) and prefer_library(program(lstm, 128))
    assert not prefer_library(lower_cell(RANDOM[0], 8))
    assert prefer_library(program(gru, 8), torch.zeros(1, dtype=torch.bfloat16))  # tensors the engine cannot run
    monkeypatch.setenv("NAS_RECURRENT_CPU", "fused")
    assert prefer_library(program(gru, 8)) and prefer_library(program(lstm, 8))


def test_workspaces_are_not_shared_between_live_graphs() -> None:
    """Forward twice, then backward both (the second first): the engine reuses a workspace only
    once autograd has freed the saved tensors, so the first graph's are intact."""
    program = lower_cell(RANDOM[0], 8)
    a, b = make_inputs(program, B=3, T=5, seed=0), make_inputs(program, B=3, T=5, seed=1)
    expected = [run(reference.recurrent, program, inputs) for inputs in (a, b)]
    outs = [native.recurrent(program, *inputs) for inputs in (a, b)]  # both graphs alive
    for (hs, final), inputs, ref in reversed(list(zip(outs, (a, b), expected))):
        gen = torch.Generator().manual_seed(1)
        dhs = torch.randn(hs.shape, generator=gen, dtype=torch.float64)
        dfinal = torch.randn(final.shape, generator=gen, dtype=torch.float64)
        grads = torch.autograd.grad((hs, final), inputs, (dhs, dfinal))
        compare(ref, [hs, final, *grads], RATIO[torch.float64])


def test_failed_builds_name_every_flag_set_and_native_mode_fails_loudly(monkeypatch, tmp_path) -> None:
    """A compiler that refuses the flags: each flag set is tried, the error names each; the CPU path
    then falls back to TorchScript (auto) or raises (NAS_RECURRENT_CPU=native)."""
    monkeypatch.setenv("NAS_KERNEL_CACHE", str(tmp_path))
    monkeypatch.setattr(native, "FLAG_SETS", (("-O3", "--no-such-flag-a"), ("-O3", "--no-such-flag-b")))
    module, error = native._load.__wrapped__()
    assert module is None and "--no-such-flag-a" in error and "--no-such-flag-b" in error
    monkeypatch.setattr(native, "_load", lambda: (None, error))
    program = lower_cell(RANDOM[0], 8)
    xp, w, b, h0 = make_inputs(program, B=2, T=3)
    assert not native.supports(program, xp, w, b, h0)  # auto: the TorchScript path serves
    monkeypatch.setenv("NAS_RECURRENT_CPU", "native")
    with pytest.raises(RuntimeError, match="NAS_RECURRENT_CPU=native but the C\\+\\+ engine did not build"):
        native.available()


@pytest.mark.parametrize("unit", list(BINARY_UNITS))
def test_binary_unit_of_the_input_alone(unit: str) -> None:
    """A one-instruction activation whose both arguments are the pre-activation (``mul(x, x)``):
    the engine's one-unit backward passes the incoming gradient as both arguments' derivative."""
    program = unit_program((unit, ("x",), ("x",)))
    inputs = make_inputs(program, B=5, T=4)
    compare(run(reference.recurrent, program, inputs), run(native.recurrent, program, inputs), RATIO[torch.float64])
