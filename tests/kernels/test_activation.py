"""The generated activation kernels against float64 torch (search_spaces.activations), interpreted."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kernels.activation import reference
from kernels.activation import triton as act_triton
from search_spaces import get_space
from search_spaces.activations import UNARY, compile_torch
from search_spaces.lowering import lower_activation
from tests.kernels._testing import RATIO, assert_close

HAND = ["mul(x, sigmoid(x))", "sub(one(x), erf(x))", "sigmul(tanh(x), abs(x))", "div(x, cos(x))",
        "max(x, relu(x))", "min(sin(x), neg(x))", "gelu", "softplus", "minzero", "asinh", "atan"]
UNITS = [u for u in UNARY]


def _random_expressions(n: int) -> list[str]:
    space = get_space("activation", cell="gru", hidden_size=8, units=2)
    rng = np.random.default_rng(3)
    return [space.expression(space.sample_params(rng)) for _ in range(n)]


def _case(text: str, dtype: torch.dtype, bias: bool, shape=(5, 7)):
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(*shape, generator=gen, dtype=torch.float64) * 2).to(dtype).requires_grad_()
    b = (torch.randn(shape[-1], generator=gen, dtype=torch.float64)).to(dtype).requires_grad_() if bias else None
    return x, b


@pytest.mark.parametrize("text", HAND + UNITS + _random_expressions(6))
def test_triton_matches_float64_torch(text: str) -> None:
    tree = lower_activation(text)
    for bias in (True, False):
        x, b = _case(text, torch.float64, bias)
        ref_fn = compile_torch(text)
        y_ref = ref_fn(x + b if b is not None else x)
        y = act_triton.activation(x, tree, b)
        dy = torch.randn_like(y)
        inputs = [x] + ([b] if b is not None else [])
        if y_ref.requires_grad:
            g_ref = torch.autograd.grad(y_ref, inputs, dy, allow_unused=True)
        else:  # zero(x), one(x): constant
            g_ref = tuple(None for _ in inputs)
        g = torch.autograd.grad(y, inputs, dy, allow_unused=True)
        assert_close(f"{text} y", y_ref, y, RATIO[torch.float64])
        for name, r, o in zip(("dx", "db"), g_ref, g):
            r = torch.zeros_like(o) if r is None else r
            assert_close(f"{text} {name}", r, o, RATIO[torch.float64])


@pytest.mark.parametrize("text", ["mul(x, sigmoid(x))", "sigmul(tanh(x), abs(x))", "atan", "div(x, cos(x))"])
def test_gradcheck(text: str) -> None:
    x, b = _case(text, torch.float64, True, shape=(3, 4))
    with torch.no_grad():
        x += 0.1  # keep away from the kinks of abs/max
    tree = lower_activation(text)
    assert torch.autograd.gradcheck(lambda x, b: act_triton.activation(x, tree, b), (x, b))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_low_precision_against_float64(dtype: torch.dtype) -> None:
    text = "sigmul(tanh(x), abs(x))"
    x64, b64 = _case(text, torch.float64, True, shape=(9, 40))
    y64 = compile_torch(text)(x64 + b64)
    y = act_triton.activation(x64.detach().to(dtype), lower_activation(text), b64.detach().to(dtype))
    assert y.dtype == dtype
    assert_close("y", y64, y.double(), 2e-5 if dtype == torch.float32 else 1e-2)


def test_reference_path_and_dispatch(monkeypatch) -> None:
    from kernels.activation import activation

    text = "mul(x, sigmoid(x))"
    x, b = _case(text, torch.float64, True)
    monkeypatch.setenv("NAS_KERNELS", "torch")
    assert_close("torch path", compile_torch(text)(x + b), activation(x, lower_activation(text), b), 1e-14)
    assert_close("reference", compile_torch(text)(x + b), reference.activation(x, lower_activation(text), b), 1e-14)


def test_generated_file_is_cached(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NAS_KERNEL_CACHE", str(tmp_path))
    act_triton.kernels_for.cache_clear()
    module = act_triton.kernels_for(lower_activation("cube"))
    assert module.__file__.startswith(str(tmp_path)) and "act_" in module.__file__
    assert act_triton.kernels_for(lower_activation("cube")) is module


def test_outputs_are_poisoned_before_the_kernel() -> None:
    from kernels import _alloc

    assert torch.isnan(_alloc.empty(2, dtype=torch.float32, device=torch.device("cpu"))).all()


def test_bad_bias_shape() -> None:
    with pytest.raises(ValueError, match="bias must have shape"):
        act_triton.activation(torch.zeros(2, 3), ("x",), torch.zeros(4))
