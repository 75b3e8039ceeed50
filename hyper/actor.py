"""`HyperActor`: the hypernetwork trainer as a Ray actor beside the search.

The class is plain Python; ``ray.remote(HyperActor)`` (or `start_actor`) makes it an actor, so tests
and the CLI use it without Ray. Workers call ``weights`` and rebuild the network with
`HyperNetwork.from_weights`; the search calls ``save`` into the study's run directory and, on resume,
passes ``checkpoint=`` to carry on from there.

Example::

    actor = start_actor(space, task, train_x, train_y, config=HyperConfig(), checkpoint=run_dir / "hyper.pt")
    ray.get(actor.train.remote(500))
    net = HyperNetwork.from_weights(ray.get(actor.weights.remote()))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from search_spaces import SearchSpace, Spec, Task
from hyper.config import HyperConfig
from hyper.model import HyperNetwork
from hyper.train import HyperTrainer


class HyperActor:
    """Owns a `HyperTrainer` over ``space``; every method returns plain, picklable data."""

    def __init__(
        self,
        space: SearchSpace,
        task: Task,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        config: HyperConfig | None = None,
        checkpoint: str | Path | None = None,
        threads: int = 1,
    ) -> None:
        torch.set_num_threads(threads)
        self.trainer = HyperTrainer(HyperNetwork(config), task, x, y, sample_spec=space.sample)
        if checkpoint is not None and Path(checkpoint).is_file():
            self.trainer.load(checkpoint)

    def train(self, steps: int) -> dict[str, float]:
        """Train ``steps`` more steps; returns ``{"step": total steps, "loss": recent mean loss}``."""
        loss = self.trainer.train(steps)
        return {"step": self.trainer.step, "loss": loss}

    def step(self) -> int:
        return self.trainer.step

    def observe(self, specs_json: list[str]) -> int:
        """Cells the search proposed, for training to draw from (`HyperTrainer.observe`); the pool size."""
        return self.trainer.observe([Spec.from_json(s) for s in specs_json])

    def weights(self) -> dict[str, Any]:
        """The current (averaged) network as a `HyperNetwork.from_weights` payload (CPU tensors), with
        the proxy's earlier snapshots under ``snapshots`` (see `hyper.ensemble_from_weights`)."""
        snapshots = [n.weights()["state_dict"] for n in self.trainer.snapshots]
        return {**self.trainer.ema.weights(), "snapshots": snapshots, "step": self.trainer.step}

    def save(self, path: str | Path) -> str:
        self.trainer.save(path)
        return str(path)

    def proxy_scores(self, specs_json: list[str], x: torch.Tensor, y: torch.Tensor) -> list[float]:
        """Generated-weight expected accuracy (`hyper.proxy_score`) of each Spec (JSON) on ``x``, ``y``."""
        return [self.trainer.proxy_score(Spec.from_json(s), x, y) for s in specs_json]


def start_actor(*args: Any, num_cpus: float = 1, name: str | None = None, **kwargs: Any) -> Any:
    """``ray.remote(HyperActor)`` started with ``num_cpus`` (and a ``name`` to find it again)."""
    import ray

    options: dict[str, Any] = {"num_cpus": num_cpus}
    if name is not None:
        options.update(name=name, get_if_exists=True)
    return ray.remote(HyperActor).options(**options).remote(*args, **kwargs)
