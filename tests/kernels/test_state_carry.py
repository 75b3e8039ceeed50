"""Carried state (truncated BPTT): consecutive calls that pass each call's final states to the next
equal one call over the whole sequence, outputs and final states, on every path that runs a cell.

Paths: the per-step reference, the C++ engine, the generated fused path, the Triton kernels (under
the interpreter, see conftest), torch's fused LSTM/GRU for the named cells, and the model level
(`CellModule.forward` / `SequenceModel.forward_stateful` as the trainer calls them). The engine is
also checked on the language model's long sequences (bptt 64-256) with state in and out, gradients
into the initial state included.
"""

from __future__ import annotations

import pytest
import torch

from kernels.recurrent import fused, native, reference
from kernels.recurrent import triton as rnn_triton
from kernels.recurrent.library import LIBRARY
from search_spaces import Task, build
from search_spaces.build import CellModule
from search_spaces.cells import gru, lstm
from search_spaces.lowering import lower_cell
from tests.kernels._testing import RATIO, assert_close
from tests.kernels.test_recurrent import NAMED, RANDOM, compare, make_inputs, run

NATIVE_OK = native.mode() != "fused" and native.build_error() is None
needs_native = pytest.mark.skipif(not NATIVE_OK, reason=f"C++ engine not built: {native.build_error()}")


def _library(program, xproj, weights, biases, initial):
    """torch's fused LSTM/GRU on an x projection: identity input weights, so the library op sees
    ``xproj`` as its input (its own projection is then the identity)."""
    eye = torch.eye(xproj.shape[-1], dtype=xproj.dtype)
    return LIBRARY[program.library](xproj, eye, weights, biases, initial)


PATHS = {
    "reference": reference.recurrent,
    "native": native.recurrent,
    "fused": fused.recurrent,
    "triton": rnn_triton.recurrent,
}
SPECS = [pytest.param(s, id=n) for n, s in
         (("lstm", NAMED[0]), ("gru", NAMED[1]), ("parallel", NAMED[4]), ("random", RANDOM[2]))]


def chunked(fn, program, xproj, weights, biases, initial, sizes: list[int]):
    """Run ``fn`` over consecutive chunks of ``sizes`` steps, each from the last one's final states."""
    outs, state = [], initial
    for part in xproj.split(sizes, dim=1):
        hs, state = fn(program, part, weights, biases, state)
        outs.append(hs)
    return torch.cat(outs, dim=1), state


def check_carry(fn, program, B: int, sizes: list[int]) -> None:
    xproj, weights, biases, initial = (t.detach() for t in make_inputs(program, B=B, T=sum(sizes)))
    hs, final = fn(program, xproj, weights, biases, initial)
    hs_c, final_c = chunked(fn, program, xproj, weights, biases, initial, sizes)
    if not torch.isfinite(hs).all():
        pytest.skip("this random cell overflows")
    assert_close("hs", hs, hs_c, 1e-12)
    assert_close("final", final, final_c, 1e-12)
    ref_hs, ref_final = reference.recurrent(program, xproj, weights, biases, initial)
    assert_close("hs vs reference", ref_hs, hs_c, RATIO[torch.float64])
    assert_close("final vs reference", ref_final, final_c, RATIO[torch.float64])


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("path", ["reference", "fused", "triton", pytest.param("native", marks=needs_native)])
def test_carried_state_equals_one_long_forward(path: str, spec) -> None:
    program = lower_cell(spec, 8)
    sizes = [2, 1, 3] if path == "triton" else [4, 7, 1, 5]  # the interpreter is slow
    check_carry(PATHS[path], program, B=3, sizes=sizes)


@pytest.mark.parametrize("spec", [lstm(8), gru(8)], ids=["lstm", "gru"])
def test_library_path_carries_state(spec) -> None:
    program = lower_cell(spec, 8 * 4)
    assert program.library in LIBRARY
    check_carry(_library, program, B=3, sizes=[4, 7, 1, 5])


@pytest.mark.parametrize("spec", SPECS)
def test_model_stateful_calls_equal_one_forward(spec) -> None:
    """`SequenceModel.forward_stateful` over bptt windows (what the trainer runs) against one call;
    the trainer detaches the state between windows, which must not break the backward."""
    task = Task(input_size=11, seq_len=6, output_size=11, input_kind="tokens", objective="lm")
    model = build(spec, task, seed=1).double()
    tokens = torch.randint(0, 11, (3, 18), generator=torch.Generator().manual_seed(0))
    full, final = model.forward_stateful(tokens)
    outs, state = [], None
    for window in tokens.split(6, dim=1):
        out, state = model.forward_stateful(window, state)
        out.square().sum().backward()  # truncated BPTT: a backward per window ...
        state = {k: v.detach() for k, v in state.items()}  # ... and the state carried detached
        outs.append(out)
    assert_close("logits", full, torch.cat(outs, dim=1), 1e-12)
    for name in final:
        assert_close(name, final[name], state[name], 1e-12)
    assert_close("forward", model(tokens), full, 0.0)


def test_cell_module_state_errors_name_the_state() -> None:
    cell = CellModule(lstm(4), 3)
    x = torch.zeros(2, 5, 3)
    with pytest.raises(ValueError, match=r"missing \['c'\]"):
        cell(x, {"h": torch.zeros(2, 4)})
    with pytest.raises(ValueError, match=r"state\['h'\] must be \[2, 4\]"):
        cell(x, {"h": torch.zeros(3, 4), "c": torch.zeros(2, 4)})


@needs_native
@pytest.mark.parametrize("T", [64, 256])
@pytest.mark.parametrize("spec", [NAMED[0], NAMED[4], RANDOM[2]], ids=["lstm", "parallel", "random"])
def test_native_long_sequences_with_state(spec, T: int) -> None:
    """The engine on a language model's windows: state in and out, every gradient (the initial
    state's included) against the reference in float64, and float32 against it."""
    program = lower_cell(spec, 8)
    inputs = make_inputs(program, B=4, T=T, seed=T)
    compare(run(reference.recurrent, program, inputs), run(native.recurrent, program, inputs), RATIO[torch.float64])
    out32 = run(native.recurrent, program, make_inputs(program, B=4, T=T, dtype=torch.float32, seed=T))
    compare(run(reference.recurrent, program, inputs), out32, RATIO[torch.float32])
