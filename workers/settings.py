"""The ``train:`` and ``hyper:`` config sections: one model each, read by the driver and the workers.

`nas.config` validates a YAML config into these models; a trial carries them to its worker inside
`workers.trial.TrialConfig`. Light on purpose (pydantic only), so the command line stays fast.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from workers.metrics import get_metric


class Section(BaseModel):
    """A config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Any:
        return cls.model_validate(data or {})

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def updated(self, **changes: Any) -> Any:
        """A validated copy with ``changes`` (pydantic's ``model_copy`` would not validate them)."""
        return type(self).model_validate({**self.model_dump(), **changes})


class TrainConfig(Section):
    """How a candidate is trained. ``prune_until`` is the fraction of epochs over which magnitude
    masks go from dense to their target density (gradual magnitude pruning). ``keep_checkpoints``:
    ``last`` keeps a trial's last epoch checkpoint only (it holds the trainer state to resume from and
    the best epoch's weights, which export reads); ``all`` keeps every epoch's. ``steps_per_epoch``
    (language models only): training windows of ``bptt`` steps per epoch, each epoch going on where
    the last one stopped; None: one pass over the training text per epoch. ``eval_seeds``: each
    trial trains this many independently seeded models of its cell and reports their mean per epoch
    (`workers.ensemble`), so selection on a small validation split is not one noisy run. ``folds``:
    K-fold cross-validation instead (`workers.data.folds`): K models, each validated on one fold of
    the pooled training and validation sequences and trained on the rest, reported as their mean."""

    epochs: int = Field(10, ge=1, le=10_000)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(0.01, gt=0, le=10)
    optimizer: Literal["adam", "sgd"] = "adam"
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float = Field(1.0, ge=0)
    prune_until: float = Field(0.6, ge=0, le=1)
    keep_checkpoints: Literal["last", "all"] = "last"
    steps_per_epoch: int | None = Field(None, ge=1, le=1_000_000)  # lm: bptt windows per epoch (None: one pass)
    eval_seeds: int = Field(1, ge=1, le=100)
    folds: int = Field(1, ge=1, le=20)  # 1: the data's validation split selects; K >= 2: K-fold cross-validation
    metric: str | None = None  # the validation score trials are selected by; None: the data set's default

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, name: str | None) -> str | None:
        if name is not None:
            get_metric(name)  # the data decides later whether it fits the task
        return name

    @model_validator(mode="after")
    def _one_kind_of_repeat(self) -> TrainConfig:
        if self.folds > 1 and self.eval_seeds > 1:
            raise ValueError(f"folds ({self.folds}) and eval_seeds ({self.eval_seeds}): choose one; each fold is "
                             "already its own seeded run, so folds alone averages over seeds too")
        return self


class HyperSettings(Section):
    """The RNN hypernetwork in a search (`workers.hyper_bridge`): off unless ``enabled``."""

    enabled: bool = False
    train_steps: int = Field(4000, ge=0)  # total hypernetwork steps (about 4 minutes on one CPU core)
    when: Literal["before", "beside"] = "before"  # train before the search, or beside it in chunks
    chunk_steps: int = Field(100, ge=1)  # beside: steps per actor call (a checkpoint after each)
    proxy: Literal["off", "skip"] = "off"  # skip: prune proposals scoring below proxy_quantile
    proxy_quantile: float = Field(0.25, gt=0, lt=1)
    proxy_min_seen: int = Field(8, ge=1)  # skip: never skip before this many scores were seen
    warm_start: bool = False  # trials start from generated weights instead of random ones
