"""The RNN hypernetwork: weights for every candidate, a zero-training proxy, and a warm start.

Public surface::

    net = HyperNetwork(HyperConfig())                    # or HyperNetwork.load(path)
    trainer = HyperTrainer(net, task, x, y, sample_spec=space.sample); trainer.train(1000)
    proxy_score(net, spec, task, val_x, val_y)           # accuracy with generated weights
    generate_state(net, spec, task)                      # a state dict for Trainer(init_state=...)
    HyperActor (ray.remote-able), start_actor(...)       # trains beside the search
"""

from __future__ import annotations

from hyper.actor import HyperActor, start_actor
from hyper.candidate import masks_of
from hyper.config import HyperConfig
from hyper.model import HyperNetwork, ensemble_from_weights
from hyper.train import HyperTrainer, generate_state, proxy_score
from hyper.tokens import spec_steps
from hyper.walk import walk

__all__ = [
    "HyperActor",
    "HyperConfig",
    "HyperNetwork",
    "HyperTrainer",
    "ensemble_from_weights",
    "generate_state",
    "masks_of",
    "proxy_score",
    "spec_steps",
    "start_actor",
    "walk",
]
