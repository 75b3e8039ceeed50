"""The CPU benchmark's naive per-edge loop computes the same cell as our path (`CellModule.forward`)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from search_spaces.build import CellModule
from search_spaces.cells import gru, lstm
from tests.kernels._testing import RATIO, assert_close, random_specs


def _load_benchmark():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "cells_cpu.py"
    spec = importlib.util.spec_from_file_location("cells_cpu_bench", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


SPECS = [lstm(8), gru(8)] + random_specs(2, hidden=8, seed=4, input_size=6)


@pytest.mark.parametrize("spec", [pytest.param(s, id=f"{s.graph.graph['space']}{i}") for i, s in enumerate(SPECS)])
def test_naive_per_edge_loop_matches_our_path(spec) -> None:
    bench = _load_benchmark()
    cell = CellModule(spec, 6, seed=2)
    x = torch.randn(3, 5, 6, generator=torch.Generator().manual_seed(0))
    hs, final = cell(x)
    hs_naive, final_naive = bench.naive_per_edge_loop(cell, x)
    if not torch.isfinite(hs_naive).all():
        pytest.skip("this random cell overflows (an exploding activation)")
    assert_close("hs", hs_naive, hs, RATIO[torch.float32])
    for s in final:
        assert_close(s, final_naive[s], final[s], RATIO[torch.float32])
    params = list(cell.parameters())
    grads = torch.autograd.grad(hs.square().sum(), params)
    grads_naive = torch.autograd.grad(hs_naive.square().sum(), params)
    for (name, _), a, b in zip(cell.named_parameters(), grads_naive, grads):
        assert_close(name, a, b, RATIO[torch.float32])
