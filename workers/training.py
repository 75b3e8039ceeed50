"""The training loop for one candidate, independent of Ray: build, train epoch by epoch, evaluate.

`Trainer` holds everything a checkpoint needs (model, optimiser, epoch, curve, best result), so the Ray
trainable, the hypernetwork and the benchmarks all train candidates the same way.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from search_spaces import Spec, Task, build
from workers import lm_training
from workers.data import Dataset, Split
from workers.metrics import Metric
from workers.scoring import Scorer
from workers.settings import TrainConfig

class CandidateDiverged(RuntimeError):
    """The loss became NaN or infinite: the candidate failed, the search goes on."""


@dataclass
class EpochResult:
    """One epoch: the validation score (the task's metric, `workers.metrics`) and loss, the mean
    training loss, and the test score (reported, never used to choose)."""

    epoch: int
    score: float
    loss: float
    train_loss: float
    test_score: float
    test_loss: float = math.nan  # the test split's mean loss (lm: cross-entropy per token, in nats)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def best_result(history: list[EpochResult], metric: Metric) -> EpochResult | None:
    """The epoch whose weights a user would keep: the best validation score in ``metric``'s
    direction. The one place that picks a best epoch (a Trainer's, and a seed ensemble's mean
    curve's)."""
    return max(history, key=lambda r: metric.oriented(r.score), default=None)


def _batch_loss(model: nn.Module, batch: Split, objective: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch's mean loss and the model's outputs (padded sequences read at their last valid step)."""
    y = batch.y
    out = model(batch.x) if batch.lengths is None else model(batch.x, batch.lengths)
    if objective == "regress":
        return nn.functional.mse_loss(out, y), out
    if objective == "lm":
        return nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1)), out
    return nn.functional.cross_entropy(out, y), out


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, task: Task, metric: Metric, batch_size: int = 512) -> tuple[float, float]:
    """(``metric``, mean loss) of ``model`` on ``split``; NaN for an empty split (no test file)."""
    if len(split) == 0:
        return math.nan, math.nan
    model.eval()
    scorer = Scorer(metric, task.objective, task.output_size)
    for start in range(0, len(split), batch_size):
        batch = split[start : start + batch_size]
        loss, out = _batch_loss(model, batch, task.objective)
        scorer.add(out, batch.y, float(loss) * scorer.weight(batch.y))
    return scorer.value, scorer.loss


@dataclass
class Trainer:
    """Train one Spec on one dataset; `state_dict`/`load_state_dict` make it resumable mid-run."""

    spec: Spec
    data: Dataset
    config: TrainConfig
    seed: int = 0
    init_state: dict[str, torch.Tensor] | None = field(default=None, repr=False)  # e.g. hypernetwork weights
    model: nn.Module = field(init=False)
    epoch: int = field(init=False, default=0)
    history: list[EpochResult] = field(init=False, default_factory=list)
    best_state: dict[str, torch.Tensor] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.metric = self.data.scoring(self.config.metric)
        self.model = build(self.spec, self.data.task, seed=self.seed)
        if self.init_state is not None:  # warm start: parameters (not masks) from e.g. `hyper`
            missing, unexpected = self.model.load_state_dict(self.init_state, strict=False)
            names = dict(self.model.named_parameters())
            if unexpected or any(k in names for k in missing):
                raise ValueError(f"init_state: missing parameters {[k for k in missing if k in names]}, unexpected {unexpected}")
            self.model.apply_masks()
        params = self.model.parameters()
        if self.config.optimizer == "adam":
            self.optimizer: torch.optim.Optimizer = torch.optim.Adam(
                params, lr=self.config.lr, weight_decay=self.config.weight_decay
            )
        elif self.config.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(
                params, lr=self.config.lr, momentum=0.9, weight_decay=self.config.weight_decay
            )
        else:
            raise ValueError(f"train.optimizer: expected adam or sgd, got {self.config.optimizer!r}")

    @property
    def best(self) -> EpochResult | None:
        """The epoch with the best validation score (`best_result`: the weights a user would keep)."""
        return best_result(self.history, self.metric)

    def _prune(self) -> None:
        until = self.config.prune_until * self.config.epochs
        progress = 1.0 if until <= 0 else self.epoch / until
        self.model.prune_magnitude(progress)

    def _step(self, loss: torch.Tensor) -> None:
        """Backward, clip, update and re-apply the masks; raises `CandidateDiverged` on a NaN/inf loss."""
        if not torch.isfinite(loss):
            raise CandidateDiverged(f"training loss became {float(loss.detach())} at epoch {self.epoch + 1}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.model.apply_masks()

    def _sequence_epoch(self) -> float:
        """One pass over the training sequences in a seeded random order; the mean training loss."""
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(len(self.data.train), generator=gen)
        total, count = 0.0, 0
        for start in range(0, len(order), self.config.batch_size):
            idx = order[start : start + self.config.batch_size]
            loss, _ = _batch_loss(self.model, self.data.train[idx], self.data.task.objective)
            self._step(loss)
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        return total / count

    def _evaluate(self, split: Split) -> tuple[float, float]:
        """(score, mean loss) on ``split``; a language model's over its whole stream, state carried."""
        task = self.data.task
        if task.objective == "lm":
            return lm_training.evaluate(self.model, split, task.seq_len, self.metric)
        return evaluate(self.model, split, task, self.metric)

    def train_epoch(self) -> EpochResult:
        """One epoch of training, then validation and test; raises `CandidateDiverged`.

        A language model (``objective: lm``) trains by stateful truncated BPTT on its token stream
        (`workers.lm_training`; ``train.steps_per_epoch`` windows, default one pass); its score is
        bits per character (or perplexity) and its losses are mean cross-entropy per token in nats.
        """
        task = self.data.task
        self._prune()
        self.model.train()
        if task.objective == "lm":
            train_loss = lm_training.train_epoch(
                self.model, self.data.train, batch_size=self.config.batch_size, bptt=task.seq_len,
                epoch=self.epoch, steps=self.config.steps_per_epoch, step=self._step)
        else:
            train_loss = self._sequence_epoch()
        self.epoch += 1
        score, val_loss = self._evaluate(self.data.val)
        if not math.isfinite(val_loss):
            raise CandidateDiverged(f"validation loss became {val_loss} at epoch {self.epoch}")
        test_score, test_loss = self._evaluate(self.data.test)
        result = EpochResult(self.epoch, score, val_loss, train_loss, test_score, test_loss)
        self.history.append(result)
        if self.best is result:
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        return result

    def fit(self) -> EpochResult:
        """Train the remaining epochs; the best epoch's result (raises `CandidateDiverged`)."""
        while self.epoch < self.config.epochs:
            self.train_epoch()
        assert self.best is not None, "train.epochs is at least 1"
        return self.best

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "history": [r.to_dict() for r in self.history],
            "best_state": self.best_state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch = int(state["epoch"])
        self.history = [EpochResult(**r) for r in state["history"]]
        self.best_state = state.get("best_state")
