"""One trial trained over several seeds or folds: K runs of a cell, reported as their mean.

With ``train.eval_seeds: K`` a trial trains K models of the same Spec on the same data with the same
recipe, seeds `member_seeds` (the trial's own seed first), epoch by epoch, and reports per epoch the
mean of their results (validation and test scores and losses, training loss). The study, the curve
stopper and the proposers then select on the mean of K runs instead of one noisy run, which matters
on small validation splits. `SeedEnsemble` has `workers.training.Trainer`'s interface (``train_epoch``,
``history``, ``best``, ``best_state``, ``state_dict``), so the Ray trainable and `nas import` train
either through `make_trainer`, and K=1 is a plain `Trainer`, unchanged.

With ``train.folds: K`` the K runs are the folds of a cross-validation (`workers.data.folds`): run i
trains on all pooled training and validation sequences but fold i's, validates on fold i, and has
its own seed, so the mean validation score covers every pooled sequence once.

Its checkpoint holds every run's state (model, optimiser, history), so a resumed trial continues all
K exactly. Its ``best_state`` -- what `nas export` ships -- is the first seed's weights at the epoch
where the mean is best.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field, fields
from typing import Any

import torch

from search_spaces import Spec
from workers.data import Dataset
from workers.data.folds import cross_validation_folds
from workers.settings import TrainConfig
from workers.metrics import Metric
from workers.training import EpochResult, Trainer, best_result

SEED_RUNS = "seed_runs"  # where a trial's per-seed values go: its reports, its user attrs, its manifest
SEED_STRIDE = 1000  # run i trains with seed + 1000 i: clear of confirmation's seeds (seed + 1 .. seed + 100)


def member_seeds(seed: int, k: int) -> list[int]:
    """The seeds of a trial's K runs: its own seed, then ``seed + SEED_STRIDE * i``."""
    return [seed + SEED_STRIDE * i for i in range(k)]


def runs_per_trial(config: TrainConfig) -> int:
    """How many models one trial trains: ``train.folds`` or ``train.eval_seeds`` (at most one is > 1)."""
    return max(config.eval_seeds, config.folds)


def mean_result(results: list[EpochResult]) -> EpochResult:
    """One epoch's results over seeds, field by field (`statistics.fmean`; NaN stays NaN)."""
    values = {f.name: statistics.fmean(getattr(r, f.name) for r in results) for f in fields(EpochResult)
              if f.name != "epoch"}
    return EpochResult(epoch=results[0].epoch, **values)


@dataclass
class SeedEnsemble:
    """``config.eval_seeds`` Trainers of one Spec, one per seed of `member_seeds`, trained in step
    (``config.folds``: one per fold, each on its fold's data)."""

    spec: Spec
    data: Dataset
    config: TrainConfig
    seed: int = 0
    init_state: dict[str, torch.Tensor] | None = field(default=None, repr=False)  # every run starts from it
    members: list[Trainer] = field(init=False, repr=False)
    history: list[EpochResult] = field(init=False, default_factory=list)
    best_state: dict[str, torch.Tensor] | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        folds = self.config.folds
        datasets = cross_validation_folds(self.data, folds) if folds > 1 else [self.data] * len(self.seeds)
        self.members = [Trainer(self.spec, data, self.config, seed=s, init_state=self.init_state)
                        for s, data in zip(self.seeds, datasets)]

    @property
    def seeds(self) -> list[int]:
        return member_seeds(self.seed, runs_per_trial(self.config))

    @property
    def epoch(self) -> int:
        return self.members[0].epoch

    @property
    def metric(self) -> Metric:
        """The metric every run is scored by (the data's, or ``train.metric``)."""
        return self.members[0].metric

    @property
    def best(self) -> EpochResult | None:
        """The epoch whose mean over seeds is best (`best_result`)."""
        return best_result(self.history, self.metric)

    def train_epoch(self) -> EpochResult:
        """One epoch of every run; their mean. Raises `CandidateDiverged` if any run diverges."""
        result = mean_result([member.train_epoch() for member in self.members])
        self.history.append(result)
        if self.best is result:
            self.best_state = {k: v.detach().clone() for k, v in self.members[0].model.state_dict().items()}
        return result

    fit = Trainer.fit  # the same loop: train the remaining epochs, return the best (mean) epoch

    def state_dict(self) -> dict[str, Any]:
        return {
            "seeds": self.seeds,
            "folds": self.config.folds,
            "members": [member.state_dict() for member in self.members],
            "epoch": self.epoch,
            "history": [r.to_dict() for r in self.history],
            "best_state": self.best_state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore every run; a checkpoint of other seeds (another ``eval_seeds``) raises ValueError."""
        runs = lambda seeds, folds: f"{seeds}" + (f" over {folds} folds" if folds > 1 else "")  # noqa: E731
        theirs, ours = runs(state.get("seeds"), state.get("folds", 1)), runs(self.seeds, self.config.folds)
        if theirs != ours:
            raise ValueError(f"the checkpoint holds runs of seeds {theirs}, this trial trains {ours}")
        for member, member_state in zip(self.members, state["members"]):
            member.load_state_dict(member_state)
        self.history = [EpochResult(**r) for r in state["history"]]
        self.best_state = state.get("best_state")


def make_trainer(spec: Spec, data: Dataset, config: TrainConfig, *, seed: int,
                 init_state: dict[str, torch.Tensor] | None = None) -> Trainer | SeedEnsemble:
    """What trains one trial: a `Trainer`, or a `SeedEnsemble` when ``config.eval_seeds`` or
    ``config.folds`` > 1."""
    if runs_per_trial(config) == 1:
        return Trainer(spec, data, config, seed=seed, init_state=init_state)
    return SeedEnsemble(spec, data, config, seed=seed, init_state=init_state)


def seed_runs(trainer: Trainer | SeedEnsemble) -> dict[str, Any]:
    """The per-seed values behind a trial's numbers: its seeds, each run's result at the selected
    epoch, each run's validation curve, and whose weights ``best_state`` holds (the first seed's, at
    the selected epoch). A `Trainer` is one run."""
    best = trainer.best
    runs, seeds = (trainer.members, trainer.seeds) if isinstance(trainer, SeedEnsemble) else ([trainer], [trainer.seed])
    return {
        "seeds": seeds,
        "at_best_epoch": [] if best is None else [run.history[best.epoch - 1].to_dict() for run in runs],
        "curves": [[r.score for r in run.history] for run in runs],
        "weights_seed": seeds[0],
        "weights_epoch": None if best is None else best.epoch,
    }
