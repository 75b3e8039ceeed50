"""The hypernetwork in a search: one driver-side `HyperBridge`, one worker-side `init_state`.

Driver (the searcher): ``bridge = HyperBridge(settings, space, data, run_dir)`` starts the hypernetwork
as a Ray actor (or in-process with ``local=True``), trains it before the search (``when="before"``) or
in chunks beside it (``when="beside"``, advanced by `poll`), and checkpoints it to
``<run_dir>/hyper.pt`` beside the study, so `nas resume` carries on from there. For each proposal,
``bridge.gate(spec)`` returns the proxy score and whether to skip the candidate (``proxy="skip"``: its
score is below the ``proxy_quantile`` of the scores seen so far); beside the search, the candidates
it lets through are handed to the trainer before its next chunk, which then draws a share of its
training cells from them (``HyperConfig.proposal_fraction``). ``bridge.trial_start()`` is what a
trial's `workers.trial.TrialConfig` carries for warm start.

Worker (the trainable): ``Trainer(..., init_state=init_state(trial.hyper, spec, task))``: the
generated weights from the checkpoint it names, or None when warm start is off.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hyper import HyperActor, HyperConfig, HyperNetwork, ensemble_from_weights, generate_state, proxy_score
from search_spaces import SearchSpace, Spec, Task
from workers.data import Dataset, sequences
from workers.run_dir import RunDir
from workers.settings import HyperSettings
from workers.trial import HyperStart

logger = logging.getLogger(__name__)


class HyperBridge:
    """Driver-side handle on the hypernetwork: training, checkpoints, proxy decisions."""

    def __init__(
        self,
        settings: HyperSettings,
        space: SearchSpace,
        data: Dataset,
        run_dir: RunDir,
        *,
        config: HyperConfig | None = None,
        local: bool = False,
        name: str | None = None,
    ) -> None:
        self.settings, self.data = settings, data
        self.path = run_dir.hyper_checkpoint
        self.local = local
        train = sequences(data, "train")  # a language model's stream in windows
        args = (space, data.task, train.x, train.y)
        kwargs = {"config": config, "checkpoint": self.path if self.path.is_file() else None}
        if local:
            self.actor: Any = HyperActor(*args, **kwargs)
        else:
            from hyper import start_actor

            self.actor = start_actor(*args, name=name, **kwargs)
        self._pending: Any = None
        self._proposed: list[str] = []  # beside: proposals not yet handed to the trainer
        self.scores: list[float] = []
        self.nets = self._fetch()
        if settings.when == "before":
            remaining = settings.train_steps - self._call("step")
            if remaining > 0:
                logger.info("training the hypernetwork for %d steps before the search", remaining)
                self._call("train", remaining)
                self._call("save", str(self.path))
                self.nets = self._fetch()

    def _call(self, method: str, *args: Any) -> Any:
        if self.local:
            return getattr(self.actor, method)(*args)
        import ray

        return ray.get(getattr(self.actor, method).remote(*args))

    def _fetch(self) -> list[HyperNetwork]:
        return ensemble_from_weights(self._call("weights"))

    @property
    def step(self) -> int:
        return int(self._call("step"))

    def poll(self) -> None:
        """Beside the search: collect a finished chunk (checkpoint, refresh weights), start the next."""
        if self.settings.when != "beside":
            return
        if self._pending is not None:
            import ray

            ready, _ = ray.wait([self._pending], timeout=0)
            if not ready:
                return
            self._pending = None
            self._call("save", str(self.path))
            self.nets = self._fetch()
        remaining = self.settings.train_steps - self._call("step")
        if remaining <= 0:
            return
        if self._proposed:  # the next chunk also trains on the cells the search proposed meanwhile
            self._call("observe", self._proposed)
            self._proposed = []
        steps = min(remaining, self.settings.chunk_steps)
        if self.local:  # no actor to run it beside us: train the chunk now
            self.actor.train(steps)
            self.actor.save(self.path)
            self.nets = self._fetch()
        else:
            self._pending = self.actor.train.remote(steps)

    def score(self, spec: Spec) -> float:
        """Validation accuracy of ``spec`` with generated weights."""
        val = sequences(self.data, "val")
        return proxy_score(self.nets, spec, self.data.task, val.x, val.y)

    def gate(self, spec: Spec) -> tuple[float, bool]:
        """(proxy score, skip?) for a proposal; records the score."""
        score = self.score(spec)
        skip = (
            self.settings.proxy == "skip"
            and len(self.scores) >= self.settings.proxy_min_seen
            and score < float(np.quantile(self.scores, self.settings.proxy_quantile))
        )
        self.scores.append(score)
        if self.settings.when == "beside" and not skip:
            self._proposed.append(spec.to_json())
        return score, skip

    def save(self) -> Path:
        self._call("save", str(self.path))
        return self.path

    def trial_start(self) -> HyperStart:
        """The ``hyper`` entry of a trial's config (read back by `init_state`)."""
        return HyperStart(warm_start=self.settings.warm_start, checkpoint=str(self.path.resolve()))


@functools.lru_cache(maxsize=2)
def _load(path: str, mtime: float) -> HyperNetwork:
    return HyperNetwork.load(path)


def init_state(hyper: HyperStart | None, spec: Spec, task: Task) -> dict[str, torch.Tensor] | None:
    """Generated weights for a trial whose config asks for warm start, else None.

    The checkpoint is read once per process per version (cached by path and modification time).
    """
    if hyper is None or not hyper.warm_start:
        return None
    path = Path(hyper.checkpoint)
    if not path.is_file():
        logger.warning("warm start asked for but %s does not exist; random init", path)
        return None
    return generate_state(_load(str(path), path.stat().st_mtime), spec, task)
