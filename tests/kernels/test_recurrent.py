"""Recurrent cells: generated fused path and Triton kernel against the per-step reference.

Trust in steps: `CellModule.forward_reference` (the original loop) checks `kernels.recurrent.reference`
through `CellModule.forward`; the reference checks `fused` and `triton` on float64 at tight tolerance,
float32 against float64 by relative RMS error, and gradcheck.
"""

from __future__ import annotations

import pytest
import torch

from kernels.recurrent import fused, reference
from kernels.recurrent.program import CellProgram
from search_spaces.build import CellModule
from search_spaces.cells import elman, gru, lstm, make_spec
from search_spaces.lowering import lower_cell
from tests.kernels._testing import RATIO, assert_close, random_specs, rel_rms

# a cell with time-parallel ops (n1, n4 read only x), used by chain ops through add, mul and edges
PARALLEL = make_spec(8, {
    "n0": ("add", "tanh", True, [("x", True), ("h", True)]),
    "n1": ("add", "sigmoid", True, [("x", True)]),
    "n2": ("mul", "tanh", True, [("n1", True), ("n0", True)]),
    "n3": ("add", "relu", True, [("n1", True), ("h", True)]),
    "n4": ("mul", "mul(x, sigmoid(x))", True, [("x", True), ("n1", False)]),
    "n5": ("sub", "x", False, [("n4", True), ("n2", False)]),
})
NAMED = [lstm(8), gru(8), elman(8), lstm(8, "mul(x, sigmoid(x))"), PARALLEL]
RANDOM = random_specs(2, hidden=8, seed=1, input_size=8)
SPECS = [pytest.param(s, id=f"{s.graph.graph['space']}{i}") for i, s in enumerate(NAMED + RANDOM)]


def test_parallel_ops_are_found() -> None:
    assert fused._Plan(lower_cell(PARALLEL, 8)).par == {1, 4}


def make_inputs(program: CellProgram, B: int, T: int, dtype=torch.float64, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    H = program.hidden

    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen, dtype=torch.float64) * scale).to(dtype).requires_grad_()

    return (
        rnd(B, T, program.num_x * H, scale=0.5),
        rnd(len(program.edge_src), H, H, scale=H**-0.5),
        rnd(program.num_biases, H, scale=0.5),
        rnd(program.num_states, B, H, scale=0.5),
    )


def run(fn, program, inputs, seed: int = 1):
    """Outputs and gradients of every input for a fixed random output gradient."""
    hs, final = fn(program, *inputs)
    gen = torch.Generator().manual_seed(seed)
    dhs = torch.randn(hs.shape, generator=gen, dtype=torch.float64).to(hs.dtype)
    dfinal = torch.randn(final.shape, generator=gen, dtype=torch.float64).to(hs.dtype)
    grads = torch.autograd.grad((hs, final), inputs, (dhs, dfinal), allow_unused=True)
    grads = [torch.zeros_like(i) if g is None else g for i, g in zip(inputs, grads)]
    return [hs, final, *grads]


NAMES = ["hs", "final", "dxproj", "dweights", "dbiases", "dinitial"]


def compare(ref, out, ratio: float) -> None:
    if not all(torch.isfinite(r).all() for r in ref):
        pytest.skip("the reference itself overflows for this random cell (an exploding activation)")
    for name, r, o in zip(NAMES, ref, out):
        assert_close(name, r, o, ratio)


@pytest.mark.parametrize("spec", SPECS)
def test_cell_module_matches_original_loop(spec) -> None:
    cell = CellModule(spec, 8, seed=3).double()
    x = torch.randn(3, 4, 8, dtype=torch.float64)
    hs, final = cell(x)
    hs_ref, final_ref = cell.forward_reference(x)
    assert_close("hs", hs_ref, hs, 1e-12)
    for s in final_ref:
        assert_close(s, final_ref[s], final[s], 1e-12)
    params = list(cell.parameters())
    g = torch.autograd.grad(hs.square().sum(), params)
    g_ref = torch.autograd.grad(hs_ref.square().sum(), params)
    for (name, _), a, b in zip(cell.named_parameters(), g_ref, g):
        assert_close(name, a, b, 1e-12)


@pytest.mark.parametrize("spec", SPECS)
def test_fused_matches_reference(spec) -> None:
    program = lower_cell(spec, 8)
    inputs = make_inputs(program, B=3, T=5)
    compare(run(reference.recurrent, program, inputs), run(fused.recurrent, program, inputs), RATIO[torch.float64])


@pytest.mark.parametrize("spec", SPECS[:4])
def test_fused_gradcheck(spec) -> None:
    program = lower_cell(spec, 3)
    inputs = make_inputs(program, B=2, T=3)
    assert torch.autograd.gradcheck(lambda *a: fused.recurrent(program, *a), inputs)


@pytest.mark.parametrize("spec", SPECS[:4])
def test_fused_float32_against_float64(spec) -> None:
    program = lower_cell(spec, 8)
    ref = run(reference.recurrent, program, make_inputs(program, B=4, T=6))
    out = run(fused.recurrent, program, make_inputs(program, B=4, T=6, dtype=torch.float32))
    compare(ref, out, RATIO[torch.float32])


@pytest.mark.parametrize("spec", SPECS)
def test_fused_runs_scripted_and_matches_python(spec) -> None:
    """TorchScript takes every program (no silent fallback), and runs the same generated code."""
    program = lower_cell(spec, 8)
    fns = fused.compiled(program)
    assert fns["script_error"] is None
    xp, w, b, h0 = (t.detach() for t in make_inputs(program, B=3, T=5))
    with torch.no_grad():
        hs, final, saved = fns["forward"](xp, w, b, h0, True)
        forward, backward = fns["python"]
        hs_py, final_py, saved_py = forward(xp, w, b, h0, True)
        dhs, dfinal = torch.randn_like(hs), torch.randn_like(final)
        grads = fns["backward"](saved, w, b, xp, dhs, dfinal)
        grads_py = backward(saved_py, w, b, xp, dhs, dfinal)
    compare([hs_py, final_py, *grads_py], [hs, final, *grads], RATIO[torch.float64])


def test_shape_errors_name_sizes() -> None:
    program = lower_cell(elman(4), 3)
    xp, w, b, h0 = make_inputs(program, B=2, T=3)
    with pytest.raises(ValueError, match=r"weights must be \[1, 4, 4\]"):
        fused.recurrent(program, xp, w[:, :2], b, h0)


# ---- the Triton kernel under the interpreter (tiny shapes: the interpreter is slow) ------------------
from kernels.recurrent import triton as rnn_triton  # noqa: E402


@pytest.mark.parametrize("spec", SPECS)
def test_triton_matches_reference(spec) -> None:
    program = lower_cell(spec, 8)
    inputs = make_inputs(program, B=3, T=4)
    compare(run(reference.recurrent, program, inputs), run(rnn_triton.recurrent, program, inputs), RATIO[torch.float64])


@pytest.mark.parametrize("spec", [NAMED[0], NAMED[1], RANDOM[0]], ids=["lstm", "gru", "random"])
def test_triton_gradcheck(spec) -> None:
    program = lower_cell(spec, 8)
    inputs = make_inputs(program, B=2, T=2)
    assert torch.autograd.gradcheck(lambda *a: rnn_triton.recurrent(program, *a), inputs, fast_mode=True)


@pytest.mark.parametrize("spec", [NAMED[0], RANDOM[1]], ids=["lstm", "random"])
def test_triton_float32_against_float64(spec) -> None:
    program = lower_cell(spec, 8)
    ref = run(reference.recurrent, program, make_inputs(program, B=17, T=3))  # two batch blocks
    out = run(rnn_triton.recurrent, program, make_inputs(program, B=17, T=3, dtype=torch.float32))
    compare(ref, out, RATIO[torch.float32])


@pytest.mark.parametrize("spec", [lstm(40), RANDOM[0]], ids=["lstm", "random"])
def test_triton_head_split_matches_reference(spec) -> None:
    """Hidden state split in heads of 16 columns (40 = 16 + 16 + 8 padded): same numbers."""
    program = lower_cell(spec, 8)
    inputs = make_inputs(program, B=3, T=3)
    out = run(lambda *a: rnn_triton.recurrent(*a, head=16), program, inputs)
    compare(run(reference.recurrent, program, inputs), out, RATIO[torch.float64])


def test_head_block_choice() -> None:
    assert rnn_triton.head_block(lower_cell(elman(50), 4)) == 64
    assert rnn_triton.head_block(lower_cell(elman(65), 4)) == rnn_triton.HEAD_BLOCK
    with pytest.raises(ValueError, match="power of two"):
        rnn_triton.recurrent(lower_cell(elman(8), 4), *make_inputs(lower_cell(elman(8), 4), 2, 2), head=24)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_triton_on_cuda() -> None:
    program = lower_cell(lstm(32), 16)
    inputs = [t.detach().cuda().float().requires_grad_() for t in make_inputs(program, B=40, T=7)]
    ref = run(reference.recurrent, program, inputs)
    out = run(rnn_triton.recurrent, program, inputs)
    compare(ref, out, 1e-4)
