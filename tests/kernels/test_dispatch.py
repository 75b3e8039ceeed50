from __future__ import annotations

import pytest
import torch

from kernels import dispatch


def test_cpu_defaults_to_torch(monkeypatch) -> None:
    monkeypatch.delenv("NAS_KERNELS", raising=False)
    assert not dispatch.use_triton(torch.zeros(2))


def test_forced_triton_needs_interpreter(monkeypatch) -> None:
    monkeypatch.setenv("NAS_KERNELS", "triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert dispatch.use_triton(torch.zeros(2))
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert not dispatch.use_triton(torch.zeros(2))


def test_torch_override_and_bad_value(monkeypatch) -> None:
    monkeypatch.setenv("NAS_KERNELS", "torch")
    assert not dispatch.use_triton(torch.zeros(2))
    monkeypatch.setenv("NAS_KERNELS", "cuda")
    with pytest.raises(ValueError, match="NAS_KERNELS"):
        dispatch.use_triton(torch.zeros(2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_uses_triton(monkeypatch) -> None:
    monkeypatch.delenv("NAS_KERNELS", raising=False)
    assert dispatch.use_triton(torch.zeros(2, device="cuda"))


def test_model_dispatches_to_triton_when_forced(monkeypatch) -> None:
    """The model builder goes through the dispatch: forcing Triton runs the interpreted kernel."""
    from kernels.recurrent import triton as rt
    from search_spaces.build import CellModule
    from search_spaces.cells import elman

    calls = []
    original = rt.recurrent
    monkeypatch.setattr(rt, "recurrent", lambda *a, **k: calls.append(1) or original(*a, **k))
    monkeypatch.setenv("NAS_KERNELS", "triton")
    cell = CellModule(elman(4), 3).double()
    x = torch.randn(2, 3, 3, dtype=torch.float64)
    hs, _ = cell(x)
    ref, _ = cell.forward_reference(x)  # the same inputs: the kernel must compute the reference
    assert calls and hs.shape == ref.shape == (2, 3, 4)
    assert torch.allclose(hs, ref, atol=1e-12)


def test_block_sparse_cell_uses_sparse_matmul_when_forced(monkeypatch) -> None:
    """A block-sparse x matrix goes through the block-sparse kernel on the Triton path."""
    import kernels.recurrent as rec
    from search_spaces.build import CellModule
    from search_spaces.cells import elman

    spec = elman(16)
    spec.graph.edges["x", "n0"].update(density=0.5, pattern="block")
    cell = CellModule(spec, 32).double()
    assert cell._x_layout is not None and cell._x_layout.density() == 0.5
    calls = []
    original = rec.block_sparse_matmul
    monkeypatch.setattr(rec, "block_sparse_matmul", lambda *a: calls.append(1) or original(*a))
    monkeypatch.setenv("NAS_KERNELS", "triton")
    x = torch.randn(2, 3, 32, dtype=torch.float64)
    hs, _ = cell(x)
    ref, _ = cell.forward_reference(x)
    assert calls and torch.allclose(hs, ref, atol=1e-12)
