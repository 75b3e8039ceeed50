"""`TrialConfig`: everything a worker needs to train one trial, and the only thing that crosses from
the driver (`nas.ray_bridge.StudySearcher`) to the worker (`workers.trainable.train_candidate`).

Ray Tune carries it as a plain dict (``to_dict``; Ray pickles and logs trial configs); the trainable,
the stopper and the hypernetwork read it back with ``from_dict``, so the keys are spelled here only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workers.settings import TrainConfig


@dataclass(frozen=True)
class Cost:
    """A candidate's compute, known before it trains: MACs per sample and parameter count."""

    macs: int
    params: int


@dataclass(frozen=True)
class HyperStart:
    """Warm start from the hypernetwork checkpoint at ``checkpoint`` (when ``warm_start``)."""

    warm_start: bool
    checkpoint: str


@dataclass(frozen=True)
class TrialConfig:
    """One trial: the cell, the data, how to train it, and where it may continue from.

    Attributes:
        spec: the cell as Spec JSON (`search_spaces.Spec.to_json`).
        data: the dataset name and loader options (`workers.data.load_dataset` keywords).
        train: how to train it.
        seed: the build and training seed.
        number: the Optuna trial number (names the trial's folder).
        cost: MACs and parameters, for the stopper's Pareto bar.
        threads: torch threads in the worker.
        resume: a checkpoint directory of an interrupted trial this one continues, or None.
        hyper: the hypernetwork warm start, or None.
        baseline: the known cell's tag (``gru-h32``) when this trial is a baseline: every stopping
            policy lets it train to the end, since the search compares its cells with it.
    """

    spec: str
    data: dict[str, Any]
    train: TrainConfig
    seed: int
    number: int
    cost: Cost
    threads: int = 1
    resume: str | None = None
    hyper: HyperStart | None = field(default=None)
    baseline: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "data": dict(self.data),
            "train": self.train.to_dict(),
            "seed": self.seed,
            "number": self.number,
            "cost": {"macs": self.cost.macs, "params": self.cost.params},
            "threads": self.threads,
            "resume": self.resume,
            "hyper": None if self.hyper is None else {"warm_start": self.hyper.warm_start,
                                                      "checkpoint": self.hyper.checkpoint},
            "baseline": self.baseline,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialConfig:
        """Read back `to_dict`; a missing or unknown key raises ``ValueError`` naming it."""
        known = {"spec", "data", "train", "seed", "number", "cost", "threads", "resume", "hyper", "baseline"}
        unknown = sorted(set(data) - known)
        missing = sorted({"spec", "data", "train", "seed", "number", "cost"} - set(data))
        if unknown or missing:
            raise ValueError(f"trial config: unknown keys {unknown}, missing keys {missing}")
        hyper = data.get("hyper")
        return cls(
            spec=data["spec"],
            data=dict(data["data"]),
            train=TrainConfig.from_dict(data["train"]),
            seed=int(data["seed"]),
            number=int(data["number"]),
            cost=Cost(**data["cost"]),
            threads=int(data.get("threads", 1)),
            resume=data.get("resume"),
            hyper=None if hyper is None else HyperStart(**hyper),
            baseline=data.get("baseline"),
        )


def config_cost(config: dict[str, Any] | None, key: str = "macs") -> float | None:
    """``key`` of the ``cost`` of a trial config dict (`TrialConfig.to_dict`), or None without one."""
    value = ((config or {}).get("cost") or {}).get(key)
    return None if value is None else float(value)


def config_baseline(config: dict[str, Any] | None) -> bool:
    """Whether a trial config dict is a baseline's (which no stopping policy may stop)."""
    return bool((config or {}).get("baseline"))


def config_epochs(config: dict[str, Any] | None, default: int) -> int:
    """The training length of a trial config dict, or ``default`` without one."""
    return int(((config or {}).get("train") or {}).get("epochs", default))
