"""Spec validation: malformed cells are rejected with the field named."""

from __future__ import annotations

import json

import pytest

from search_spaces import Spec, SpecError, elman, lstm
from search_spaces.activations import ExpressionError, canonical, compile_torch, parse


def _mutate(spec: Spec, fn) -> str:
    data = spec.to_dict()
    fn(data)
    return json.dumps(data)


@pytest.mark.parametrize(
    "mutation, field",
    [
        (lambda d: d["graph"].update(version=99), "graph.version"),
        (lambda d: d["graph"].update(hidden_size=0), "graph.hidden_size"),
        (lambda d: d["graph"].update(states=["c"]), "graph.states"),
        (lambda d: next(n for n in d["nodes"] if n["id"] == "n0").update(combine="pow"), "nodes['n0'].combine"),
        (lambda d: next(n for n in d["nodes"] if n["id"] == "n0").update(activation="tanhh"), "nodes['n0'].activation"),
        (lambda d: d["edges"][0].update(density=1.5), "edges"),
        (lambda d: d["edges"][0].update(pattern="diagonal", density=0.5), "edges"),
        (lambda d: d["edges"].pop(), "does not reach"),
        (lambda d: d.pop("nodes"), "nodes"),
    ],
)
def test_malformed_specs_name_the_field(mutation, field):
    with pytest.raises(SpecError) as info:
        Spec.from_json(_mutate(elman(8), mutation))
    assert field in str(info.value)


def test_not_json_and_not_an_object():
    with pytest.raises(SpecError, match="not valid JSON"):
        Spec.from_json("{nope")
    with pytest.raises(SpecError, match="JSON object"):
        Spec.from_json("[1, 2]")


def test_lstm_round_trips_with_two_states():
    spec = lstm(8)
    again = Spec.from_json(spec.to_json())
    assert again.states == ["h", "c"] and again.outputs == {"h": "h_new", "c": "c_new"}


def test_activation_expressions():
    assert canonical("silu") == "mul(x, sigmoid(x))"
    assert canonical("tanh") == "tanh(x)"
    assert canonical(" max( x , zero ) ") == "max(x, zero(x))"
    with pytest.raises(ExpressionError, match="takes 2 argument"):
        parse("add(x)")
    with pytest.raises(ExpressionError, match="unknown unit"):
        parse("foo(x)")
    import torch

    x = torch.linspace(-3, 3, 11)
    torch.testing.assert_close(compile_torch("silu")(x), torch.nn.functional.silu(x))
    torch.testing.assert_close(compile_torch("max(x, zero)")(x), torch.relu(x))
