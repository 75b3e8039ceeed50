"""The interface every search space implements, and the decision list an RNN controller reads."""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from search_spaces.cost import cost as spec_cost
from search_spaces.spec import Spec, canonical_hash, validate_spec
from search_spaces.task import Task

if TYPE_CHECKING:
    import optuna


@dataclass(frozen=True)
class Decision:
    """One categorical choice, emitted as a token by an RNN controller.

    ``condition=(parent, values)`` makes the decision active only when the earlier decision ``parent``
    is active and took one of ``values``; inactive decisions are absent from the params.
    """

    name: str
    choices: tuple[Any, ...]
    condition: tuple[str, tuple[Any, ...]] | None = None

    def __post_init__(self) -> None:
        if not self.choices:
            raise ValueError(f"decision {self.name!r} has no choices")


@dataclass
class SearchSpace(abc.ABC):
    """A space of Specs: ordered decisions, define-by-run suggestion, decoding, validation, cost."""

    name: str = field(init=False, default="")

    @abc.abstractmethod
    def decisions(self) -> list[Decision]:
        """The ordered decisions; a decision's condition refers only to earlier decisions."""

    @abc.abstractmethod
    def decode(self, params: dict[str, Any]) -> Spec:
        """The Spec for a full assignment of the active decisions."""

    def assign(self, choose: Callable[[Decision, dict[str, Any]], Any]) -> dict[str, Any]:
        """Walk the decisions in order and ``choose`` a value for each active one (conditions are
        checked against the values chosen so far); returns the params."""
        params: dict[str, Any] = {}
        for decision in self.decisions():
            if decision.condition is not None:
                parent, values = decision.condition
                if parent not in params or params[parent] not in values:
                    continue
            params[decision.name] = choose(decision, params)
        return params

    def active_decisions(self, params: dict[str, Any]) -> list[Decision]:
        """The decisions that are active given (possibly partial) ``params``, in order."""
        active = self.assign(lambda d, _: params.get(d.name))
        return [d for d in self.decisions() if d.name in active]

    def suggest(self, trial: optuna.trial.BaseTrial) -> Spec:
        """Define-by-run: ask ``trial`` for each active decision, in order, and decode."""
        return self.decode(self.assign(lambda d, _: trial.suggest_categorical(d.name, list(d.choices))))

    def sample_params(self, rng: np.random.Generator) -> dict[str, Any]:
        """Uniformly random active params (for tests, the hypernetwork and random baselines)."""
        return self.assign(lambda d, _: d.choices[int(rng.integers(len(d.choices)))])

    def sample(self, rng: np.random.Generator) -> Spec:
        return self.decode(self.sample_params(rng))

    def mutate(self, params: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        """A neighbour of ``params``: one active decision (of more than one choice) set to another
        choice; decisions that become active are drawn at random, inactive ones dropped. Evolution
        (REA) walks the space with it, from the known cells a study starts with."""
        child = self.repair(params, rng)
        movable = [d for d in self.active_decisions(child) if len(d.choices) > 1]
        if not movable:
            return child
        d = movable[int(rng.integers(len(movable)))]
        others = [c for c in d.choices if c != child[d.name]]
        child[d.name] = others[int(rng.integers(len(others)))]
        return self.repair(child, rng)

    def repair(self, params: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        """``params`` restricted to the active decisions, newly active ones drawn uniformly at random."""
        return self.assign(
            lambda d, _: params[d.name] if params.get(d.name) in d.choices else d.choices[int(rng.integers(len(d.choices)))]
        )

    def known_cells(self, names: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
        """The hand-written cells this space can express, as params by tag (``"gru-h32"``): the
        baselines a study holds. ``names`` picks cells of `search_spaces.cells.NAMED` (default: the
        known ones); spaces that cannot express them return none."""
        return {}

    def validate(self, spec: Spec) -> None:
        """Raise `search_spaces.SpecError` naming the field if ``spec`` is not a usable cell."""
        validate_spec(spec)

    def canonical_hash(self, spec: Spec) -> str:
        return canonical_hash(spec)

    def cost(self, spec: Spec, task: Task) -> dict[str, int]:
        return spec_cost(spec, task)


def check_choices(name: str, values: Sequence[Any], allowed: Sequence[Any]) -> None:
    """Raise ``ValueError`` naming the option when ``values`` is empty or has an unknown value."""
    if not values:
        raise ValueError(f"{name}: needs at least one value")
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise ValueError(f"{name}: unknown value(s) {unknown}; allowed: {list(allowed)}")
