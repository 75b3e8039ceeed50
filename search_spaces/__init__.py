"""What can be searched: cell Specs, the spaces that propose them, and the builder that runs them.

Public surface::

    space = get_space("recurrent_cell", num_nodes=4)
    spec = space.suggest(optuna_trial)          # or space.decode(params)
    model = build(spec, task)                   # torch.nn.Module
    space.cost(spec, task)                      # {"macs": ..., "params": ...}
"""

from __future__ import annotations

from typing import Any

from search_spaces.activation_space import ActivationSpace
from search_spaces.base import Decision, SearchSpace
from search_spaces.build import SequenceModel, build
from search_spaces.cells import NAMED, elman, gated_cell, gru, lstm, make_spec, named_cell
from search_spaces.cost import cost
from search_spaces.gated import KNOWN_CELLS, GatedCellSpace
from search_spaces.nb201 import NB201Space
from search_spaces.recurrent_cell import RecurrentCellSpace
from search_spaces.safs_space import JointSpace
from search_spaces.sparsity_space import SparsitySpace
from search_spaces.spec import SCHEMA_VERSION, Spec, SpecError, canonical_hash, validate_spec
from search_spaces.task import Task

SPACES: dict[str, type[SearchSpace]] = {
    "recurrent_cell": RecurrentCellSpace,
    "gated": GatedCellSpace,
    "activation": ActivationSpace,
    "sparsity": SparsitySpace,
    "nb201": NB201Space,
    "safs": JointSpace,
}


def get_space(name: str, **options: Any) -> SearchSpace:
    """Instantiate a registered space by name with its options."""
    if name not in SPACES:
        raise ValueError(f"unknown search space {name!r}; choose one of {sorted(SPACES)}")
    return SPACES[name](**options)


__all__ = [
    "SCHEMA_VERSION",
    "SPACES",
    "ActivationSpace",
    "Decision",
    "GatedCellSpace",
    "KNOWN_CELLS",
    "NAMED",
    "RecurrentCellSpace",
    "SearchSpace",
    "SequenceModel",
    "SparsitySpace",
    "Spec",
    "SpecError",
    "Task",
    "build",
    "canonical_hash",
    "cost",
    "elman",
    "gated_cell",
    "get_space",
    "gru",
    "lstm",
    "make_spec",
    "named_cell",
    "validate_spec",
]
