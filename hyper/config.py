"""`HyperConfig`: every size and switch of the RNN hypernetwork, in one dataclass."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class HyperConfig:
    """Sizes of the hypernetwork and of its SMASH-style training.

    The defaults are what `benchmarks/hyper_rank.py` uses on ``digits-seq`` (about 0.53 M parameters,
    half of them in the ``theta0`` banks; 4,000 steps take about 4 minutes on one CPU core).
    """

    vocab: int = 2048  # hashed token vocabulary (tokens are strings; unseen ones still embed)
    embed: int = 64  # token / role embedding width
    hidden: int = 128  # LSTM width
    layers: int = 1  # LSTM layers
    tile: int = 16  # weights are emitted in tile x tile chunks, biases in chunks of tile
    bank: int = 1024  # theta0 tiles (hashed by tensor role and tile position)
    bias_bank: int = 256  # theta0 bias chunks
    max_bag: int = 8  # role tokens per walk step
    mip: bool = True  # magnitude-invariant parametrisation: unit-norm inputs, theta = theta0 + delta
    delta_init: float = 0.01  # std of the output heads' weights at init (delta starts near zero)
    # training
    lr: float = 2e-3  # LSTM, embeddings and output heads
    theta0_lr: float = 0.005  # the theta0 banks (U(-1, 1) units); 0.01-0.05 trained worse on digits-seq
    ema: float = 0.995  # proxy scores and warm starts use this moving average of the weights (0: off)
    snapshots: int = 6  # the proxy averages the scores of the averaged network now and at earlier snapshots
    snapshot_every: int = 400  # steps between snapshots (rankings drift between them on digits-seq); 6 x 400 spans
    # the second half of 4,000 steps, which ranked better than the last 1,200 (3 x 400) on two seeds
    batch_size: int = 64  # task samples per candidate per step
    specs_per_step: int = 4  # candidates sampled per optimiser step (4 x 64 ranked better than 2 x 128)
    grad_clip: float = 5.0
    max_loss: float = 100.0  # a candidate whose loss is above this (blown-up weights) is skipped
    # beside a search: the share of each step's candidates drawn from the search's own proposals
    # (`HyperTrainer.observe`) once it has some, the rest from the space, so the network learns the
    # cells the search actually trains
    proposal_fraction: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("vocab", "embed", "hidden", "layers", "tile", "bank", "bias_bank", "max_bag", "batch_size",
                     "specs_per_step", "snapshots", "snapshot_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"HyperConfig.{name}: must be a positive integer, got {value!r}")
        if not 0.0 <= self.proposal_fraction <= 1.0:
            raise ValueError(f"HyperConfig.proposal_fraction: must be in [0, 1], got {self.proposal_fraction!r}")
        for name in ("lr", "theta0_lr"):
            if getattr(self, name) <= 0:
                raise ValueError(f"HyperConfig.{name}: must be positive, got {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HyperConfig:
        return cls(**data)
