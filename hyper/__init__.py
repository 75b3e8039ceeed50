"""The RNN hypernetwork: weights for every candidate, a zero-training proxy, and a warm start.

Public surface::

    net = HyperNetwork(HyperConfig())                    # or HyperNetwork.load(path)
    trainer = HyperTrainer(net, task, x, y, sample_spec=space.sample); trainer.train(1000)
    proxy_score(net, spec, task, val_x, val_y)           # accuracy with generated weights
    finetune_score(net, spec, task, train_x, train_y, val_x, val_y, steps=30)  # ... after a few Adam steps
    partial_spearman(proxy, trained, log_params)         # what a proxy ranks beyond size
    generate_state(net, spec, task)                      # a state dict for Trainer(init_state=...)
    HyperActor (ray.remote-able), start_actor(...)       # trains beside the search
"""

from __future__ import annotations

from hyper.actor import HyperActor, start_actor
from hyper.candidate import masks_of
from hyper.config import HyperConfig
from hyper.finetune import finetune_score
from hyper.model import HyperNetwork, ensemble_from_weights
from hyper.ranking import partial_spearman
from hyper.train import HyperTrainer, generate_state, proxy_score
from hyper.tokens import spec_steps
from hyper.walk import walk

__all__ = [
    "HyperActor",
    "HyperConfig",
    "HyperNetwork",
    "HyperTrainer",
    "ensemble_from_weights",
    "finetune_score",
    "generate_state",
    "masks_of",
    "partial_spearman",
    "proxy_score",
    "spec_steps",
    "start_actor",
    "walk",
]
