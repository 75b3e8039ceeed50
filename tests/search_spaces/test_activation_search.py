"""The activation search: every proposed function evaluates, differentiates and matches its kernel;
equivalent expressions merge; unsafe ones are rejected with the reason; the grid proposer enumerates
each distinct safe function once; the SAFS joint space decodes, validates and builds."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import optuna
import pytest
import torch

from kernels.activation import reference
from nas.config import load_config
from nas.proposers import GridSampler, make_sampler
from search_spaces import SpecError, Task, build, get_space
from search_spaces.activations import PROBE_POINTS, ExpressionError, check_safe, compile_torch, probe_signature
from search_spaces.lowering import lower_activation
from tests.kernels._testing import RATIO, assert_close

SWISH = ("mul(x, sigmoid(x))", "sigmul(x, x)", "mul(sigmoid(x), x)", "swish", "silu")
TASK = Task(input_size=8, seq_len=5, output_size=3)


def _space(**options):  # noqa: ANN003, ANN202
    return get_space("activation", hidden_size=8, **options)


@pytest.fixture(scope="module")
def unique() -> list[tuple[dict, str]]:
    return _space().unique_params()


def test_every_function_evaluates_differentiates_and_matches_the_torch_kernel(unique) -> None:
    assert 300 < len(unique) < 1014  # the default units=1 space: 1,014 assignments, ~480 functions
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(4, 37, generator=gen, dtype=torch.float64) * 3).requires_grad_()
    for _, text in unique:
        y_ref = compile_torch(text)(x)
        y = reference.activation(x, lower_activation(text))
        assert_close(f"{text} y", y_ref, y, RATIO[torch.float64])
        dy = torch.ones_like(y)
        (g_ref,) = torch.autograd.grad(y_ref, x, dy)
        (g,) = torch.autograd.grad(y, x, dy)
        assert torch.isfinite(g_ref).all(), text
        assert_close(f"{text} dx", g_ref, g, RATIO[torch.float64])


def test_a_sample_of_functions_matches_the_triton_kernel(unique, request) -> None:
    if os.environ.get("TRITON_INTERPRET") != "1":
        # kernels (and their generated helper modules) must be imported interpreted: without
        # tests/kernels/conftest.py in this session, run this test alone in a fresh interpreter
        env = {**os.environ, "TRITON_INTERPRET": "1"}
        node = f"{request.node.path}::{request.node.name}"
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", node], env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
        return
    from kernels.activation import triton as act_triton

    rng = np.random.default_rng(0)
    units2 = _space(units=2)
    texts = [unique[i][1] for i in rng.choice(len(unique), 5, replace=False)]
    texts += [units2.expression(units2.sample_params(rng)) for _ in range(8)]
    gen = torch.Generator().manual_seed(1)
    x = (torch.randn(3, 9, generator=gen, dtype=torch.float64) * 2).requires_grad_()
    b = torch.randn(9, generator=gen, dtype=torch.float64).requires_grad_()
    for text in texts:
        try:
            check_safe(text)
        except ExpressionError:
            continue  # never trained, so never run by a kernel
        y_ref = compile_torch(text)(x + b)
        y = act_triton.activation(x, lower_activation(text), b)
        assert_close(f"{text} y", y_ref, y, RATIO[torch.float64])
        if y_ref.requires_grad:
            g_ref = torch.autograd.grad(y_ref, (x, b), torch.ones_like(y_ref))
            g = torch.autograd.grad(y, (x, b), torch.ones_like(y))
            for name, r, o in zip(("dx", "db"), g_ref, g):
                assert_close(f"{text} {name}", r, o, RATIO[torch.float64])


def test_swish_written_several_ways_is_one_function(unique) -> None:
    signatures = {probe_signature(t) for t in SWISH}
    assert len(signatures) == 1
    assert probe_signature("tanh") not in signatures
    assert probe_signature("mul(x, tanh(x))") not in signatures
    space = _space()
    specs = [space.decode({"u1": "x", "u2": "sigmoid", "b1": "mul"}), space.decode({"u1": "x", "u2": "x", "b1": "sigmul"}),
             space.decode({"u1": "sigmoid", "u2": "x", "b1": "mul"})]
    assert len({space.canonical_hash(s) for s in specs}) == 1
    assert space.canonical_hash(space.decode({"u1": "x", "u2": "tanh", "b1": "mul"})) != space.canonical_hash(specs[0])
    assert sum(probe_signature(t) in signatures for _, t in unique) == 1
    assert len({probe_signature(t) for _, t in unique}) == len(unique)


def test_distinct_functions_are_kept_apart() -> None:
    # differ only far out (|x| > 6) or by a small scale: still different functions
    assert probe_signature("min(x, one(x))") != probe_signature("x")
    assert probe_signature("add(x, x)") != probe_signature("x")
    assert len(PROBE_POINTS) > 100


@pytest.mark.parametrize(
    "text, reason",
    [
        ("exp(exp(x))", "inf"),
        ("mul(exp(x), exp(x))", "overflow risk"),
        ("cosh(square(x))", "overflow risk"),
        ("sub(x, x)", "constant"),
        ("mul(zero(x), x)", "constant"),
    ],
)
def test_unsafe_functions_are_rejected_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(ExpressionError, match=reason):
        check_safe(text)


def test_validate_rejects_unsafe_proposals_before_training() -> None:
    space = _space()
    with pytest.raises(SpecError, match=r"nodes\['n'\].activation: unsafe: .*overflow"):
        space.validate(space.decode({"u1": "exp", "u2": "exp", "b1": "mul"}))
    space.validate(space.decode({"u1": "x", "u2": "sigmoid", "b1": "mul"}))
    for t in ("tanh", "relu", "silu", "gelu", "sigmoid", "x"):
        check_safe(t)


def test_grid_enumerates_each_distinct_safe_function_once() -> None:
    space = _space(unary=["x", "neg", "sigmoid", "tanh", "exp", "zero"], binary=["add", "mul", "sigmul"])
    sampler = make_sampler("grid", seed=0, space=space)
    assert isinstance(sampler, GridSampler)
    size = sampler.grid_size()
    assert size == len(space.unique_params()) < space.grid_size()
    study = optuna.create_study(sampler=sampler)
    seen = []
    for _ in range(size):
        trial = study.ask()
        spec = space.suggest(trial)
        space.validate(spec)
        seen.append(space.canonical_hash(spec))
        study.tell(trial, 0.0)
    assert len(set(seen)) == size
    resumed = optuna.create_study(sampler=make_sampler("grid", seed=0, space=space), storage=study._storage,
                                  study_name=study.study_name, load_if_exists=True)
    with pytest.warns(UserWarning, match="exhausted"):
        space.suggest(resumed.ask())  # a resumed study knows the whole grid was taken


def test_safs_space_joins_activation_and_sparsity() -> None:
    space = get_space("safs", hidden_size=16, input_size=8, densities=[1.0, 0.25], patterns=["magnitude", "watts_strogatz"])
    names = [d.name for d in space.decisions()]
    assert names[:3] == ["u1", "u2", "b1"] and "density[h->z]" in names
    rng = np.random.default_rng(0)
    for _ in range(5):
        params = space.sample_params(rng)
        spec = space.decode(params)
        assert spec.graph.nodes["n"]["activation"] == space.expression(params)
        try:
            space.validate(spec)
        except SpecError as exc:
            assert "unsafe" in str(exc)
            continue
        model = build(spec, TASK)
        model(torch.randn(2, 5, 8)).sum().backward()
    a = space.decode({"u1": "x", "u2": "sigmoid", "b1": "mul", **space.sparsity_space.uniform_params(0.25)})
    b = space.decode({"u1": "x", "u2": "x", "b1": "sigmul", **space.sparsity_space.uniform_params(0.25)})
    c = space.decode({"u1": "x", "u2": "x", "b1": "sigmul", **space.sparsity_space.uniform_params(1.0)})
    assert space.canonical_hash(a) == space.canonical_hash(b) != space.canonical_hash(c)
    assert space.cost(a, TASK)["macs"] < space.cost(c, TASK)["macs"]


@pytest.mark.parametrize("name", ["activation_search", "sparsity_search", "safs_search"])
def test_configs_load(name: str) -> None:
    config = load_config(f"configs/{name}.yaml")
    space = config.space.make()
    assert space.decisions()
