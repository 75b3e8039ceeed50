"""The plain description of a learning problem that `build` and `cost` need."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

InputKind = Literal["features", "tokens"]
Objective = Literal["classify", "regress", "lm"]


@dataclass(frozen=True)
class Task:
    """Shapes and objective of a sequence task.

    Args:
        input_size: features per time step, or the vocabulary size when ``input_kind="tokens"``.
        seq_len: time steps per sequence.
        output_size: classes (``classify``/``lm``) or regression targets (``regress``).
        input_kind: ``"features"`` (float tensor ``[B, T, input_size]``) or ``"tokens"``
            (integer tensor ``[B, T]``).
        objective: ``"classify"`` one label per sequence, ``"regress"`` one vector per sequence,
            ``"lm"`` one label per step.
        input_mean, input_std: per-feature statistics of the training split (``features`` only);
            the model standardises its input with them, ``(x - mean) / std``, so a checkpoint or an
            export carries them. ``None``: inputs are used as they are.
        variable_length: sequences are right-padded to ``seq_len`` and the model reads each one's
            output at its last valid step (it takes their ``lengths`` beside ``x``).
        vocab: the string of each token id (``tokens`` only; a text task's characters or words),
            so an exported language model can read a prompt and write what it generates.
    """

    input_size: int
    seq_len: int
    output_size: int
    input_kind: InputKind = "features"
    objective: Objective = "classify"
    input_mean: tuple[float, ...] | None = None
    input_std: tuple[float, ...] | None = None
    variable_length: bool = False
    vocab: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for field in ("input_size", "seq_len", "output_size"):
            value = getattr(self, field)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"Task.{field} must be a positive integer, got {value!r}")
        if self.input_kind not in ("features", "tokens"):
            raise ValueError(f"Task.input_kind must be 'features' or 'tokens', got {self.input_kind!r}")
        if self.objective not in ("classify", "regress", "lm"):
            raise ValueError(f"Task.objective must be classify, regress or lm, got {self.objective!r}")
        if (self.input_mean is None) != (self.input_std is None):
            raise ValueError("Task.input_mean and Task.input_std go together: give both or neither")
        if self.input_mean is not None and self.input_std is not None:
            if self.input_kind != "features":
                raise ValueError("Task.input_mean/input_std standardise float features; token inputs take none")
            for field, values in (("input_mean", self.input_mean), ("input_std", self.input_std)):
                if len(values) != self.input_size or not all(math.isfinite(v) for v in values):
                    raise ValueError(f"Task.{field} must hold {self.input_size} finite numbers, got {values!r}")
            if any(v <= 0 for v in self.input_std):
                raise ValueError("Task.input_std must be positive")

        if self.vocab is not None:
            if self.input_kind != "tokens" or len(self.vocab) != self.input_size:
                raise ValueError(f"Task.vocab names the {self.input_size} token ids of a tokens task, got {len(self.vocab)} strings")
            if len(set(self.vocab)) != len(self.vocab) or not all(isinstance(v, str) for v in self.vocab):
                raise ValueError("Task.vocab must hold distinct strings")

    @property
    def standardized(self) -> bool:
        """Whether the model standardises its inputs with the training statistics."""
        return self.input_mean is not None

    def to_dict(self) -> dict:
        return asdict(self)

