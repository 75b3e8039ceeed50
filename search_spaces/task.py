"""The plain description of a learning problem that `build` and `cost` need."""

from __future__ import annotations

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
    """

    input_size: int
    seq_len: int
    output_size: int
    input_kind: InputKind = "features"
    objective: Objective = "classify"

    def __post_init__(self) -> None:
        for field in ("input_size", "seq_len", "output_size"):
            value = getattr(self, field)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"Task.{field} must be a positive integer, got {value!r}")
        if self.input_kind not in ("features", "tokens"):
            raise ValueError(f"Task.input_kind must be 'features' or 'tokens', got {self.input_kind!r}")
        if self.objective not in ("classify", "regress", "lm"):
            raise ValueError(f"Task.objective must be classify, regress or lm, got {self.objective!r}")

    def to_dict(self) -> dict:
        return asdict(self)
